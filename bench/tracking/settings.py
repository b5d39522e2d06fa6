"""Settings for the tracking benchmark: the demo shop on its own PostgreSQL database and a private Redis."""

import os

os.environ["DATABASE_URL"] = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/shop_reco_bench_tracking"
)
os.environ.pop("REDIS_URL", None)
os.environ.pop("CELERY_BROKER_URL", None)

from demo_shop.settings import *  # noqa: F403
from demo_shop.settings import DATABASES, MIDDLEWARE

BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "bench.tracking.urls"
DATABASES["default"]["CONN_MAX_AGE"] = 600
# The beacon throttle must be shared by the gunicorn workers, as in production.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": BENCH_REDIS_URL}}
MIDDLEWARE = [m for m in MIDDLEWARE if "messages" not in m and "clickjacking" not in m]
SHOP_RECO = {
    "PRODUCT_MODEL": "catalogue.Product",
    "ADAPTER": "demo_shop.catalogue.adapter.DemoShopAdapter",
    "PRODUCT_VIEW_URL_NAMES": ("bench:product",),
    "EVENT_BUFFER_URL": BENCH_REDIS_URL,
    "EVENT_BUFFER_KEY": "bench:events",
    # Flushes come from the bench's own periodic flusher (the beat task's job).
    "EVENT_BUFFER_FLUSH_SIZE": 10**9,
    "EVENT_FLUSH_WORKERS": int(os.environ.get("BENCH_FLUSH_WORKERS", "2")),
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"shop_reco": {"level": "ERROR"}, "django": {"level": "ERROR"}},
}
