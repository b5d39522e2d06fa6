"""Merchandising rules in the admin: validation against the catalogue, dates, strengths, filters."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from shop_reco.admin import MerchandisingRuleForm
from shop_reco.models import MerchandisingRule

pytestmark = pytest.mark.django_db


def _form(**data):
    base = {
        "action": "boost",
        "product_key": "",
        "category": "",
        "slot": "",
        "strength": "2",
        "is_active": "on",
    }
    base.update({key: str(value) for key, value in data.items()})
    return MerchandisingRuleForm(data=base)


def test_product_must_exist(catalogue):
    form = _form(product_key="no-such-product")
    assert not form.is_valid()
    assert "No product has the key" in form.errors["product_key"][0]
    assert _form(product_key=next(iter(catalogue))).is_valid()


def test_needs_exactly_one_target(catalogue):
    assert "Give a product key or a category." in _form().errors["__all__"][0]
    both = _form(product_key=next(iter(catalogue)), category="Mugs")
    assert "not both" in both.errors["__all__"][0]
    assert _form(category="Mugs", action="exclude").is_valid()


def test_end_must_follow_start(catalogue):
    now = timezone.now().replace(microsecond=0)
    form = _form(
        category="Mugs",
        starts_at=now.strftime("%Y-%m-%d %H:%M:%S"),
        ends_at=(now - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S"),
    )
    assert "after the start" in form.errors["ends_at"][0]


def test_strength_rules(catalogue):
    assert "position" in _form(category="Mugs", action="pin", strength="1.5").errors["strength"][0]
    assert "above 1" in _form(category="Mugs", action="bury", strength="0.5").errors["strength"][0]
    assert _form(category="Mugs", action="pin", strength="2").is_valid()


def test_slot_choices_come_from_the_storefront(catalogue):
    choices = dict(MerchandisingRuleForm().fields["slot"].choices)
    assert "" in choices and "similar" in choices and "buy_again" in choices


def test_changelist_filters(admin_client, catalogue):
    now = timezone.now()
    key = next(iter(catalogue))
    MerchandisingRule.objects.create(action="pin", product_key=key, strength=1)
    MerchandisingRule.objects.create(action="exclude", category="Lamps", ends_at=now - timedelta(days=1))
    MerchandisingRule.objects.create(action="boost", category="Mugs", starts_at=now + timedelta(days=1))
    url = reverse("admin:shop_reco_merchandisingrule_changelist")
    for query, expected in (
        ("schedule=live", 1),
        ("schedule=ended", 1),
        ("schedule=scheduled", 1),
        ("target=category", 2),
    ):
        response = admin_client.get(f"{url}?{query}")
        assert response.status_code == 200
        assert response.context["cl"].result_count == expected, query


def test_admin_add_saves_a_valid_rule(admin_client, catalogue):
    key = next(iter(catalogue))
    response = admin_client.post(
        reverse("admin:shop_reco_merchandisingrule_add"),
        {
            "action": "pin",
            "product_key": key,
            "category": "",
            "slot": "similar",
            "strength": "1",
            "is_active": "on",
            "note": "",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert MerchandisingRule.objects.get().slot == "similar"
