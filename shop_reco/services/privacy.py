"""A shopper's right to see and to erase what shop_reco knows about them.

A shopper is a user id or a visitor id. For a user, the anonymous events of the browsers they used while
logged in (visitor ids seen on their events) count as theirs too, and so do the per-shopper recommendation
lists.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Q

from shop_reco.models import Event, RecommendationList
from shop_reco.tracking import buffer

logger = logging.getLogger("shop_reco.tracking")

EXPORT_FIELDS = (
    "event_type",
    "visitor_id",
    "user_id",
    "product_key",
    "quantity",
    "unit_price",
    "basket_ref",
    "slot",
    "token",
    "client_event_id",
    "context",
    "occurred_at",
)


@dataclass
class ErasureResult:
    events: int = 0
    lists: int = 0
    visitors: tuple[str, ...] = ()


def _visitors_of(user_id: Any) -> list[str]:
    return list(
        Event.objects.filter(user_id=user_id)
        .exclude(visitor_id="")
        .values_list("visitor_id", flat=True)
        .distinct()
    )


def _shopper_filter(user_id: Any, visitor_id: str | None) -> tuple[Q, list[str]]:
    if (user_id is None) == (visitor_id is None):
        raise ValueError("Name exactly one shopper: a user id or a visitor id.")
    if visitor_id is not None:
        return Q(visitor_id=visitor_id), [visitor_id]
    visitors = _visitors_of(user_id)
    return Q(user_id=user_id) | Q(visitor_id__in=visitors, user__isnull=True), visitors


def export_shopper(*, user_id: Any = None, visitor_id: str | None = None) -> Iterator[dict[str, Any]]:
    """Every event of one shopper, oldest first, as JSON-ready dicts."""
    condition, _ = _shopper_filter(user_id, visitor_id)
    queryset = Event.objects.filter(condition).order_by("occurred_at", "pk").values_list(*EXPORT_FIELDS)
    for values in queryset.iterator(chunk_size=2000):
        row = dict(zip(EXPORT_FIELDS, values, strict=True))
        row["unit_price"] = None if row["unit_price"] is None else str(row["unit_price"])
        row["occurred_at"] = row["occurred_at"].isoformat()
        yield row


def erase_shopper(*, user_id: Any = None, visitor_id: str | None = None) -> ErasureResult:
    """Delete one shopper's events and their per-user/per-visitor recommendation lists.

    Events still in the buffer are flushed first so none lands after the erasure.
    """
    if buffer.buffer_url():
        try:
            flushed = buffer.flush(wait=30.0)
            if flushed.busy:
                logger.warning("shop_reco erase: the event buffer stayed locked; buffered events may remain")
        except Exception:
            logger.warning("shop_reco erase: could not flush the event buffer first", exc_info=True)
    condition, visitors = _shopper_filter(user_id, visitor_id)
    with transaction.atomic():
        events = Event.objects.filter(condition).delete()[0]
        lists_q = Q(kind=RecommendationList.Kind.VISITOR, subject__in=visitors)
        if user_id is not None:
            lists_q |= Q(kind=RecommendationList.Kind.USER, subject=str(user_id))
        lists = RecommendationList.objects.filter(lists_q).delete()[0]
    try:
        buffer.forget_merges(visitors)
    except Exception:
        logger.warning("shop_reco erase: could not clear visitor merges in the buffer", exc_info=True)
    return ErasureResult(events=events, lists=lists, visitors=tuple(visitors))
