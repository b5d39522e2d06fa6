"""Loaded by the run's worker (CELERY_IMPORTS): slows shard tasks by RELIABILITY_SHARD_DELAY seconds, so the
worker can be killed while a recompute is in the middle of its shards."""

import os
import time

from celery.signals import task_prerun

DELAY = float(os.environ.get("RELIABILITY_SHARD_DELAY", "0"))


@task_prerun.connect
def slow_shards(sender=None, **kwargs):
    if DELAY and "shard" in (sender.name if sender else ""):
        time.sleep(DELAY)
