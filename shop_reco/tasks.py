"""Celery tasks. Each takes ids or JSON, calls a service, and has a management command for cron users."""

from __future__ import annotations

from celery import shared_task

from shop_reco.services import tracking


@shared_task(ignore_result=True)
def flush_events(fan_out: bool = True) -> int:
    """Write the Redis event buffer to the database (periodic, and queued by the buffer's size threshold).

    Also queues EVENT_FLUSH_WORKERS - 1 siblings, so more Celery workers flush a large buffer faster.
    """
    if fan_out:
        tracking.queue_parallel_flushes(flush_events)
    return tracking.flush_events().stored


@shared_task(ignore_result=True)
def purge_events() -> int:
    """Delete events older than RETENTION_DAYS (periodic, daily is plenty)."""
    return tracking.purge_events()


# The recompute pipeline's tasks live in their own module; importing them here registers them with workers.
from shop_reco.pipeline_tasks import (  # noqa: E402
    index_new_product,
    recompute,
    recompute_finalize,
    recompute_item_shard,
    recompute_shopper_shard,
    recompute_shopper_stage,
    update_shopper,
)

__all__ = [
    "flush_events",
    "index_new_product",
    "purge_events",
    "recompute",
    "recompute_finalize",
    "recompute_item_shard",
    "recompute_shopper_shard",
    "recompute_shopper_stage",
    "update_shopper",
]
