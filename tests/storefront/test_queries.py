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


def test_rows_refreshed_ahead_are_those_lapsing_soonest(monkeypatch):
    """When more cached rows are due than one query reloads, the ones about to lapse go first, whatever
    their order in the cache: otherwise each of those left out lapses alone and costs a one-row query."""
    from shop_reco.services import lists
    from shop_reco.services.context import ProductRow

    monkeypatch.setattr(lists, "ROWS_REFRESHED_AHEAD", 3)
    monkeypatch.setattr(lists, "_next_refresh_scan", 0.0)
    now, seconds = 1000.0, 30.0  # due: lapsing within 3 s
    lists._rows.clear()
    # Least recently used first: the latest-lapsing rows sit at the front of the cache.
    for key, expires in [("a", 1002.9), ("b", 1002.5), ("c", 1001.0), ("d", 1000.1), ("e", 1000.5)]:
        lists._rows.put(key, (expires, ProductRow(object(), True, "")))
    lists._rows.put("later", (1010.0, ProductRow(object(), True, "")))  # not due
    lists._rows.put("gone", (1000.2, None))  # known unavailable: due like the others
    lists._rows.put("out", (1000.0, ProductRow(object(), False, "")))  # an out-of-stock anchor's row: not
    lists._rows.put("skipped", (1000.0, ProductRow(object(), True, "")))

    assert lists.rows_due(now, seconds, {"skipped"}) == ["d", "gone", "e"]
    assert lists.rows_due(now + 0.1, seconds, set()) == []  # looked a moment ago
    lists._rows.clear()


def test_rows_loaded_by_separate_queries_lapse_at_different_times(catalogue):
    """A burst of first requests (after a restart) loads the catalogue within a second; its rows must not all
    lapse within a second again, more than one refresh ahead reloads. Each query's rows get their own
    lifetime in the last fifth of PRODUCT_CACHE_SECONDS (30 s), never longer."""
    import time

    from shop_reco.services import lists

    before = time.monotonic()
    for key in catalogue.keys(*catalogue.products):  # twelve one-product queries, as twelve slots would make
        context_for().fetch([key])
    after = time.monotonic()
    expiries = [lists._rows.peek(key)[0] for key in catalogue.keys(*catalogue.products)]
    assert all(before + 24 <= expires <= after + 30 for expires in expiries)
    assert max(expiries) - min(expiries) > 1.0
    # Rows of one query keep lapsing together, so they come back together.
    lists.clear_caches()
    together = catalogue.keys("Kitchen 1", "Kitchen 2", "Toys 1")
    context_for().fetch(together)
    assert len({lists._rows.peek(key)[0] for key in together}) == 1
