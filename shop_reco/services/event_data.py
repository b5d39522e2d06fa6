"""Events out of the database as plain columns, the form the engine's matrix builders take.

A shopper is ``"u:<user id>"`` for customers and ``"v:<visitor id>"`` for anonymous visitors. Reading uses
COPY on PostgreSQL (one streamed query, no model instances) and ``values_list`` elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from django.db import connection

from shop_reco.models import Event

# Event types the recompute reads; impressions are attribution data, not preference.
PREFERENCE_TYPES = ("view", "add_to_cart", "remove_from_cart", "purchase", "wishlist", "rec_click")


def shopper_label(user_id: Any, visitor_id: str) -> str:
    return f"u:{user_id}" if user_id is not None else f"v:{visitor_id}"


@dataclass
class EventColumns:
    """Parallel columns, one entry per event, oldest first: what the engine's builders take."""

    shoppers: list[str] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    event_types: list[str] = field(default_factory=list)
    quantities: list[int] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    baskets: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.shoppers)

    def timestamp_array(self) -> np.ndarray:
        return np.asarray(self.timestamps, dtype=np.float64)


def load_events(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    event_types: Iterable[str] = PREFERENCE_TYPES,
) -> EventColumns:
    """Every event of ``event_types`` in [since, until), oldest first."""
    columns = EventColumns()
    append_shopper, append_item = columns.shoppers.append, columns.items.append
    append_type, append_quantity = columns.event_types.append, columns.quantities.append
    append_time, append_basket = columns.timestamps.append, columns.baskets.append
    for user_id, visitor_id, key, event_type, quantity, epoch, basket in _rows(
        since, until, list(event_types)
    ):
        append_shopper(shopper_label(user_id, visitor_id))
        append_item(key)
        append_type(event_type)
        append_quantity(quantity)
        append_time(epoch)
        append_basket(basket)
    return columns


def _rows(since: datetime | None, until: datetime | None, types: list[str]) -> Iterator[tuple]:
    queryset = Event.objects.filter(event_type__in=types).exclude(product_key="")
    if since is not None:
        queryset = queryset.filter(occurred_at__gte=since)
    if until is not None:
        queryset = queryset.filter(occurred_at__lt=until)
    queryset = queryset.order_by("occurred_at", "pk")
    if connection.vendor == "postgresql":
        yield from _copy_rows(queryset)
        return
    for user_id, visitor_id, key, event_type, quantity, occurred_at, basket in queryset.values_list(
        "user_id", "visitor_id", "product_key", "event_type", "quantity", "occurred_at", "basket_ref"
    ).iterator(chunk_size=20_000):
        yield user_id, visitor_id, key, event_type, quantity, occurred_at.timestamp(), basket


def _copy_rows(queryset: Any) -> Iterator[tuple]:
    from django.db.models import F
    from django.db.models.functions import Extract

    query = queryset.annotate(epoch=Extract(F("occurred_at"), "epoch")).values_list(
        "user_id", "visitor_id", "product_key", "event_type", "quantity", "epoch", "basket_ref"
    )
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor: COPY is not part of the DB-API
        with raw.copy(f"COPY ({sql}) TO STDOUT", params) as copy:
            copy.set_types(["int8", "text", "text", "text", "int4", "float8", "text"])
            yield from copy.rows()
