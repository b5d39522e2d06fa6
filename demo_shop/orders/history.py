"""The demo's past orders as shop_reco order lines: ``manage.py reco_import_events --orders <this>.order_lines``."""

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal

from demo_shop.orders.models import OrderLine


def order_lines() -> Iterator[tuple[str, int | None, str, int, Decimal, datetime]]:
    """(order number, customer id, product key, quantity, unit price, placed at), grouped by order."""
    lines = OrderLine.objects.order_by("order__placed_at", "order_id", "pk").values_list(
        "order__number", "order__user_id", "product_id", "quantity", "unit_price", "order__placed_at"
    )
    for number, user_id, product_id, quantity, unit_price, placed_at in lines.iterator(chunk_size=5000):
        yield number, user_id, str(product_id), quantity, unit_price, placed_at
