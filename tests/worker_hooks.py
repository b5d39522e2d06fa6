"""Loaded by test workers (CELERY_IMPORTS): slows shard tasks when SHOP_RECO_TEST_SHARD_DELAY is set, so a
test can kill the worker while a recompute is in the middle of its shards."""

import os
import time

from celery.signals import task_prerun

DELAY = float(os.environ.get("SHOP_RECO_TEST_SHARD_DELAY", "0"))


@task_prerun.connect
def slow_shards(sender=None, **kwargs):
    if DELAY and "shard" in (sender.name if sender else ""):
        time.sleep(DELAY)
