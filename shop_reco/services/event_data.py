"""Events out of the database as plain columns, the form the engine's matrix builders take.

A shopper is ``"u:<user id>"`` for customers and ``"v:<visitor id>"`` for anonymous visitors. Reading uses
COPY on PostgreSQL (one streamed query, no model instances) and ``values_list`` elsewhere.

Two readers:

- :func:`load_events`: string columns, oldest first (small jobs, tests, tools);
- :func:`load_event_codes`: integer columns of one range of event ids, for the recompute's load shards.
  Strings never reach Python there: the database hashes shopper, product and basket keys to 64-bit
  integers (binary COPY parsed by numpy), so twenty million events cost seconds and a few hundred MB.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from django.db import connection

from shop_reco.models import Event

# Event types the recompute reads; impressions are attribution data, not preference.
PREFERENCE_TYPES = ("view", "add_to_cart", "remove_from_cart", "purchase", "wishlist", "rec_click")

_INT63 = 9223372036854775807
# PostgreSQL's binary timestamps count microseconds from 2000-01-01 UTC.
_PG_EPOCH = 946_684_800.0


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


# -- integer columns for the recompute ------------------------------------------------------------------


@dataclass
class EventCodes:
    """One id range of events as integer columns (unordered).

    ``shoppers``: the user id for customers, a negative 64-bit hash of the visitor id for anonymous
    visitors (``visitors`` maps those back); ``items`` and ``baskets``: 64-bit hashes of the product key
    and basket reference (0: no basket); ``types``: index into the ``event_types`` asked for.
    """

    shoppers: np.ndarray
    items: np.ndarray
    types: np.ndarray
    timestamps: np.ndarray
    baskets: np.ndarray
    visitors: dict[int, str]

    def __len__(self) -> int:
        return int(self.shoppers.size)


@dataclass
class EventBounds:
    """What a recompute reads: events with ids in [first_id, stop_id), the newest at ``newest``."""

    first_id: int
    stop_id: int
    newest: float | None


def event_bounds() -> EventBounds:
    """The id range and newest time of the stored events (index look-ups, no scan)."""
    from django.db.models import Max, Min

    ids = Event.objects.aggregate(first=Min("pk"), last=Max("pk"))
    newest = Event.objects.order_by("-occurred_at").values_list("occurred_at", flat=True).first()
    if ids["first"] is None:
        return EventBounds(0, 0, None)
    return EventBounds(int(ids["first"]), int(ids["last"]) + 1, newest.timestamp() if newest else None)


def key_hashes(keys: Sequence[str]) -> np.ndarray:
    """The 64-bit hashes :func:`load_event_codes` gives these product (or basket) keys; int64."""
    if not len(keys):
        return np.zeros(0, dtype=np.int64)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT hashtextextended(k, 0) FROM unnest(%s::text[]) WITH ORDINALITY AS t(k, n) ORDER BY n",
                [list(keys)],
            )
            return np.fromiter((row[0] for row in cursor.fetchall()), dtype=np.int64, count=len(keys))
    return np.fromiter((_hash(key) for key in keys), dtype=np.int64, count=len(keys))


def visitor_key(visitor_id: str) -> int:
    """The shopper code of an anonymous visitor in :class:`EventCodes` (negative)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT -1 - (hashtextextended(%s, 0) & %s)", [visitor_id, _INT63])
            return int(cursor.fetchone()[0])
    return -1 - (_hash(visitor_id) & _INT63)


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little", signed=True)


def load_event_codes(
    start_id: int, stop_id: int, event_types: Sequence[str] = PREFERENCE_TYPES
) -> EventCodes:
    """Events with ids in [start_id, stop_id) of ``event_types`` (with a product) as integer columns."""
    types = list(event_types)
    if connection.vendor == "postgresql":
        return _copy_codes(start_id, stop_id, types)
    return _python_codes(start_id, stop_id, types)


# Ids read per query: each query returns one row of five arrays (one COPY message, parsed by numpy in place);
# this bounds that message and the server's aggregation memory.
IDS_PER_QUERY = 1_000_000


