"""The fallback chain, from an empty database to a full one: a slot is never empty while products exist."""

from __future__ import annotations

from shop_reco.models import Event
from shop_reco.services import recommendations as reco
from shop_reco.services.context import context_for
from shop_reco.services.lists import clear_caches
from shop_reco.testing import publish_lists
from tests.storefront.test_slots import VISITOR, view


def for_you(limit=4):
    clear_caches()
    return reco.recommended_for_you(context=context_for(visitor_id=VISITOR), limit=limit)


def test_an_empty_catalogue_gives_an_empty_slot(db):
    assert not for_you()
    assert not reco.similar_products("1")


def test_the_for_you_chain_from_empty_to_full(catalogue):
    k = catalogue.key
    # 1. Products, no events, nothing published: any available products.
    result = for_you()
    assert len(result) == 4 and {item.source for item in result} == {"catalogue"}
    assert result.items[0].reason == "From our range"

    # 2. Events, nothing published: popular computed live from them.
    for _ in range(3):
        Event.objects.create(event_type="purchase", visitor_id="b" * 32, product_key=k("Toys 2"))
    Event.objects.create(event_type="view", visitor_id="b" * 32, product_key=k("Garden 2"))
    from django.core.cache import cache

    cache.clear()
    result = for_you()
    assert catalogue.names(result.keys[:2]) == ["Toys 2", "Garden 2"]
    assert result.items[0].source == "live_popular" and result.items[0].reason == "Popular right now"
    assert result.items[2].source == "catalogue"  # topped up

    # 3. A published version: popular overall, no live query any more.
    publish_lists({("global", "", "popular"): catalogue.keys("Kitchen 4", "Kitchen 3")})
    result = for_you()
    assert catalogue.names(result.keys[:2]) == ["Kitchen 4", "Kitchen 3"]
    assert result.items[0].source == "popular"
    assert "live_popular" not in {item.source for item in result}

    # 4. The visitor viewed something: trending in its category comes before popular overall.
    view(k("Garden 1"), 5)
    lists = {
        ("global", "", "popular"): catalogue.keys("Kitchen 4", "Kitchen 3"),
        ("category", "Garden", "trending"): catalogue.keys("Garden 3"),
    }
    publish_lists(lists)
    result = for_you()
    assert result.items[0].key == k("Garden 3") and result.items[0].reason == "Trending in Garden"

    # 5. ... similar to the last viewed comes before that.
    lists[("product", k("Garden 1"), "similar")] = catalogue.keys("Garden 4")
    publish_lists(lists)
    result = for_you()
    assert result.items[0].key == k("Garden 4") and result.items[0].reason == "Similar to Garden 1"

    # 6. ... what goes with the session's recent views before that.
    lists[("product", k("Garden 1"), "bought_together")] = catalogue.keys("Toys 3")
    publish_lists(lists)
    result = for_you()
    assert result.items[0].key == k("Toys 3") and result.items[0].reason == "Because you viewed Garden 1"

    # 7. ... and the shopper's personal list first of all.
    lists[("visitor", VISITOR, "for_you")] = catalogue.keys("Toys 1")
    publish_lists(lists)
    result = for_you(limit=6)
    assert [item.source for item in result] == [
        "for_you",
        "bought_together",
        "similar",
        "trending",
        "popular",
        "popular",
    ]
    assert catalogue.names(result.keys) == [
        "Toys 1",
        "Toys 3",
        "Garden 4",
        "Garden 3",
        "Kitchen 4",
        "Kitchen 3",
    ]


def test_similar_falls_back_to_the_category_then_the_shop(catalogue):
    publish_lists(
        {
            ("category", "Kitchen", "popular"): catalogue.keys("Kitchen 3"),
            ("global", "", "trending"): catalogue.keys("Toys 1"),
        }
    )
    result = reco.similar_products(catalogue["Kitchen 1"], limit=3)
    assert [item.reason for item in result][:2] == ["Popular in Kitchen", "Trending now"]
    assert result.items[2].source == "catalogue"


def test_a_published_version_without_lists_still_fills_from_the_catalogue(catalogue):
    publish_lists({})
    result = reco.trending(limit=2)
    assert len(result) == 2 and result.items[0].source == "catalogue"


def test_trending_in_an_empty_category_list_uses_the_categorys_products(catalogue):
    publish_lists({("global", "", "popular"): catalogue.keys("Kitchen 1")})
    result = reco.trending("Toys", limit=4)
    assert catalogue.names(result.keys) == ["Toys 1", "Toys 2", "Toys 3", "Toys 4"]
    assert result.items[0].reason == "More in Toys"
