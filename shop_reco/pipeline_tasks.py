"""Celery tasks of the recompute pipeline (imported by ``shop_reco.tasks``).

A full recompute is: ``recompute`` takes the family lock and plans the load (index look-ups only), then a
chord of ``recompute_load_shard`` tasks (ranges of event ids) plus ``recompute_content`` (catalogue
features), then ``recompute_item_stage`` combines them and fans out a chord of ``recompute_item_shard``
tasks (blocks of products), then a chord of ``recompute_shopper_shard`` tasks (blocks of shoppers), then
``recompute_finalize`` publishes. Only the plan, the combine, the assembly of item neighbours and the
finalize are serial, so each added worker process shortens a run. Shards are idempotent (list writes are
upserts) and safe to retry: ``acks_late`` with ``reject_on_worker_lost`` requeues a shard whose worker died.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import chord, current_app, shared_task

from shop_reco.services import recompute as pipeline
from shop_reco.services import versions

logger = logging.getLogger(__name__)

SHARD_OPTIONS: dict[str, Any] = {"acks_late": True, "reject_on_worker_lost": True, "max_retries": 5}


@shared_task(name="shop_reco.tasks.recompute", bind=True)
def recompute(self: Any, family: str = "full", shards: int | None = None) -> int | None:
    """Start a full recompute; returns the new version id, or None when one is already building."""
    try:
        version = versions.start_version(family, pipeline.parameters())
    except versions.RecomputeAlreadyRunning as running:
        logger.info("%s", running)
        return None
    if not self.request.is_eager:
        self.update_state(state="PROGRESS", meta={"version": version.pk, "percent": 0})
    if current_app.conf.task_always_eager:
        # Eager mode (the embedded demo, tests): the same steps, in this process, in order.
        try:
            plan = pipeline.prepare(version.pk, shards=shards)
        except Exception as exc:
            versions.fail(version.pk, f"prepare: {exc!r}")
            raise
        pipeline.run_in_process(version.pk, plan)
        return version.pk
    try:
        load_plan = pipeline.plan_load(version.pk, shards=shards)
    except Exception as exc:
        versions.fail(version.pk, f"plan: {exc!r}")
        raise
    header = [
        *(
            recompute_load_shard.s(version.pk, load_plan, start, stop)
            for start, stop in load_plan["event_ranges"]
        ),
        recompute_content.s(version.pk),
    ]
    chord(header)(recompute_item_stage.si(version.pk, load_plan))
    return version.pk


@shared_task(name="shop_reco.tasks.recompute_load_shard", bind=True, **SHARD_OPTIONS)
def recompute_load_shard(self: Any, version_id: int, plan: dict[str, Any], start: int, stop: int) -> int:
    return _guarded(self, version_id, pipeline.load_shard, version_id, plan, start, stop)


@shared_task(name="shop_reco.tasks.recompute_content", bind=True, **SHARD_OPTIONS)
def recompute_content(self: Any, version_id: int) -> int:
    return _guarded(self, version_id, pipeline.content, version_id)


@shared_task(name="shop_reco.tasks.recompute_item_stage", bind=True, **SHARD_OPTIONS)
def recompute_item_stage(self: Any, version_id: int, plan: dict[str, Any]) -> None:
    def dispatch() -> None:
        shards = pipeline.combine(version_id, plan)
        header = [recompute_item_shard.s(version_id, start, stop) for start, stop in shards["item_blocks"]]
        chord(header)(recompute_shopper_stage.si(version_id, shards["item_blocks"], shards["shopper_blocks"]))

    _guarded(self, version_id, dispatch)


@shared_task(name="shop_reco.tasks.recompute_item_shard", bind=True, **SHARD_OPTIONS)
def recompute_item_shard(self: Any, version_id: int, start: int, stop: int) -> int:
    return _guarded(self, version_id, pipeline.item_shard, version_id, start, stop)


@shared_task(name="shop_reco.tasks.recompute_shopper_stage", bind=True, **SHARD_OPTIONS)
def recompute_shopper_stage(
    self: Any, version_id: int, item_blocks: list[list[int]], shopper_blocks: list[list[int]]
) -> None:
    def dispatch() -> None:
        pipeline.assemble_item_neighbours(version_id, item_blocks)
        header = [recompute_shopper_shard.s(version_id, start, stop) for start, stop in shopper_blocks]
        chord(header)(recompute_finalize.si(version_id, shopper_blocks))

    _guarded(self, version_id, dispatch)


@shared_task(name="shop_reco.tasks.recompute_shopper_shard", bind=True, **SHARD_OPTIONS)
def recompute_shopper_shard(self: Any, version_id: int, start: int, stop: int) -> int:
    return _guarded(self, version_id, pipeline.shopper_shard, version_id, start, stop)


@shared_task(name="shop_reco.tasks.recompute_finalize", bind=True, **SHARD_OPTIONS)
def recompute_finalize(self: Any, version_id: int, shopper_blocks: list[list[int]] | None = None) -> int:
    _guarded(self, version_id, pipeline.finalize, version_id, shopper_blocks)
    return version_id


def _guarded(task: Any, version_id: int, function: Any, *args: Any) -> Any:
    """Run one step; a step that keeps failing fails the version so the lock is released."""
    try:
        return function(*args)
    except pipeline.VersionGone:
        logger.warning("Version %s is no longer building; dropping %s", version_id, task.name)
        return None
    except pipeline.ShardsMissing as waiting:
        # A duplicate delivery fired this stage early; the missing shards are still on the queue.
        raise task.retry(exc=waiting, countdown=5, max_retries=60) from waiting
    except Exception as exc:
        if task.request.retries < task.max_retries:
            raise task.retry(exc=exc, countdown=2) from exc
        versions.fail(version_id, f"{task.name}: {exc!r}")
        raise


@shared_task(name="shop_reco.tasks.update_shopper", acks_late=True)
def update_shopper(shopper: str) -> bool:
    """Refresh one shopper's personal lists in the live version (after a purchase or cart change)."""
    return pipeline.update_shopper(shopper)


@shared_task(name="shop_reco.tasks.index_new_product", acks_late=True)
def index_new_product(product_key: str) -> bool:
    """Give a new product content-based neighbours in the live version right away."""
    return pipeline.index_new_product(product_key)
