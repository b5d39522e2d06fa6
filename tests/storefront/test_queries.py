"""The read path stays at very few queries: warm, none; the shopper's history once after each new event."""

from __future__ import annotations

from shop_reco.services import recommendations as reco
from shop_reco.services.context import context_for
from shop_reco.testing import publish_lists
from tests.storefront.test_slots import VISITOR, view


def test_cold_then_warm_query_counts(catalogue, django_assert_num_queries, settings):
    k = catalogue.key
    publish_lists(
        {
            ("product", k("Kitchen 1"), "similar"): catalogue.keys("Kitchen 2", "Kitchen 3", "Garden 1"),
            ("visitor", VISITOR, "for_you"): catalogue.keys("Toys 1", "Toys 2", "Toys 3"),
        }
    )
    view(k("Kitchen 1"), 3)
    assert context_for().config is not None  # the tuned configuration, read once per process and cached
    # Cold: version, lists (one query for all three similar sources), rules, products.
    with django_assert_num_queries(4):
        reco.similar_products(k("Kitchen 1"), limit=3, context=context_for())
    # Warm: nothing; the product rows are reused for PRODUCT_CACHE_SECONDS.
    with django_assert_num_queries(0):
        reco.similar_products(k("Kitchen 1"), limit=3, context=context_for())
    # A shopper's history (recent views and purchases together) is one indexed read, then cached until
    # they do something new.
    reco.recommended_for_you(limit=3, context=context_for(visitor_id=VISITOR))
    with django_assert_num_queries(0):
        reco.recommended_for_you(limit=3, context=context_for(visitor_id=VISITOR))
    view(k("Kitchen 2"), 1)
    with django_assert_num_queries(1):
        reco.recommended_for_you(limit=3, context=context_for(visitor_id=VISITOR))
    # Without the product cache, one product fetch per slot.
    settings.SHOP_RECO = {**settings.SHOP_RECO, "PRODUCT_CACHE_SECONDS": 0}
    reco.similar_products(k("Kitchen 1"), limit=3, context=context_for())
    with django_assert_num_queries(1):
        reco.similar_products(k("Kitchen 1"), limit=3, context=context_for())


def test_a_stock_change_shows_once_the_product_cache_lapses(catalogue, monkeypatch):
    k = catalogue.key
    publish_lists({("product", k("Kitchen 1"), "similar"): catalogue.keys("Kitchen 2", "Kitchen 3")})
    assert catalogue.names(reco.similar_products(k("Kitchen 1"), limit=1).keys) == ["Kitchen 2"]
    catalogue["Kitchen 2"].stock = 0
    catalogue["Kitchen 2"].save()
    import time

    later = time.monotonic() + 31  # PRODUCT_CACHE_SECONDS is 30
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert catalogue.names(reco.similar_products(k("Kitchen 1"), limit=1).keys) == ["Kitchen 3"]


def test_lapsed_product_rows_come_back_together_in_one_query(
    catalogue, django_assert_num_queries, monkeypatch
):
    """When one slot's rows lapse, the rows other slots read come back in the same query, stock changes
    included: the row cache refreshes in one query per round, not in one per slot."""
    k = catalogue.key
    publish_lists(
        {
            ("product", k("Kitchen 1"), "similar"): catalogue.keys("Kitchen 2", "Kitchen 3"),
            ("product", k("Garden 1"), "similar"): catalogue.keys("Garden 2", "Toys 1", "Toys 2"),
        }
    )
    reco.similar_products(k("Kitchen 1"), limit=2, context=context_for())
    garden = reco.similar_products(k("Garden 1"), limit=2, context=context_for())
    assert catalogue.names(garden.keys) == ["Garden 2", "Toys 1"]
    catalogue["Toys 1"].stock = 0
    catalogue["Toys 1"].save()
    import time

    later = time.monotonic() + 31  # PRODUCT_CACHE_SECONDS is 30
    monkeypatch.setattr(time, "monotonic", lambda: later)
    with django_assert_num_queries(2):  # the live version (re-read every few seconds), then the products
        reco.similar_products(k("Kitchen 1"), limit=2, context=context_for())
    with django_assert_num_queries(0):
        garden = reco.similar_products(k("Garden 1"), limit=2, context=context_for())
    assert catalogue.names(garden.keys) == ["Garden 2", "Toys 2"]


def test_three_slots_of_one_page_share_products_and_history(catalogue, django_assert_num_queries):
    k = catalogue.key
    publish_lists(
        {
            ("product", k("Kitchen 1"), "similar"): catalogue.keys("Kitchen 2", "Kitchen 3"),
            ("product", k("Kitchen 1"), "bought_together"): catalogue.keys("Garden 1"),
            ("visitor", VISITOR, "for_you"): catalogue.keys("Toys 1", "Toys 2"),
        }
    )

    def page(context):
        reco.similar_products(k("Kitchen 1"), limit=2, context=context)
        reco.bought_together(k("Kitchen 1"), limit=1, context=context)
        reco.recommended_for_you(limit=2, context=context)

    page(context_for(visitor_id=VISITOR))  # warms the caches
    context = context_for(visitor_id=VISITOR)
    with django_assert_num_queries(0):  # products from the process's cache, the history from the cache
        page(context)
