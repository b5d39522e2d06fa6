"""A shopper's right to see and to erase what shop_reco knows about them.

A shopper is a user id or a visitor id. For a user, the anonymous events of the browsers they used while
logged in (visitor ids seen on their events) count as theirs too, and so do what was derived from them: the
per-shopper recommendation lists (kinds ``user`` and ``visitor``) and the experiment assignments.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models import Q

from shop_reco.models import Event, ExperimentAssignment, RecommendationList
from shop_reco.tracking import buffer, spool
from shop_reco.tracking.events import ROW_FIELDS
from shop_reco.tracking.history import forget_histories

logger = logging.getLogger("shop_reco.tracking")

# An export holds every stored column of an event: the same fields the write path fills.
EXPORT_FIELDS = ROW_FIELDS


@dataclass
class ErasureResult:
    events: int = 0
    lists: int = 0
    visitors: tuple[str, ...] = ()
    assignments: int = 0


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


def _lists_filter(user_id: Any, visitors: list[str]) -> Q:
    condition = Q(kind=RecommendationList.Kind.VISITOR, subject__in=visitors)
    if user_id is not None:
        condition |= Q(kind=RecommendationList.Kind.USER, subject=str(user_id))
    return condition


def _assignments_filter(user_id: Any, visitors: list[str]) -> Q:
    condition = Q(visitor_id__in=visitors) if visitors else Q(pk__in=[])
    if user_id is not None:
        condition |= Q(user_id=user_id)
    return condition


def export_shopper(*, user_id: Any = None, visitor_id: str | None = None) -> Iterator[dict[str, Any]]:
    """Everything kept about one shopper as JSON-ready dicts, each naming its ``record`` type.

    First every event, oldest first (``"record": "event"``), then what was derived from them: the stored
    per-shopper recommendation lists (``"recommendation_list"``) and experiment assignments
    (``"experiment_assignment"``).
    """
    condition, visitors = _shopper_filter(user_id, visitor_id)
    queryset = Event.objects.filter(condition).order_by("occurred_at", "pk").values_list(*EXPORT_FIELDS)
    for values in queryset.iterator(chunk_size=2000):
        row = {"record": "event", **dict(zip(EXPORT_FIELDS, values, strict=True))}
        row["unit_price"] = None if row["unit_price"] is None else str(row["unit_price"])
        row["occurred_at"] = row["occurred_at"].isoformat()
        yield row
    lists = RecommendationList.objects.filter(_lists_filter(user_id, visitors)).order_by("version_id", "pk")
    for item in lists.iterator(chunk_size=500):
        yield {
            "record": "recommendation_list",
            "version": item.version_id,
            "kind": item.kind,
            "subject": item.subject,
            "source": item.source,
            "item_keys": list(item.item_keys),
            "scores": list(item.scores),
        }
    assignments = (
        ExperimentAssignment.objects.filter(_assignments_filter(user_id, visitors))
        .select_related("experiment", "variant")
        .order_by("assigned_at", "pk")
    )
    for assignment in assignments:
        yield {
            "record": "experiment_assignment",
            "experiment": assignment.experiment.key,
            "variant": assignment.variant.key,
            "visitor_id": assignment.visitor_id,
            "user_id": assignment.user_id,
            "assigned_at": assignment.assigned_at.isoformat(),
        }


def erase_shopper(*, user_id: Any = None, visitor_id: str | None = None) -> ErasureResult:
    """Delete one shopper's events, per-user/per-visitor recommendation lists and experiment assignments.

    Events still in the buffer are flushed first so none lands after the erasure; the erased lists and
    assignments are dropped from the cache too, so none is served from there afterwards.
    """
    if buffer.buffer_url():
        try:
            spool.ship_pending()  # this process's spooled events first (other processes ship theirs within
            # EVENT_SPOOL_SHIP_SECONDS: see the note in shop_reco.tracking.spool)
            flushed = buffer.flush_all(wait=30.0)  # every slot: no flusher still holds their events
            if flushed.busy:
                logger.warning("shop_reco erase: the event buffer stayed locked; buffered events may remain")
        except Exception:
            logger.warning("shop_reco erase: could not flush the event buffer first", exc_info=True)
    condition, visitors = _shopper_filter(user_id, visitor_id)
    with transaction.atomic():
        events = Event.objects.filter(condition).delete()[0]
        lists_q = _lists_filter(user_id, visitors)
        cached_lists = set(
            RecommendationList.objects.filter(lists_q).values_list("version_id", "kind", "subject")
        )
        lists = RecommendationList.objects.filter(lists_q).delete()[0]
        assignments_q = ExperimentAssignment.objects.filter(_assignments_filter(user_id, visitors))
        cached_assignments = list(assignments_q.values_list("experiment_id", "visitor_id", "user_id"))
        assignments = assignments_q.delete()[0]
    try:
        from shop_reco.services.lists import forget_lists

        for version_id, kind, subject in cached_lists:
            forget_lists(version_id, kind, subject)
        # Assignment cache keys name the shopper as they were seen: with or without the login.
        cache.delete_many(
            [
                f"shop_reco:xa:{experiment}:{visitor}:{seen_user}"
                for experiment, visitor, user in cached_assignments
                for seen_user in {"", user or ""}
            ]
        )
    except Exception:
        logger.warning("shop_reco erase: could not drop erased lists from the cache", exc_info=True)
    forget_histories([user_id] if user_id is not None else [], visitors)
    try:
        buffer.forget_merges(visitors)
    except Exception:
        logger.warning("shop_reco erase: could not clear visitor merges in the buffer", exc_info=True)
    return ErasureResult(events=events, lists=lists, visitors=tuple(visitors), assignments=assignments)
