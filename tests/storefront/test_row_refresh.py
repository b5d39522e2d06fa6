"""The row refresh thread: cached product rows are reloaded before they lapse, not by the requests needing them."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from shop_reco.services import lists, row_refresh
from shop_reco.services import recommendations as reco
from shop_reco.services.context import context_for
from shop_reco.testing import publish_lists


def _expiry(key: str) -> float:
    return lists._rows.peek(key)[0]


@pytest.fixture
def refresh_soon(monkeypatch, settings):
    """Rows of a 6 s lifetime (4.8-6 s), due in their last 4.5 s: the thread, looking every 50 ms, has over 3 s
    to reload one before it lapses and a request would have to read it itself."""
    settings.SHOP_RECO = {**settings.SHOP_RECO, "PRODUCT_REFRESH_THREAD": True, "PRODUCT_CACHE_SECONDS": 6}
    monkeypatch.setattr(lists, "REFRESH_AHEAD_SHARE", 0.75)
    monkeypatch.setattr(row_refresh, "WAKE_SECONDS", 0.05)
    yield
    thread = row_refresh._thread[1]
    settings.SHOP_RECO = {**settings.SHOP_RECO, "PRODUCT_REFRESH_THREAD": False}
    if thread is not None:
        thread.join(timeout=10)  # it sees the setting, closes its connection and ends
        assert not thread.is_alive()


@pytest.mark.django_db(transaction=True)
def test_the_thread_reloads_rows_ahead_and_a_stock_change_reaches_the_slot(postgres, catalogue, refresh_soon):
    k = catalogue.key
    publish_lists(
        {("product", k("Kitchen 1"), "similar"): catalogue.keys("Kitchen 2", "Kitchen 3", "Garden 1")}
    )
    first = reco.similar_products(k("Kitchen 1"), limit=2, context=context_for())
    assert catalogue.names(first.keys) == ["Kitchen 2", "Kitchen 3"]
    assert row_refresh.running()

    catalogue["Kitchen 2"].stock = 0  # committed: the thread's own connection sees it
    catalogue["Kitchen 2"].save()
    # Within a row lifetime the slot shows the change, and no request read a product row itself meanwhile.
    product_queries, names = [], []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with CaptureQueriesContext(connection) as queries:
            names = catalogue.names(
                reco.similar_products(k("Kitchen 1"), limit=2, context=context_for()).keys
            )
        product_queries += [query for query in queries if "catalogue_product" in query["sql"]]
        if names == ["Kitchen 3", "Garden 1"]:
            break
        time.sleep(0.05)
    assert names == ["Kitchen 3", "Garden 1"]
    assert lists._rows.peek(k("Kitchen 2"))[1] is None  # reloaded by the thread: not available
    assert not product_queries


def test_rows_due_are_reloaded_only_while_the_process_serves_slots(catalogue, settings, monkeypatch):
    settings.SHOP_RECO = {**settings.SHOP_RECO, "PRODUCT_CACHE_SECONDS": 10}
    monkeypatch.setattr(lists, "REFRESH_AHEAD_SHARE", 1.0)  # every cached row is due, whatever its lifetime
    keys = catalogue.keys("Kitchen 1", "Kitchen 2", "Toys 3")
    context_for().fetch(keys)
    loaded_until = {key: _expiry(key) for key in keys}

    monkeypatch.setattr(row_refresh, "_last_read", time.monotonic() - 11)  # no slot for a lifetime: idle
    with CaptureQueriesContext(connection) as queries:
        assert row_refresh.refresh_due() == 0
    assert not queries

    row_refresh.note_read(time.monotonic())
    monkeypatch.setattr(row_refresh, "ROWS_PER_BATCH", 2)  # two batches: 2 rows, then 1
    with CaptureQueriesContext(connection) as queries:
        assert row_refresh.refresh_due() == 3
    assert len([query for query in queries if "catalogue_product" in query["sql"]]) == 2
    assert all(_expiry(key) != loaded_until[key] for key in keys)  # each put back with a new lifetime
