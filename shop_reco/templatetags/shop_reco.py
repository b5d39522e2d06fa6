"""Recommendation slots as template tags: ``{% load shop_reco %}`` then one tag per slot.

Each tag calls the slot's service function (the same one the API and the admin preview call), renders
``shop_reco/slots/<slot>.html`` (override it in your templates, or pass ``template="..."``), and records one
rec_impression event. A failure logs an error and renders nothing: a recommendation never breaks a shop page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django import template
from django.template import Engine
from django.template.context import Context
from django.utils.safestring import SafeString, mark_safe

from shop_reco.services import recommendations as reco
from shop_reco.services.context import RecoContext, context_for

logger = logging.getLogger("shop_reco.recommendations")
register = template.Library()


def _render(
    context: Context,
    slot: str,
    call: Callable[[RecoContext], reco.SlotResult],
    template_name: str | None,
    extra: dict[str, Any] | None = None,
) -> SafeString:
    request = context.get("request")
    try:
        reco_context = context_for(request)
        result = call(reco_context)
        if result.items:
            try:
                reco.record_impression(reco_context, result)
            except Exception:  # tracking failures are the tracker's to report; the slot still shows
                logger.exception("shop_reco could not record the impression of slot %s", slot)
        names = [template_name] if template_name else []
        names.append(f"shop_reco/slots/{slot}.html")
        engine = context.template.engine if context.template is not None else Engine.get_default()
        slot_template = engine.select_template(names)
        # Like an inclusion tag: a child context, so autoescape and the csrf token carry over.
        values = {"slot": result, "items": result.items, **(extra or {})}
        with context.push(values):
            return mark_safe(slot_template.render(context))
    except Exception:
        logger.exception("shop_reco slot %s failed; rendering it empty", slot)
        return mark_safe("")


@register.simple_tag(takes_context=True)
def reco_similar(
    context: Context, product: Any, limit: int | None = None, template: str | None = None
) -> str:
    """Products similar to ``product`` (an instance or key)."""
    return _render(
        context, reco.SIMILAR, lambda ctx: reco.similar_products(product, context=ctx, limit=limit), template
    )


@register.simple_tag(takes_context=True)
def reco_bought_together(
    context: Context, product: Any, limit: int | None = None, template: str | None = None
) -> str:
    """Products often bought with ``product``, with the bundle price."""
    return _render(
        context,
        reco.BOUGHT_TOGETHER,
        lambda ctx: reco.bought_together(product, context=ctx, limit=limit),
        template,
    )


@register.simple_tag(takes_context=True)
def reco_cart(
    context: Context, cart: Any = None, limit: int | None = None, template: str | None = None
) -> str:
    """Products that go with the cart (``cart``: keys, products, lines or the shop's cart object)."""
    return _render(
        context, reco.CART, lambda ctx: reco.cart_recommendations(cart, context=ctx, limit=limit), template
    )


@register.simple_tag(takes_context=True)
def reco_for_you(context: Context, limit: int | None = None, template: str | None = None) -> str:
    """Personal recommendations for the user or anonymous visitor."""
    return _render(
        context, reco.FOR_YOU, lambda ctx: reco.recommended_for_you(context=ctx, limit=limit), template
    )


@register.simple_tag(takes_context=True)
def reco_trending(
    context: Context, category: str | None = None, limit: int | None = None, template: str | None = None
) -> str:
    """Trending overall, or in ``category``."""
    return _render(
        context,
        reco.TRENDING,
        lambda ctx: reco.trending(category, context=ctx, limit=limit),
        template,
        {"category": category or ""},
    )


@register.simple_tag(takes_context=True)
def reco_recently_viewed(
    context: Context, exclude: Any = None, limit: int | None = None, template: str | None = None
) -> str:
    """The shopper's recently viewed products (``exclude``: the page's own product)."""
    return _render(
        context,
        reco.RECENTLY_VIEWED,
        lambda ctx: reco.recently_viewed(context=ctx, limit=limit, exclude_product=exclude),
        template,
    )


@register.simple_tag(takes_context=True)
def reco_buy_again(context: Context, limit: int | None = None, template: str | None = None) -> str:
    """What the shopper bought before."""
    return _render(context, reco.BUY_AGAIN, lambda ctx: reco.buy_again(context=ctx, limit=limit), template)
