"""System checks for the storefront settings."""

from __future__ import annotations

import pytest

from shop_reco.checks import check_storefront

BASE = {"PRODUCT_MODEL": "catalogue.Product", "ADAPTER": "demo_shop.catalogue.adapter.DemoShopAdapter"}


def ids(settings, **extra) -> list[str]:
    settings.SHOP_RECO = {**BASE, **extra}
    return [message.id for message in check_storefront()]


def test_defaults_pass(settings):
    assert ids(settings) == []


@pytest.mark.parametrize(
    ("slots", "expected"),
    [
        ({"similar": {"limit": 4, "max_per_category": None, "top_up": False}}, []),
        ([], ["shop_reco.E020"]),
        ({"similar": {"limit": 0}}, ["shop_reco.E020"]),
        ({"similar": {"limti": 3}}, ["shop_reco.E020"]),
        ({"similar": {"fallback": "yes"}}, ["shop_reco.E020"]),
        ({"similar": {"max_per_category": -1}}, ["shop_reco.E020"]),
        ({"smilar": {"limit": 3}}, ["shop_reco.W020"]),
    ],
)
def test_slot_options(settings, slots, expected):
    assert ids(settings, SLOTS=slots) == expected


def test_product_serializer_must_import_and_be_a_serializer(settings):
    assert ids(settings, PRODUCT_SERIALIZER="nope.Nope") == ["shop_reco.E021"]
    assert ids(settings, PRODUCT_SERIALIZER="shop_reco.models.Event") == ["shop_reco.E021"]


@pytest.mark.parametrize(
    ("name", "value", "ok"),
    [
        ("API_MAX_LIMIT", 0, False),
        ("API_MAX_LIMIT", "50", False),
        ("ATTRIBUTION_WINDOW_DAYS", 0.5, True),
        ("VERSION_CACHE_SECONDS", 0, True),
        ("VERSION_CACHE_SECONDS", -1, False),
        ("HISTORY_LENGTH", True, False),
    ],
)
def test_numbers(settings, name, value, ok):
    assert ids(settings, **{name: value}) == ([] if ok else ["shop_reco.E022"])
