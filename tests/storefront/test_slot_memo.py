"""The slot memo: a warm slot is reused, yet every change a shopper or merchant makes still shows at once."""

from __future__ import annotations

from django.core.cache import cache

from shop_reco.models import MerchandisingRule
from shop_reco.services import lists
from shop_reco.services import recommendations as reco
from shop_reco.services.context import context_for
from shop_reco.testing import publish_lists
from tests.storefront.test_slots import VISITOR, purchase

SIMILAR = ("Kitchen 2", "Kitchen 3", "Garden 1", "Toys 1")


def shown(result) -> list[tuple[str, str, str, int, float]]:
    return [(item.key, item.reason, item.token, item.position, item.score) for item in result]


def forget_all_but_the_slot_memo() -> None:
    """Lists, versions, rules and rows re-read; only the memo of ranked slots kept."""
    lists._lists.clear()
    lists._memo.clear()
    lists._rows.clear()
    cache.clear()


def test_warm_slot_costs_no_query_and_equals_the_full_computation(
    catalogue, settings, django_assert_num_queries
):
    k = catalogue.key
    publish_lists({("product", k("Kitchen 1"), "similar"): catalogue.keys(*SIMILAR)})
    reco.similar_products(k("Kitchen 1"), limit=3)
    with django_assert_num_queries(0):
        warm = reco.similar_products(k("Kitchen 1"), limit=3)
    settings.SHOP_RECO = {**settings.SHOP_RECO, "PRODUCT_CACHE_SECONDS": 0}  # no row cache: no memo
    assert shown(warm) == shown(reco.similar_products(k("Kitchen 1"), limit=3))


def test_a_shopper_who_excludes_a_candidate_gets_the_full_computation(catalogue):
    k = catalogue.key
    publish_lists({("product", k("Kitchen 1"), "similar"): catalogue.keys(*SIMILAR)})
    assert catalogue.names(reco.similar_products(k("Kitchen 1"), limit=2).keys) == ["Kitchen 2", "Kitchen 3"]
    purchase(k("Kitchen 2"))
    mine = reco.similar_products(k("Kitchen 1"), limit=2, context=context_for(visitor_id=VISITOR))
    assert catalogue.names(mine.keys) == ["Kitchen 3", "Garden 1"]
    # Keys shown higher on the page count alike, and the memo still serves the next new visitor.
    page = reco.similar_products(k("Kitchen 1"), limit=2, context=context_for(shown=[k("Kitchen 3")]))
    assert catalogue.names(page.keys) == ["Kitchen 2", "Garden 1"]
    assert catalogue.names(reco.similar_products(k("Kitchen 1"), limit=2).keys) == ["Kitchen 2", "Kitchen 3"]


def test_a_new_version_a_rule_and_a_rewritten_list_take_effect(catalogue):
    k = catalogue.key
    publish_lists({("product", k("Kitchen 1"), "similar"): catalogue.keys(*SIMILAR)})
    assert reco.similar_products(k("Kitchen 1"), limit=1).keys == [k("Kitchen 2")]
    version = publish_lists({("product", k("Kitchen 1"), "similar"): catalogue.keys("Toys 2", "Toys 3")})
    forget_all_but_the_slot_memo()
    result = reco.similar_products(k("Kitchen 1"), limit=1)
    assert result.keys == [k("Toys 2")] and result.version_id == version.pk

    MerchandisingRule.objects.create(action="exclude", product_key=k("Toys 2"))
    forget_all_but_the_slot_memo()
    assert reco.similar_products(k("Kitchen 1"), limit=1).keys == [k("Toys 3")]

    # An incremental update rewrites the list inside the version and forgets it.
    from shop_reco.models import RecommendationList

    RecommendationList.objects.filter(version=version, subject=k("Kitchen 1")).update(
        item_keys=catalogue.keys("Garden 4"), scores=[1.0]
    )
    lists.forget_lists(version.pk, "product", k("Kitchen 1"))
    assert reco.similar_products(k("Kitchen 1"), limit=1).keys == [k("Garden 4")]


def test_out_of_stock_shows_when_the_row_cache_lapses(catalogue, monkeypatch):
    import time

    k = catalogue.key
    publish_lists({("product", k("Kitchen 1"), "similar"): catalogue.keys(*SIMILAR)})
    assert reco.similar_products(k("Kitchen 1"), limit=1).keys == [k("Kitchen 2")]
    catalogue["Kitchen 2"].stock = 0
    catalogue["Kitchen 2"].save()
    later = time.monotonic() + 31  # PRODUCT_CACHE_SECONDS is 30
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert reco.similar_products(k("Kitchen 1"), limit=1).keys == [k("Kitchen 3")]


