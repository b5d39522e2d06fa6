"""Settings for a real Celery worker started by the tests: the test database and a Redis broker."""

import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES

DATABASES["default"]["NAME"] = os.environ["SHOP_RECO_WORKER_DB"]
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_URL = os.environ["SHOP_RECO_WORKER_BROKER"]
CELERY_RESULT_BACKEND = os.environ["SHOP_RECO_WORKER_BROKER"]
CELERY_IMPORTS = ["tests.worker_hooks"]
# A shard whose worker was killed goes back on the queue after this many seconds (not the default hour).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 8}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": 8}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
