from __future__ import annotations

import csv
import gzip
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from demo_shop.catalogue import retail
from demo_shop.catalogue.loader import DEMO_PASSWORD
from demo_shop.catalogue.models import Category, Product
from demo_shop.orders.models import Order, OrderLine

HEADER = [*retail.COLUMNS, "Country"]
DEC = "2010-12-01 08:26:00"
JUNE = "2011-06-01 10:00:00"
HEART = "WHITE HANGING HEART T-LIGHT HOLDER"
BAG = "JUMBO BAG PINK POLKADOT"


def row(invoice: str, code: str, text: str, quantity: int, price: str, customer: str = "", date: str = DEC):
    return [invoice, code, text, str(quantity), date, price, customer, "United Kingdom"]


ROWS = [
    # A customer's first invoice, with an exact duplicate row and a trailing space in a description.
    row("536365", "85123A", HEART + " ", 6, "2.55", "17850.0"),
    row("536365", "85123A", HEART + " ", 6, "2.55", "17850.0"),
    row("536365", "22386", BAG, 10, "1.95", "17850.0"),
    row("536365", "POST", "POSTAGE", 1, "18.00", "17850.0"),
    # Same code, other descriptions and prices: the most frequent name and the median price win.
    row("536366", "85123A", "CREAM HANGING HEART T-LIGHT HOLDER", 1, "2.95", "17850.0", JUNE),
    row("536366", "85123A", HEART, 2, "3.25", "17850.0", JUNE),
    row("536366", "22386", "", 5, "2.08", "17850.0", JUNE),
    # A cancellation, a stock adjustment, a zero price and non-product codes: all skipped.
    row("C536379", "85123A", HEART, -1, "2.55", "17850.0"),
    row("536380", "22386", "check", -12, "0"),
    row("536381", "22386", BAG, 3, "0"),
    row("536382", "DOT", "DOTCOM POSTAGE", 1, "569.77"),
    row("536382", "gift_0001_20", "Dotcomgiftshop Gift Voucher £20.00", 1, "17.02"),
    row("536382", "BANK CHARGES", "Bank Charges", 1, "15.00"),
    row("536382", "DCGSSGIRL", "GIRLS PARTY BAG", 1, "3.29"),
    row("536382", "M", "Manual", 1, "0.85"),
    # A guest order.
    row("536383", "21730", "GLASS STAR FROSTED T-LIGHT HOLDER", 2, "4.25", "", "2010-12-02 12:00:00"),
    # The customer behind the demo login.
    row("536384", "22386", BAG, 1, "1.95", "13694.0", "2010-12-03 12:00:00"),
]


def write_file(path: Path, rows: list[list[str]] = ROWS) -> Path:
    text = StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.getvalue().encode()))
    else:
        path.write_text(text.getvalue(), encoding="utf-8")
    return path


def load(path: Path, *args: str) -> str:
    out = StringIO()
    call_command("load_demo_data", "--path", str(path), *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def counts() -> dict[str, int]:
    return {
        "categories": Category.objects.count(),
        "products": Product.objects.count(),
        "users": get_user_model().objects.count(),
        "orders": Order.objects.count(),
        "lines": OrderLine.objects.count(),
    }


@pytest.mark.parametrize(
    ("description", "category"),
    [
        ("WHITE HANGING HEART T-LIGHT HOLDER", "Candles & lights"),
        ("JUMBO BAG RED RETROSPOT", "Bags"),
        ("ROSES REGENCY TEACUP AND SAUCER", "Tableware"),
        ("PAPER CHAIN KIT 50'S CHRISTMAS", "Christmas"),  # a theme beats an object
        ("WRAP ENGLISH ROSE", "Paper & cards"),
        ("PARTY BUNTING", "Party & celebrations"),
        ("VINTAGE SNAKES & LADDERS", "Other"),
        ("BAGATELLE", "Other"),  # whole words only: no "BAG" inside
    ],
)
def test_categorise(description: str, category: str) -> None:
    assert retail.categorise(description) == category


def test_stock_is_deterministic_with_some_out_of_stock() -> None:
    skus = [f"{n:05d}" for n in range(10000, 12000)]
    stocks = [retail.stock_for(sku) for sku in skus]
    assert stocks == [retail.stock_for(sku) for sku in skus]
    out = stocks.count(0)
    assert 0.02 * len(skus) < out < 0.1 * len(skus)


def test_parse_cleans_and_counts_skips(tmp_path: Path) -> None:
    data = retail.parse(retail.read_rows(write_file(tmp_path / "retail.csv")))

    assert data.rows == len(ROWS)
    assert data.skipped == {
        retail.Skip.DUPLICATE: 1,
        retail.Skip.CANCELLATION: 1,
        retail.Skip.QUANTITY: 1,
        retail.Skip.PRICE: 1,
        retail.Skip.NON_PRODUCT: 6,
    }
    heart = data.products["85123A"]
    assert heart.name == "WHITE HANGING HEART T-LIGHT HOLDER"  # 2 of 3 lines, trailing space stripped
    assert heart.price == Decimal("2.95")  # median of 2.55, 2.95, 3.25
    assert data.products["22386"].price == Decimal("1.95")  # median of 1.95, 2.08, 1.95
    assert data.products["22386"].name == "JUMBO BAG PINK POLKADOT"  # an empty description does not count
    assert set(data.orders) == {"536365", "536366", "536383", "536384"}
    assert data.customers == {"17850", "13694"}


def test_parse_rejects_a_file_without_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="InvoiceNo"):
        list(retail.read_rows(path))