def test_one_shoppers_memoised_slot_is_never_anothers(catalogue):
    other = "b" * 32
    publish_lists(
        {
            ("visitor", VISITOR, "for_you"): catalogue.keys("Toys 1", "Toys 2"),
            ("visitor", other, "for_you"): catalogue.keys("Garden 3", "Garden 4"),
        }
    )
    for _ in range(2):
        mine = reco.recommended_for_you(limit=2, context=context_for(visitor_id=VISITOR))
        theirs = reco.recommended_for_you(limit=2, context=context_for(visitor_id=other))
        assert catalogue.names(mine.keys) == ["Toys 1", "Toys 2"]
        assert catalogue.names(theirs.keys) == ["Garden 3", "Garden 4"]


def later_by(monkeypatch, seconds: float) -> None:
    import time

    moment = time.monotonic() + seconds
    monkeypatch.setattr(time, "monotonic", lambda: moment)


def test_a_price_or_name_change_shows_when_the_row_cache_lapses(catalogue, monkeypatch):
    k = catalogue.key
    publish_lists({("product", k("Kitchen 1"), "similar"): catalogue.keys(*SIMILAR)})
    before = reco.similar_products(k("Kitchen 1"), limit=2)
    kettle = catalogue["Kitchen 3"]
    kettle.name, kettle.price = "Kitchen 3 (new)", kettle.price + 1
    kettle.save()
    later_by(monkeypatch, 31)  # PRODUCT_CACHE_SECONDS is 30
    after = reco.similar_products(k("Kitchen 1"), limit=2)
    assert after.keys == before.keys
    assert (after.items[1].name, after.items[1].price) == ("Kitchen 3 (new)", kettle.price)


def test_unchanged_rows_and_lists_renew_the_memo_instead_of_ranking_again(catalogue, monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    k = catalogue.key
    publish_lists({("product", k("Kitchen 1"), "similar"): catalogue.keys(*SIMILAR)})
    first = reco.similar_products(k("Kitchen 1"), limit=3)
    ranked = []
    monkeypatch.setattr(reco, "_rank_window", lambda *args: ranked.append(args) or [])
    later_by(monkeypatch, 120)  # rows (30 s) and the local copies of lists (60 s) have lapsed
    with CaptureQueriesContext(connection) as queries:
        again = reco.similar_products(k("Kitchen 1"), limit=3)
    assert shown(again) == shown(first) and ranked == []
    # One query re-reads the rows; the lists come from the shared cache (the version and the rules, whose
    # short memos lapsed too, may be asked for again).
    tables = [query["sql"].split(" FROM ", 1)[1].split()[0] for query in queries.captured_queries]
    assert tables.count('"catalogue_product"') == 1 and '"shop_reco_recommendationlist"' not in tables
    with CaptureQueriesContext(connection) as queries:  # the renewed memo holds the reloaded rows
        assert shown(reco.similar_products(k("Kitchen 1"), limit=3)) == shown(first)
    assert len(queries) == 0 and ranked == []


def test_a_reloaded_row_that_says_the_same_is_the_row_already_held(catalogue, monkeypatch):
    """After the row cache lapses, an unchanged product keeps its cached row object (so memos stay as they are
    and nothing new is kept for the garbage collector to walk); any change, of the product or of a related
    object loaded with it, gives the new row."""
    from shop_reco.services.context import context_for

    k = catalogue.key
    publish_lists({("product", k("Kitchen 1"), "similar"): catalogue.keys(*SIMILAR)})
    first = reco.similar_products(k("Kitchen 1"), limit=3)
    rows_before = {item.key: context_for().row(item.key) for item in first}
    memo_before = first.memo
    later_by(monkeypatch, 31)
    again = reco.similar_products(k("Kitchen 1"), limit=3)
    assert shown(again) == shown(first) and again.memo is memo_before  # renewed in place, not copied
    assert all(context_for().row(key) is row for key, row in rows_before.items())

    kettle = catalogue["Kitchen 3"]
    kettle.price += 1
    kettle.save()
    category = kettle.category
    category.name = "Kitchenware"
    category.save()
    later_by(monkeypatch, 62)
    changed = {item.key: context_for().row(item.key) for item in first}
    assert changed[k("Kitchen 3")] is not rows_before[k("Kitchen 3")]
    assert changed[k("Kitchen 3")].product.price == kettle.price
    # Kitchen 2 shares the renamed category: its row changed too; Garden 1 did not change at all.
    assert changed[k("Kitchen 2")] is not rows_before[k("Kitchen 2")]
    assert changed[k("Garden 1")] is rows_before[k("Garden 1")]
