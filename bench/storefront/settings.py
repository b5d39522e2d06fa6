"""The demo shop as served in production: PostgreSQL, Redis cache and event buffer, DEBUG off."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/shop_reco_bench_storefront")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/3")
os.environ["DJANGO_DEBUG"] = "0"

from demo_shop.settings import *  # noqa: F403
from demo_shop.settings import INSTALLED_APPS, SHOP_RECO, TEMPLATES

ROOT_URLCONF = "bench.storefront.urls"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [*INSTALLED_APPS, "bench.storefront"]
TEMPLATES[0]["OPTIONS"]["debug"] = False
SHOP_RECO = {**SHOP_RECO, "EVENT_BUFFER_URL": os.environ["REDIS_URL"]}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"shop_reco": {"handlers": ["console"], "level": "WARNING"}},
}