@pytest.mark.django_db
def test_load_creates_products_customers_and_orders(tmp_path: Path) -> None:
    out = load(write_file(tmp_path / "retail.csv.gz"))

    assert counts() == {"categories": 2, "products": 3, "users": 2, "orders": 4, "lines": 7}
    heart = Product.objects.get(sku="85123A")
    assert (heart.name, heart.price, heart.category.name) == (
        "WHITE HANGING HEART T-LIGHT HOLDER",
        Decimal("2.95"),
        "Candles & lights",
    )
    assert heart.stock == retail.stock_for("85123A")

    first = Order.objects.get(number="536365")
    assert first.user.username == "customer17850"
    assert not first.user.has_usable_password()
    assert [(line.product.sku, line.quantity, line.unit_price) for line in first.lines.order_by("pk")] == [
        ("85123A", 6, Decimal("2.55")),
        ("22386", 10, Decimal("1.95")),
    ]
    # UK wall-clock time: 10:00 in June is 09:00 UTC, 08:26 in December is 08:26 UTC.
    assert Order.objects.get(number="536366").placed_at == datetime(2011, 6, 1, 9, 0, tzinfo=UTC)
    assert first.placed_at == datetime(2010, 12, 1, 8, 26, tzinfo=UTC)

    guest = Order.objects.get(number="536383")
    assert guest.user is None
    demo = Order.objects.get(number="536384").user
    assert demo.username == "demo" and demo.check_password(DEMO_PASSWORD)

    assert "products            3  (new 3)" in out
    for reason, count in [("cancellation", 1), ("non-product code", 6), ("duplicate row", 1)]:
        assert f"{reason:<20} {count:>8,}" in out


@pytest.mark.django_db
def test_load_is_idempotent(tmp_path: Path) -> None:
    path = write_file(tmp_path / "retail.csv")
    load(path)
    first = counts()
    Product.objects.filter(sku="85123A").update(stock=0)

    out = load(path)

    assert counts() == first
    assert "No new orders" in out
    # A rerun restores the demo's known stock.
    assert Product.objects.get(sku="85123A").stock == retail.stock_for("85123A")


@pytest.mark.django_db
def test_flush_wipes_demo_data_but_not_staff(tmp_path: Path, django_user_model) -> None:
    path = write_file(tmp_path / "retail.csv")
    django_user_model.objects.create_superuser("admin", "admin@example.com", "pw")
    load(path)
    Order.objects.create(number="W1", email="x@example.com")

    load(path, "--flush")

    assert counts() == {"categories": 2, "products": 3, "users": 3, "orders": 4, "lines": 7}
    assert django_user_model.objects.filter(username="admin").exists()


def test_missing_file_is_a_command_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="No such file"):
        load(tmp_path / "nope.csv")


@pytest.mark.slow
@pytest.mark.django_db
def test_shipped_subset_loads() -> None:
    assert retail.SUBSET_PATH.stat().st_size < 1_500_000
    call_command("load_demo_data", verbosity=0)

    found = counts()
    assert 1500 <= found["products"] <= 2500
    assert 10 <= found["categories"] <= 16
    assert found["orders"] > 2000 and found["lines"] > 40000
    assert Order.objects.filter(user__isnull=True).exists()
    assert Order.objects.filter(user__username="demo").count() >= 20
    assert Product.objects.filter(stock=0).exists() and Product.objects.filter(stock__gt=0).exists()
