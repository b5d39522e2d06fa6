from __future__ import annotations

import pytest
from django.db import connection

from tests.services import REDIS_URL, REQUIRE_SERVICES, redis_available


def _missing(what: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is unreachable and SHOP_RECO_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(f"{what} is unreachable")


@pytest.fixture
def postgres(db) -> None:
    """For tests about PostgreSQL behaviour (COPY, concurrency): fail in CI, skip elsewhere when it is missing."""
    if connection.vendor != "postgresql":
        _missing("PostgreSQL")


@pytest.fixture
def redis_url() -> str:
    """A Redis database reserved for tests, emptied before and after."""
    if not redis_available():
        _missing(f"Redis at {REDIS_URL}")
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture(autouse=True)
def _empty_django_cache() -> None:
    """Each test starts with an empty Django cache: cached histories, lists and assignments of one test's
    shoppers (the same ids recur) must not reach the next test's database."""
    from django.core.cache import cache

    from shop_reco.tracking.history import clear_local_histories

    cache.clear()
    clear_local_histories()
