"""The demo shop as the reliability run serves it: its own PostgreSQL, a Redis for the event buffer and the
cache, another Redis as the Celery broker, all on loopback (``bench/reliability/run.py`` sets the URLs)."""

import os

from demo_shop.settings import *  # noqa: F403
from demo_shop.settings import CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS, DATABASES, SHOP_RECO

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
# A restarted PostgreSQL leaves dead persistent connections: check before reuse.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
CELERY_BROKER_URL = os.environ["RELIABILITY_BROKER_URL"]
CELERY_RESULT_BACKEND = CELERY_BROKER_URL
CELERY_TASK_ALWAYS_EAGER = False
# A shard whose worker was killed goes back on the queue after this many seconds (not the default hour), at
# kombu's next sweep for such messages: every 2 s here (its default scans Redis every 10th sweep of 10 s).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 10,
    "unacked_restore_interval": 2,
    "unacked_restore_throttle": 1,
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {
    **CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS,
    "visibility_timeout": 10,
}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_IMPORTS = ["bench.reliability.hooks"]
SHOP_RECO = {
    **SHOP_RECO,
    # The loader is a few dozen shoppers on one address; the throttle is tested in tests/reliability.
    "BEACON_THROTTLE_RATE": "100000/min",
    "EVENT_BUFFER_FLUSH_SIZE": 200,
    "RECOMPUTE_SHARDS": 4,
    # Ship the spool rarely, so the worker the run kills surely dies with lines it had not shipped.
    "EVENT_SPOOL_SHIP_SECONDS": 2.0,
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "shop_reco": {"handlers": ["console"], "level": "WARNING"},
        "django.request": {"handlers": ["console"], "level": "ERROR"},
    },
}
