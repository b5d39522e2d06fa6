"""Small helpers for the storefront templates."""

from __future__ import annotations

from django import template
from django.db.models import QuerySet

from demo_shop.catalogue.models import Category

register = template.Library()


@register.simple_tag
def shop_categories() -> QuerySet[Category]:
    """All categories, for the header menu on every page."""
    return Category.objects.all()


@register.simple_tag(takes_context=True)
def page_url(context: template.Context, number: int) -> str:
    """The current URL's query string with another page number, so ?q= survives paging."""
    query = context["request"].GET.copy()
    query["page"] = number
    return f"?{query.urlencode()}"


@register.filter
def hue(value: int | None) -> int:
    """A stable colour per category for the placeholder images (the data set has no pictures)."""
    return ((value or 0) * 47) % 360
