"""Write cleaned Online Retail data into the demo shop's tables, idempotently and in bulk.

Keys: Product.sku, User.username ("customer<CustomerID>", or "demo" for DEMO_CUSTOMER), Order.number (the
InvoiceNo). Products are upserted; users and orders that already exist are left alone, so a second run adds
nothing. Historical orders become shop_reco events only through the import wired up in shop_reco, not here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, TypeVar

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.db.models import Q
from django.utils.text import slugify

from demo_shop.catalogue.models import Category, Product
from demo_shop.catalogue.retail import RetailData, stock_for
from demo_shop.orders.models import Order, OrderLine

# A real customer with 42 orders across most categories, behind the documented demo login.
DEMO_CUSTOMER = "13694"
DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-shop-2026"
BATCH_SIZE = 2000

T = TypeVar("T")
Progress = Callable[..., Iterable[Any]]


def _no_progress(iterable: Iterable[T], **_: Any) -> Iterable[T]:
    return iterable


def username_for(customer_id: str) -> str:
    return DEMO_USERNAME if customer_id == DEMO_CUSTOMER else f"customer{customer_id}"


def _batches(items: Sequence[T], size: int = BATCH_SIZE) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


@dataclass
class LoadSummary:
    categories: int = 0
    products: int = 0
    customers: int = 0
    orders: int = 0
    guest_orders: int = 0
    lines: int = 0
    created: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)


def flush_demo_data() -> None:
    """Remove every order, product and category, and the imported (non-staff) customers."""
    with transaction.atomic():
        OrderLine.objects.all().delete()
        Order.objects.all().delete()
        Product.objects.all().delete()
        Category.objects.all().delete()
        get_user_model().objects.filter(
            Q(username__startswith="customer") | Q(username=DEMO_USERNAME), is_staff=False
        ).delete()


@transaction.atomic
def load(data: RetailData, progress: Progress = _no_progress) -> LoadSummary:
    """Write the products, customers, orders and lines of ``data``; one transaction, so all or nothing."""
    summary = LoadSummary(skipped=data.skipped)
    categories = _load_categories({product.category for product in data.products.values()}, summary)
    product_ids = _load_products(data, categories, summary)
    user_ids = _load_users(data.customers, summary)
    _load_orders(data, product_ids, user_ids, summary, progress)
    return summary


def _load_categories(names: set[str], summary: LoadSummary) -> dict[str, int]:
    ids = {}
    for name in sorted(names):
        category, created = Category.objects.get_or_create(name=name, defaults={"slug": slugify(name)})
        ids[name] = category.pk
        summary.created["categories"] += created
    summary.categories = len(ids)
    return ids


def _load_products(data: RetailData, categories: dict[str, int], summary: LoadSummary) -> dict[str, int]:
    before = Product.objects.count()
    products = [
        Product(
            sku=item.sku,
            name=item.name,
            category_id=categories[item.category],
            price=item.price,
            stock=stock_for(item.sku),
            is_active=True,
        )
        for item in data.products.values()
    ]
    # Upsert, so a rerun also resets prices and stock to the demo's known state.
    Product.objects.bulk_create(
        products,
        batch_size=BATCH_SIZE,
        update_conflicts=True,
        unique_fields=["sku"],
        update_fields=["name", "category", "price", "stock", "is_active"],
    )
    summary.products = len(products)
    summary.created["products"] = Product.objects.count() - before
    wanted = set(data.products)
    return {sku: pk for sku, pk in Product.objects.values_list("sku", "pk") if sku in wanted}


def _load_users(customers: set[str], summary: LoadSummary) -> dict[str, int]:
    user_model = get_user_model()
    usernames = {customer: username_for(customer) for customer in sorted(customers)}
    existing = set(
        user_model.objects.filter(Q(username__startswith="customer") | Q(username=DEMO_USERNAME)).values_list(
            "username", flat=True
        )
    )
    new_users = [
        user_model(username=username, password=make_password(None))
        for username in usernames.values()
        if username not in existing
    ]
    user_model.objects.bulk_create(new_users, batch_size=BATCH_SIZE)
    summary.customers = len(usernames)
    summary.created["customers"] = len(new_users)
    if DEMO_CUSTOMER in customers:
        _set_up_demo_user()
    ids = dict(user_model.objects.filter(username__in=usernames.values()).values_list("username", "pk"))
    return {customer: ids[username] for customer, username in usernames.items()}


def _set_up_demo_user() -> None:
    user = get_user_model().objects.get(username=DEMO_USERNAME)
    if user.check_password(DEMO_PASSWORD):
        return
    user.set_password(DEMO_PASSWORD)
    user.first_name, user.last_name, user.email = "Demo", "Shopper", "demo@example.com"
    user.save()


def _load_orders(
    data: RetailData,
    product_ids: dict[str, int],
    user_ids: dict[str, int],
    summary: LoadSummary,
    progress: Progress,
) -> None:
    existing = set(Order.objects.values_list("number", flat=True))
    new_orders = [order for order in data.orders.values() if order.number not in existing]
    Order.objects.bulk_create(
        [
            Order(number=order.number, user_id=user_ids.get(order.customer), placed_at=order.placed_at)
            for order in new_orders
        ],
        batch_size=BATCH_SIZE,
    )
    order_ids = dict(Order.objects.values_list("number", "pk"))
    # Only new orders get lines: an order already present keeps the lines it has.
    lines = [
        OrderLine(order_id=order_ids[order.number], product_id=product_ids[sku], quantity=q, unit_price=unit)
        for order in new_orders
        for sku, q, unit in order.lines
    ]
    for batch in progress(list(_batches(lines)), desc="Order lines", unit=" batches"):
        OrderLine.objects.bulk_create(batch)
    summary.orders = len(data.orders)
    summary.guest_orders = sum(1 for order in data.orders.values() if not order.customer)
    summary.lines = data.line_count
    summary.created["orders"] = len(new_orders)
    summary.created["lines"] = len(lines)
