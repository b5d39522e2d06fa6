"""Settings for a real Celery worker started by the tests: the test database and a Redis broker."""

import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES

DATABASES["default"]["NAME"] = os.environ["SHOP_RECO_WORKER_DB"]
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_URL = os.environ["SHOP_RECO_WORKER_BROKER"]
CELERY_RESULT_BACKEND = os.environ["SHOP_RECO_WORKER_BROKER"]
CELERY_IMPORTS = ["tests.worker_hooks"]
# A shard whose worker was killed goes back on the queue after this many seconds (not the default hour), at the
# next sweep for such messages: kombu (5.7) sweeps every unacked_restore_interval seconds (10) but scans Redis
# only every unacked_restore_throttle-th time (10), so a killed shard missed by a worker's first sweep came back
# ~100 s later, past test_killed_worker_leaves_old_version_serving_and_work_completes's 120 s wait.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 8,
    "unacked_restore_interval": 2,
    "unacked_restore_throttle": 1,
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": 8}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
