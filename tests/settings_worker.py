"""Settings for a real Celery worker started by the tests: the test database and a Redis broker."""

import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES

DATABASES["default"]["NAME"] = os.environ["SHOP_RECO_WORKER_DB"]
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_URL = os.environ["SHOP_RECO_WORKER_BROKER"]
CELERY_RESULT_BACKEND = os.environ["SHOP_RECO_WORKER_BROKER"]
