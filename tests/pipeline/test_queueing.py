"""Web processes queue tasks by name: a first purchase or a full buffer never imports the numeric core."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from shop_reco.queueing import FLUSH_EVENTS, UPDATE_SHOPPER

ROOT = Path(__file__).resolve().parents[2]

# The broker is configured as a shop configures it, in its Django settings: with Celery 5.6.3,
# conf.update(broker_url=...) no longer changes what conf.broker_url reads when the app takes CELERY_ settings
# from Django.
QUEUE_FROM_A_FRESH_PROCESS = """
import json, sys
import tests.settings
tests.settings.CELERY_BROKER_URL = sys.argv[1]
tests.settings.CELERY_TASK_ALWAYS_EAGER = False
import django
django.setup()
from shop_reco.queueing import queue_task
queue_task(sys.argv[2], *json.loads(sys.argv[3]))
heavy = ("shop_reco.tasks", "shop_reco.pipeline_tasks", "shop_reco.services.recompute", "sklearn")
print(json.dumps([name for name in heavy if name in sys.modules]))
"""


@pytest.mark.parametrize(("task", "args"), [(FLUSH_EVENTS, []), (UPDATE_SHOPPER, ["u:7"])])
def test_a_web_process_queues_by_name_without_importing_the_tasks(redis_url, task, args):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    finished = subprocess.run(
        [sys.executable, "-c", QUEUE_FROM_A_FRESH_PROCESS, redis_url, task, json.dumps(args)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert json.loads(finished.stdout.strip().splitlines()[-1]) == []
    # The message waits on the broker's default queue for any worker, named as the worker registers it.
    messages = [json.loads(raw) for raw in redis.Redis.from_url(redis_url).lrange("celery", 0, -1)]
    assert [message["headers"]["task"] for message in messages] == [task]
    assert messages[0]["headers"]["argsrepr"] == repr(tuple(args))


def test_eager_celery_runs_the_task_here(db):
    from shop_reco.queueing import queue_task

    assert queue_task(FLUSH_EVENTS).get() == 0  # no buffer configured: nothing to flush, and it ran
