"""Bulk import: OTTO sessions, CSV, JSON lines and historical orders; idempotent, with counts."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from shop_reco.models import Event
from shop_reco.services.tracking import import_orders

pytestmark = pytest.mark.django_db
OTTO = Path("/work/shared/data/otto-sessions-sample/train_20_sessions.jsonl")
COLUMNS = [
    "event_type",
    "visitor_id",
    "user_id",
    "product_key",
    "quantity",
    "unit_price",
    "basket_ref",
    "occurred_at",
]


def run(*args) -> str:
    out = StringIO()
    call_command("reco_import_events", *args, "--no-progress", stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.skipif(not OTTO.exists(), reason="OTTO sample not present")
def test_otto_sessions_import_once(tmp_path):
    import json

    expected = {"clicks": 0, "carts": 0, "orders": 0}
    for line in OTTO.read_text().splitlines():
        for event in json.loads(line)["events"]:
            expected[event["type"]] += 1
    total = sum(expected.values())

    assert f"stored {total}" not in run(str(OTTO))  # no catalogue: everything is an unknown product
    assert Event.objects.count() == 0
    first = run(str(OTTO), "--allow-unknown-products")
    stored = Event.objects.count()
    assert f"read {total}, stored {stored}" in first
    assert stored == total - int(first.split("duplicates ")[1].split(",")[0])  # OTTO repeats a few events
    assert Event.objects.filter(event_type="purchase").count() <= expected["orders"]
    assert "stored 0" in run(str(OTTO), "--allow-unknown-products")
    assert Event.objects.count() == stored
    session0 = Event.objects.filter(visitor_id="0")
    assert session0.filter(event_type="view").exists() and session0.filter(event_type="purchase").exists()
    assert session0.earliest("occurred_at").occurred_at == datetime.fromtimestamp(1659304800.025, UTC)


def test_csv_import_skips_unknown_products_and_counts_invalid_rows(products, customer, tmp_path):
    path = tmp_path / "events.csv"
    key = str(products[0].pk)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerow(["view", "v1", "", key, "1", "", "", "2025-01-01T10:00:00+00:00"])
        writer.writerow(["purchase", "", customer.pk, key, "2", "4.50", "W1", "2025-01-01T11:00:00"])
        writer.writerow(["view", "v1", "", "999999", "1", "", "", "2025-01-01T10:00:00"])
        writer.writerow(["view", "v1", "", key, "many", "", "", "2025-01-01T10:00:00"])
        writer.writerow(["zoom", "v1", "", key, "1", "", "", "2025-01-01T10:00:00"])
    out = run(str(path))
    assert "read 5, stored 2, duplicates 0, unknown products 1, unknown users 0, invalid 2" in out
    purchase = Event.objects.get(event_type="purchase")
    assert (purchase.user, purchase.unit_price, purchase.quantity) == (customer, Decimal("4.50"), 2)
    assert "stored 0, duplicates 2" in run(str(path))


def test_jsonl_events_import(products, tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(
        f'{{"event_type": "view", "visitor_id": "v", "product_key": "{products[1].pk}", '
        '"occurred_at": "2025-02-01T00:00:00Z"}\nnot json\n'
    )
    assert "read 2, stored 1" in run(str(path))


def test_bad_invocations_are_command_errors(tmp_path):
    with pytest.raises(CommandError):
        run()
    with pytest.raises(CommandError):
        run(str(tmp_path / "events.txt"))
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(CommandError, match="missing column"):
        run(str(bad))


def historical_orders():
    """A shop's documented callable for --orders."""
    from demo_shop.catalogue.models import Product

    key = str(Product.objects.order_by("pk").first().pk)
    when = datetime(2024, 12, 1, tzinfo=UTC)
    yield ("536365", None, key, 6, "2.55", when)
    yield ("536365", None, key, 2, "2.55", when)  # same product twice in one order: one event, quantity 8
    yield ("536366", None, "no-such-product", 1, "1.00", when)


def test_import_orders_is_idempotent(products):
    rows = list(historical_orders())
    first = import_orders(rows)
    assert (first.stored, first.unknown_products) == (1, 1)
    again = import_orders(rows)
    assert (again.stored, again.duplicates) == (0, 1)
    event = Event.objects.get()
    assert (event.event_type, event.basket_ref, event.quantity) == ("purchase", "536365", 8)
    assert event.client_event_id == f"order:536365:{products[0].pk}"


def test_orders_command_with_a_callable(products):
    assert "stored 1" in run("--orders", "tests.tracking.test_import.historical_orders")
    with pytest.raises(CommandError):
        run("--orders", "no.such.callable")


def test_bulk_import_uses_copy_on_postgresql(postgres, products):
    when = datetime(2024, 12, 1, tzinfo=UTC)
    rows = [(f"R{i}", None, str(products[i % 3].pk), 1, "1.00", when) for i in range(1200)]
    assert import_orders(rows, batch_size=500).stored == 1200
    assert import_orders(rows, batch_size=500).duplicates == 1200
