"""Tracking services called by tasks, commands, receivers and the shop's own code (e.g. a data loader)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone

from shop_reco.adapters import get_adapter
from shop_reco.conf import reco_settings
from shop_reco.models import Event
from shop_reco.tracking import buffer, store
from shop_reco.tracking.buffer import FlushResult
from shop_reco.tracking.events import InvalidEvent, make_row, order_event_id
from shop_reco.tracking.history import forget_histories
from shop_reco.tracking.importers import Record

logger = logging.getLogger("shop_reco.tracking")

IMPORT_BATCH = 5_000

# One historical order line: (order_ref, user_id or None, product key, quantity, unit_price, placed_at).
OrderRow = tuple[str, Any, str, int, Decimal | float | str | None, datetime]


@dataclass
class ImportResult:
    read: int = 0  # events read from the source
    stored: int = 0  # new in the database
    duplicates: int = 0  # already there (a re-run, or repeated lines)
    unknown_products: int = 0
    unknown_users: int = 0
    invalid: int = 0
    errors: list[str] = field(default_factory=list)  # the first few invalid lines, for the report

    def __str__(self) -> str:
        return (
            f"read {self.read}, stored {self.stored}, duplicates {self.duplicates}, "
            f"unknown products {self.unknown_products}, unknown users {self.unknown_users}, "
            f"invalid {self.invalid}"
        )


def flush_events(*, batch_size: int = buffer.FLUSH_BATCH, wait: float = 0.0) -> FlushResult:
    """Write the Redis buffer to the database (the periodic task, the size trigger and the command)."""
    return buffer.flush(batch_size=batch_size, wait=wait)


def queue_parallel_flushes(task: Any) -> int:
    """Queue the extra flushes of a flush task when a broker runs them elsewhere; returns how many.

    Each takes its own slot (or finds every slot busy and returns at once), so none duplicates another's work.
    """
    if not buffer.buffer_url() or not buffer.celery_queues_tasks():
        return 0
    extra = buffer.flush_slots() - 1
    if extra > 0 and buffer.pending_count() > buffer.FLUSH_BATCH:
        for _ in range(extra):
            task.delay(fan_out=False)
        return extra
    return 0


def merge_visitor(visitor_id: str, user: Any) -> int:
    """Give a visitor's anonymous events to the user who just logged in; returns events merged."""
    if not visitor_id or user is None:
        return 0
    buffer.remember_merge(visitor_id, user.pk)  # for the events still waiting in the buffer
    merged = Event.objects.filter(visitor_id=visitor_id, user__isnull=True).update(user=user)
    forget_histories([user.pk], [visitor_id])
    return merged


def import_events(
    records: Iterable[Record],
    *,
    allow_unknown_products: bool = False,
    batch_size: int = IMPORT_BATCH,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Bulk-write historical events (see :mod:`shop_reco.tracking.importers`) straight to the database.

    Events whose product the adapter does not know are skipped and counted unless ``allow_unknown_products``
    (for fixtures with no catalogue); so are events of unknown users. Idempotent through ``client_event_id``.
    """
    result = ImportResult()
    batch: list[dict[str, Any]] = []
    for record in records:
        result.read += 1
        if isinstance(record, InvalidEvent):
            _invalid(result, record)
        else:
            try:
                batch.append(make_row(**record))
            except InvalidEvent as exc:
                _invalid(result, exc)
        if len(batch) >= batch_size:
            _write_import_batch(batch, result, allow_unknown_products)
            batch = []
        if progress is not None and result.read % 1000 == 0:
            progress(1000)
    _write_import_batch(batch, result, allow_unknown_products)
    if progress is not None and result.read % 1000:
        progress(result.read % 1000)
    return result


def import_orders(
    rows: Iterable[OrderRow],
    *,
    allow_unknown_products: bool = False,
    batch_size: int = IMPORT_BATCH,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Purchase events for historical order lines, one per (order, product); running twice stores once.

    ``rows`` yields ``(order_ref, user_id or None, product_key, quantity, unit_price, placed_at)``, grouped by
    order. Lines of one order with the same product are summed into one event, whose ``client_event_id`` is
    ``order:<order_ref>:<product_key>``: the same id the live ``order_placed`` receiver gives it.
    """

    def events() -> Iterable[Record]:
        current_ref: str | None = None
        lines: dict[str, dict[str, Any]] = {}
        for order_ref, user_id, product_key, quantity, unit_price, placed_at in rows:
            order_ref, product_key = str(order_ref), str(product_key)
            if order_ref != current_ref:
                yield from lines.values()
                current_ref, lines = order_ref, {}
            line = lines.get(product_key)
            if line is not None:
                line["quantity"] += int(quantity)
                continue
            lines[product_key] = {
                "event_type": "purchase",
                "user_id": user_id,
                "product_key": product_key,
                "quantity": int(quantity),
                "unit_price": unit_price,
                "basket_ref": order_ref,
                "client_event_id": order_event_id(order_ref, product_key),
                "occurred_at": placed_at,
            }
        yield from lines.values()

    return import_events(
        events(), allow_unknown_products=allow_unknown_products, batch_size=batch_size, progress=progress
    )


def _invalid(result: ImportResult, exc: InvalidEvent) -> None:
    result.invalid += 1
    if len(result.errors) < 10:
        result.errors.append(str(exc))


def _write_import_batch(
    batch: list[dict[str, Any]], result: ImportResult, allow_unknown_products: bool
) -> None:
    if not batch:
        return
    if not allow_unknown_products:
        known = get_adapter().products_by_key({row["product_key"] for row in batch if row["product_key"]})
        kept = [row for row in batch if row["product_key"] in known]
        result.unknown_products += len(batch) - len(kept)
        batch = kept
    user_ids = {row["user_id"] for row in batch if row["user_id"] is not None}
    if user_ids:
        model = get_user_model()
        existing = {
            str(pk) for pk in model._default_manager.filter(pk__in=user_ids).values_list("pk", flat=True)
        }
        kept = [row for row in batch if row["user_id"] is None or str(row["user_id"]) in existing]
        result.unknown_users += len(batch) - len(kept)
        batch = kept
    stored = store.write_rows(batch, verify_users=False)
    result.stored += stored
    result.duplicates += len(batch) - stored


def purge_events(days: int | None = None, *, batch_size: int = 10_000) -> int:
    """Delete events older than ``days`` (default RETENTION_DAYS; None keeps all) in short transactions."""
    days = reco_settings.RETENTION_DAYS if days is None else days
    if days is None:
        return 0
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    while True:
        ids = list(Event.objects.filter(occurred_at__lt=cutoff).values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        deleted += Event.objects.filter(pk__in=ids).delete()[0]
