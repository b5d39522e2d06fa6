"""Test settings: the demo shop on PostgreSQL when reachable (always in CI), SQLite otherwise."""

import os

from tests.services import POSTGRES_URL, REQUIRE_SERVICES, postgres_available

if postgres_available():
    os.environ["DATABASE_URL"] = POSTGRES_URL
elif REQUIRE_SERVICES:
    raise RuntimeError(f"SHOP_RECO_REQUIRE_SERVICES=1 but PostgreSQL at {POSTGRES_URL} is unreachable.")
else:
    os.environ["DATABASE_URL"] = "sqlite:///:memory:"

from demo_shop.settings import *  # noqa: F403
from demo_shop.settings import DATABASES

DATABASES["default"]["CONN_MAX_AGE"] = 0
# Separate test databases let several runs share one server (set per developer or per nox session).
DATABASES["default"]["TEST"] = {"NAME": os.environ.get("SHOP_RECO_TEST_DB", "test_shop_reco")}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
CELERY_BROKER_URL = None
CELERY_RESULT_BACKEND = None
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
SHOP_RECO = {
    "PRODUCT_MODEL": "catalogue.Product",
    "ADAPTER": "demo_shop.catalogue.adapter.DemoShopAdapter",
    "PRODUCT_VIEW_URL_NAMES": ("catalogue:product",),
    # A thread with its own connection would read the catalogue outside each test's transaction: the tests
    # that are about it turn it on (tests/storefront/test_row_refresh.py).
    "PRODUCT_REFRESH_THREAD": False,
}
