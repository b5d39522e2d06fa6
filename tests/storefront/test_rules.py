"""Business rules applied at read time: availability, exclusions, merchandising, diversity, one page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from shop_reco.models import MerchandisingRule
from shop_reco.services import recommendations as reco
from shop_reco.services.context import context_for
from shop_reco.testing import publish_lists
from tests.storefront.test_slots import VISITOR, purchase


@pytest.fixture
def popular(catalogue):
    """Everything in the shop, ranked: Kitchen 1..4, Garden 1..4, Toys 1..4."""
    order = [f"{c} {i}" for c in ("Kitchen", "Garden", "Toys") for i in range(1, 5)]
    publish_lists({("global", "", "popular"): catalogue.keys(*order)})
    return order


def names(catalogue, result):
    return catalogue.names(result.keys)


def test_out_of_stock_and_inactive_products_are_never_shown(catalogue, popular):
    catalogue["Kitchen 1"].stock = 0
    catalogue["Kitchen 1"].save()
    catalogue["Kitchen 2"].is_active = False
    catalogue["Kitchen 2"].save()
    result = reco.trending(limit=3, context=context_for())
    assert names(catalogue, result) == ["Kitchen 3", "Kitchen 4", "Garden 1"]


def test_the_current_product_and_the_cart_are_excluded(catalogue, popular):
    context = context_for(cart=[catalogue["Kitchen 2"]])
    result = reco.similar_products(catalogue["Kitchen 1"], context=context, limit=2)
    assert names(catalogue, result) == ["Kitchen 3", "Kitchen 4"]


@pytest.mark.parametrize(
    ("slot_settings", "expected"),
    [
        ({}, ["Kitchen 2", "Kitchen 3"]),
        ({"similar": {"exclude_purchased": False}}, ["Kitchen 1", "Kitchen 2"]),
    ],
)
def test_purchased_products_are_excluded_per_slot(catalogue, popular, settings, slot_settings, expected):
    settings.SHOP_RECO = {**settings.SHOP_RECO, "SLOTS": slot_settings}
    purchase(catalogue.key("Kitchen 1"))
    context = context_for(visitor_id=VISITOR)
    result = reco.similar_products(catalogue["Toys 4"], context=context, limit=2)
    assert names(catalogue, result) == expected


def rule(**fields) -> MerchandisingRule:
    return MerchandisingRule.objects.create(**fields)


def test_exclude_by_product_and_by_category(catalogue, popular):
    rule(action="exclude", product_key=catalogue.key("Kitchen 1"))
    rule(action="exclude", category="Garden")
    result = reco.trending(limit=5)
    assert names(catalogue, result) == ["Kitchen 2", "Kitchen 3", "Kitchen 4", "Toys 1", "Toys 2"]


def test_pin_puts_a_product_at_its_position_even_when_no_list_has_it(catalogue):
    publish_lists({("global", "", "popular"): catalogue.keys("Kitchen 1", "Kitchen 2", "Kitchen 3")})
    rule(action="pin", product_key=catalogue.key("Toys 4"), strength=2)
    result = reco.trending(limit=3)
    assert names(catalogue, result) == ["Kitchen 1", "Toys 4", "Kitchen 2"]
    assert result.items[1].source == "pinned"
    assert result.items[1].reason == "Featured"


def test_a_pin_never_shows_an_unavailable_product(catalogue, popular):
    catalogue["Toys 4"].stock = 0
    catalogue["Toys 4"].save()
    rule(action="pin", product_key=catalogue.key("Toys 4"), strength=1)
    assert "Toys 4" not in names(catalogue, reco.trending(limit=3))


def test_category_pin_moves_its_members_to_the_front(catalogue, popular):
    rule(action="pin", category="Toys", strength=1)
    result = reco.trending(limit=4, context=context_for())
    # The diversity cap (3 per category) still applies to unpinned items only.
    assert names(catalogue, result)[:4] == ["Toys 1", "Toys 2", "Toys 3", "Toys 4"]


def test_boost_and_bury_reorder(catalogue, popular):
    rule(action="boost", product_key=catalogue.key("Kitchen 4"), strength=3)
    rule(action="bury", category="Kitchen", slot="trending", strength=100)
    result = reco.trending(limit=3)
    # Kitchen is buried (x 1/100), Kitchen 4 boosted x3: still below every Garden product.
    assert names(catalogue, result) == ["Garden 1", "Garden 2", "Garden 3"]
    similar = reco.similar_products(catalogue["Toys 1"], limit=2)
    # The bury names the trending slot only; the boost applies everywhere.
    assert names(catalogue, similar)[0] == "Kitchen 4"


def test_rules_honour_dates_and_the_active_flag(catalogue, popular):
    now = timezone.now()
    rule(action="exclude", product_key=catalogue.key("Kitchen 1"), ends_at=now - timedelta(hours=1))
    rule(action="exclude", product_key=catalogue.key("Kitchen 2"), starts_at=now + timedelta(hours=1))
    rule(action="exclude", product_key=catalogue.key("Kitchen 3"), is_active=False)
    rule(
        action="exclude",
        product_key=catalogue.key("Kitchen 4"),
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=1),
    )
    result = reco.trending(limit=4, context=context_for())
    assert names(catalogue, result)[:3] == ["Kitchen 1", "Kitchen 2", "Kitchen 3"]
    assert "Kitchen 4" not in names(catalogue, result)


def test_rules_are_read_once_per_minute(catalogue, popular, django_assert_num_queries):
    reco.trending(limit=2)  # warms version, lists and rules
    rule(action="exclude", product_key=catalogue.key("Kitchen 1"))
    with django_assert_num_queries(0):  # rules, lists and product rows all memoised
        result = reco.trending(limit=2)
    assert "Kitchen 1" in names(catalogue, result)  # the cached minute has not seen the rule yet


def test_diversity_cap(catalogue, popular):
    result = reco.trending(limit=6)
    assert names(catalogue, result) == [
        "Kitchen 1",
        "Kitchen 2",
        "Kitchen 3",
        "Garden 1",
        "Garden 2",
        "Garden 3",
    ]
    with override_settings(
        SHOP_RECO={
            "PRODUCT_MODEL": "catalogue.Product",
            "ADAPTER": "demo_shop.catalogue.adapter.DemoShopAdapter",
            "SLOTS": {"trending": {"max_per_category": 1}},
        }
    ):
        result = reco.trending(limit=3)
        assert names(catalogue, result) == ["Kitchen 1", "Garden 1", "Toys 1"]


def test_no_product_is_repeated_across_the_slots_of_one_page(catalogue, popular, rf):
    request = rf.get("/")
    from django.contrib.auth.models import AnonymousUser

    request.user = AnonymousUser()
    request.COOKIES = {}
    first = reco.trending(limit=3, context=context_for(request))
    second = reco.recommended_for_you(limit=3, context=context_for(request))
    third = reco.similar_products(catalogue["Toys 4"], limit=3, context=context_for(request))
    shown = first.keys + second.keys + third.keys
    assert len(shown) == len(set(shown)) == 9
    # A context for another shopper (a preview) is separate.
    assert reco.trending(limit=3, context=context_for(visitor_id=VISITOR)).keys == first.keys


def test_a_boost_reaches_a_product_far_down_the_list(catalogue, popular):
    rule(action="boost", product_key=catalogue.key("Toys 4"), strength=10)
    result = reco.trending(limit=2)
    assert names(catalogue, result)[0] == "Toys 4"


def test_a_rule_starts_and_ends_on_the_second_within_a_cached_minute(catalogue, popular):
    """The slot's rules are worked out once per rules list, until the next moment a rule starts or ends: a
    rule dated inside the minute applies from its start to its end exactly, as a fresh check would say."""
    from shop_reco.services.rules import active_rules, rules_for_slot, rules_for_slot_now

    minute = timezone.now().replace(second=0, microsecond=0) + timedelta(minutes=1)
    starts, ends = minute + timedelta(seconds=20), minute + timedelta(seconds=40)
    rule(action="exclude", product_key=catalogue.key("Kitchen 1"), starts_at=starts, ends_at=ends)
    rule(action="boost", category="Toys", strength=2.0, slot="trending")
    version = context_for().version_id
    rules = active_rules(version, minute)
    seen = []
    for second in (0, 19, 20, 21, 39, 40, 59, 21, 0):  # out of order too: no answer outlives its moment
        now = minute + timedelta(seconds=second)
        for slot in ("trending", "similar"):
            applying, signature = rules_for_slot_now(rules, slot, now)
            assert applying == rules_for_slot(rules, slot, now)  # the per-request check it replaces
            seen.append((slot, second, len(applying), signature))
    excluded_at = {second for slot, second, count, _ in seen if slot == "similar" and count == 1}
    assert excluded_at == {20, 21, 39}
    signatures = {signature for *_, signature in seen}
    assert len(signatures) == 4  # trending and similar, each with and without the dated rule