def _copy_codes(start_id: int, stop_id: int, types: list[str]) -> EventCodes:
    table = connection.ops.quote_name(Event._meta.db_table)
    type_case = " ".join(f"WHEN %s THEN {n}" for n in range(len(types)))
    where = "id >= %s AND id < %s AND event_type = ANY(%s) AND product_key <> ''"
    sql = (
        "SELECT coalesce(array_agg(CASE WHEN user_id IS NULL "
        "THEN -1 - (hashtextextended(visitor_id, 0) & %s) ELSE user_id END), '{}'), "
        "coalesce(array_agg(hashtextextended(product_key, 0)), '{}'), "
        f"coalesce(array_agg((CASE event_type {type_case} ELSE -1 END)::int2), '{{}}'), "
        "coalesce(array_agg(occurred_at), '{}'), "
        "coalesce(array_agg(CASE WHEN basket_ref = '' THEN 0::int8 "
        f"ELSE hashtextextended(basket_ref, 0) END), '{{}}') FROM {table} WHERE {where}"
    )
    parts: list[list[np.ndarray]] = []
    with connection.cursor() as cursor:
        for low in range(start_id, max(stop_id, start_id), IDS_PER_QUERY):
            high = min(stop_id, low + IDS_PER_QUERY)
            with cursor.cursor.copy(
                f"COPY ({sql}) TO STDOUT (FORMAT binary)", [_INT63, *types, low, high, types]
            ) as copy:
                data = b"".join(bytes(chunk) for chunk in copy)
            parts.append(_binary_arrays(data, [">i8", ">i8", ">i2", ">i8", ">i8"]))
        visitors: dict[int, str] = {}
        # A second pass over the range names the anonymous visitors; a range of customers' events skips it.
        if any(bool((part[0] < 0).any()) for part in parts):
            cursor.execute(
                f"SELECT visitor_id, -1 - (hashtextextended(visitor_id, 0) & %s) FROM {table} "
                f"WHERE {where} AND user_id IS NULL GROUP BY visitor_id",
                [_INT63, start_id, stop_id, types],
            )
            visitors = {int(code): str(visitor) for visitor, code in cursor.fetchall()}
    columns = [np.concatenate(column) if column else np.zeros(0) for column in zip(*parts, strict=True)]
    if not parts:
        columns = [np.zeros(0, np.int64)] * 5
    return EventCodes(
        shoppers=columns[0].astype(np.int64),
        items=columns[1].astype(np.int64),
        types=columns[2].astype(np.int16),
        timestamps=columns[3].astype(np.float64) / 1e6 + _PG_EPOCH,
        baskets=columns[4].astype(np.int64),
        visitors=visitors,
    )


def _binary_arrays(data: bytes, dtypes: list[str]) -> list[np.ndarray]:
    """The one-dimensional arrays of a single-row binary COPY whose columns are arrays without NULLs."""
    # Header: 11-byte signature, int32 flags, int32 extension length (+ extension); then int16 field count.
    offset = 19 + int.from_bytes(data[15:19], "big") + 2
    out = []
    for dtype in dtypes:
        size = int.from_bytes(data[offset : offset + 4], "big", signed=True)
        offset += 4
        ndim = int.from_bytes(data[offset : offset + 4], "big")
        if ndim == 0:
            out.append(np.zeros(0, dtype=np.dtype(dtype).newbyteorder("=")))
        else:
            n = int.from_bytes(data[offset + 12 : offset + 16], "big")
            element = np.dtype([("length", ">i4"), ("value", dtype)])
            out.append(np.frombuffer(data, dtype=element, count=n, offset=offset + 20)["value"])
        offset += size
    return out


def _python_codes(start_id: int, stop_id: int, types: list[str]) -> EventCodes:
    code_of = {name: n for n, name in enumerate(types)}
    queryset = (
        Event.objects.filter(pk__gte=start_id, pk__lt=stop_id, event_type__in=types)
        .exclude(product_key="")
        .values_list("user_id", "visitor_id", "product_key", "event_type", "occurred_at", "basket_ref")
    )
    shoppers, items, kinds, times, baskets = [], [], [], [], []
    visitors: dict[int, str] = {}
    hashes: dict[str, int] = {}

    def hashed(text: str) -> int:
        value = hashes.get(text)
        if value is None:
            value = hashes[text] = _hash(text)
        return value

    for user_id, visitor_id, key, event_type, occurred_at, basket in queryset.iterator(chunk_size=20_000):
        if user_id is None:
            code = -1 - (hashed(visitor_id) & _INT63)
            visitors[code] = visitor_id
            shoppers.append(code)
        else:
            shoppers.append(int(user_id))
        items.append(hashed(key))
        kinds.append(code_of[event_type])
        times.append(occurred_at.timestamp())
        baskets.append(hashed(basket) if basket else 0)
    return EventCodes(
        shoppers=np.asarray(shoppers, dtype=np.int64),
        items=np.asarray(items, dtype=np.int64),
        types=np.asarray(kinds, dtype=np.int16),
        timestamps=np.asarray(times, dtype=np.float64),
        baskets=np.asarray(baskets, dtype=np.int64),
        visitors=visitors,
    )
