"""Each slot returns its own stored list first, through the one service the tags and the API share."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from shop_reco.models import Event
from shop_reco.services import recommendations as reco
from shop_reco.services.context import context_for
from shop_reco.testing import publish_lists
from shop_reco.tracking import track

VISITOR = "a" * 32


def view(key: str, minutes_ago: int, visitor: str = VISITOR, user=None) -> Event:
    """A product view, recorded as a shop records it (``shop_reco.track``)."""
    event_id = track(
        "view",
        product=key,
        visitor_id=visitor,
        user=user,
        occurred_at=timezone.now() - timedelta(minutes=minutes_ago),
    )
    return Event.objects.get(client_event_id=event_id)


def purchase(key: str, days_ago: float = 1, visitor: str = VISITOR, user=None, price="2.50") -> Event:
    event_id = track(
        "purchase",
        product=key,
        visitor_id=visitor,
        user=user,
        unit_price=Decimal(price),
        occurred_at=timezone.now() - timedelta(days=days_ago),
    )
    return Event.objects.get(client_event_id=event_id)


def test_similar_products_follow_the_stored_list(catalogue):
    k = catalogue.key
    publish_lists(
        {("product", k("Kitchen 1"), "similar"): catalogue.keys("Kitchen 3", "Kitchen 2", "Garden 1")}
    )
    result = reco.similar_products(catalogue["Kitchen 1"], limit=3)
    assert catalogue.names(result.keys) == ["Kitchen 3", "Kitchen 2", "Garden 1"]
    assert {item.source for item in result} == {"similar"}
    assert result.anchor == catalogue["Kitchen 1"]
    assert [item.position for item in result] == [1, 2, 3]


def test_similar_products_accept_a_key_and_blend_cf_and_content(catalogue):
    k = catalogue.key
    publish_lists(
        {
            ("product", k("Kitchen 1"), "similar_cf"): catalogue.keys("Kitchen 2"),
            ("product", k("Kitchen 1"), "similar_content"): catalogue.keys("Kitchen 3", "Kitchen 2"),
        }
    )
    result = reco.similar_products(k("Kitchen 1"), limit=2)
    # Kitchen 2 is in both lists, so it leads.
    assert catalogue.names(result.keys) == ["Kitchen 2", "Kitchen 3"]
    assert result.items[1].source == "similar_content"


def test_bought_together_has_the_bundle_price(catalogue):
    k = catalogue.key
    publish_lists({("product", k("Kitchen 1"), "bought_together"): catalogue.keys("Garden 2", "Toys 3")})
    result = reco.bought_together(catalogue["Kitchen 1"], limit=2)
    assert catalogue.names(result.keys) == ["Garden 2", "Toys 3"]
    assert result.bundle_price == Decimal("1.50") + Decimal("2.50") + Decimal("3.50")
    assert all(item.source == "bought_together" for item in result)


def test_cart_blends_the_lists_of_every_cart_item(catalogue):
    k = catalogue.key
    publish_lists(
        {
            ("product", k("Kitchen 1"), "bought_together"): catalogue.keys("Garden 1", "Toys 1"),
            ("product", k("Garden 4"), "bought_together"): catalogue.keys("Toys 1", "Garden 2"),
            ("product", k("Garden 4"), "similar"): catalogue.keys("Garden 3"),
        }
    )
    result = reco.cart_recommendations([catalogue["Kitchen 1"], k("Garden 4")], limit=4)
    names = catalogue.names(result.keys)
    assert names[0] == "Toys 1"  # with both cart items
    assert set(names) == {"Toys 1", "Garden 1", "Garden 2", "Garden 3"}
    assert not {"Kitchen 1", "Garden 4"} & set(names)


def test_cart_object_with_lines_is_understood(catalogue):
    k = catalogue.key

    class Cart:
        lines = {k("Kitchen 1"): 2}

    publish_lists({("product", k("Kitchen 1"), "bought_together"): catalogue.keys("Kitchen 1", "Toys 2")})
    result = reco.cart_recommendations(Cart(), limit=1)
    assert catalogue.names(result.keys) == ["Toys 2"]


def test_for_you_uses_the_users_list_then_the_visitors(catalogue, django_user_model):
    user = django_user_model.objects.create_user("ann", password="x")
    publish_lists(
        {
            ("user", str(user.pk), "for_you"): catalogue.keys("Toys 4", "Toys 3"),
            ("visitor", VISITOR, "for_you"): catalogue.keys("Garden 4"),
        }
    )
    result = reco.recommended_for_you(context=context_for(user=user, visitor_id=VISITOR), limit=3)
    assert catalogue.names(result.keys) == ["Toys 4", "Toys 3", "Garden 4"]
    anonymous = reco.recommended_for_you(context=context_for(visitor_id=VISITOR), limit=1)
    assert catalogue.names(anonymous.keys) == ["Garden 4"]
    assert anonymous.items[0].source == "for_you"


def test_trending_overall_and_per_category(catalogue):
    publish_lists(
        {
            ("global", "", "trending"): catalogue.keys("Toys 1", "Kitchen 1"),
            ("category", "Garden", "trending"): catalogue.keys("Garden 3", "Garden 1"),
        }
    )
    overall = reco.trending(limit=2)
    assert catalogue.names(overall.keys) == ["Toys 1", "Kitchen 1"]
    garden = reco.trending("Garden", limit=4)
    assert catalogue.names(garden.keys)[:2] == ["Garden 3", "Garden 1"]
    # The category slot tops up from the same category before anything else.
    assert all(name.startswith("Garden") for name in catalogue.names(garden.keys))


def test_recently_viewed_is_newest_first_and_distinct(catalogue):
    view(catalogue.key("Kitchen 1"), 30)
    view(catalogue.key("Toys 2"), 20)
    view(catalogue.key("Kitchen 1"), 10)
    view(catalogue.key("Garden 3"), 5)
    result = reco.recently_viewed(
        context=context_for(visitor_id=VISITOR), exclude_product=catalogue["Garden 3"]
    )
    assert catalogue.names(result.keys) == ["Kitchen 1", "Toys 2"]
    assert all(item.source == "recently_viewed" for item in result)


def test_recently_viewed_is_empty_without_history(catalogue):
    publish_lists({("global", "", "popular"): catalogue.keys("Toys 1")})
    assert not reco.recently_viewed(context=context_for(visitor_id=VISITOR))


def test_buy_again_ranks_by_count_and_adds_the_stored_list(catalogue, django_user_model):
    user = django_user_model.objects.create_user("bob", password="x")
    purchase(catalogue.key("Kitchen 2"), days_ago=30, user=user)
    purchase(catalogue.key("Kitchen 2"), days_ago=10, user=user)
    purchase(catalogue.key("Toys 1"), days_ago=1, user=user)
    publish_lists({("user", str(user.pk), "buy_again"): catalogue.keys("Garden 1", "Toys 1")})
    result = reco.buy_again(context=context_for(user=user))
    # Kitchen 2 was bought twice, but the stored model ranks Toys 1 first, which lifts it; Garden 1 comes
    # from the stored list alone, after the shopper's own history.
    assert catalogue.names(result.keys) == ["Toys 1", "Kitchen 2", "Garden 1"]
    assert [item.source for item in result] == ["purchase_history", "purchase_history", "buy_again"]
    assert result.items[1].reason == "You bought this 2 times"


def test_recommend_dispatches_by_slot_name(catalogue):
    publish_lists({("global", "", "popular"): catalogue.keys("Toys 1")})
    assert catalogue.names(reco.recommend("trending", limit=1).keys) == ["Toys 1"]
    import pytest

    with pytest.raises(ValueError, match="Unknown recommendation slot"):
        reco.recommend("nope")


def test_a_new_version_is_read_without_any_purge(catalogue, settings):
    publish_lists({("global", "", "popular"): catalogue.keys("Toys 1")})
    assert catalogue.names(reco.trending(limit=1).keys) == ["Toys 1"]
    # The live version id is memoised for VERSION_CACHE_SECONDS; lists are keyed by version.
    from shop_reco.models import ScoreVersion
    from shop_reco.services.lists import _memo

    publish_lists({("global", "", "popular"): catalogue.keys("Garden 1")})
    _memo.clear()  # what VERSION_CACHE_SECONDS passing does
    assert catalogue.names(reco.trending(limit=1).keys) == ["Garden 1"]
    assert ScoreVersion.objects.filter(status="published").count() == 1
