"""The storefront's fast cache reads see exactly what Django's cache API stores, on Redis and elsewhere."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import redis
from django.core.cache import cache

from shop_reco import cache_reads

VALUES = {"shop_reco:a": ("x", [1, 2.5]), "shop_reco:b": (["k"], datetime(2026, 1, 2, tzinfo=UTC)), "c": 0}


@pytest.fixture(params=["redis", "locmem"])
def any_cache(request, redis_url, settings):
    backend = {
        "redis": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url},
        "locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }[request.param]
    settings.CACHES = {"default": {**backend, "KEY_PREFIX": "shop-test", "VERSION": 3}}
    cache.clear()
    yield request.param
    cache.clear()


def test_get_many_returns_what_the_cache_api_stored(any_cache):
    cache.set_many(VALUES)
    cache.delete("shop_reco:b")
    wanted = [*VALUES, "missing"]
    assert cache_reads.get_many(wanted) == cache.get_many(wanted) == {"shop_reco:a": ("x", [1, 2.5]), "c": 0}


def test_a_settings_change_switches_the_reader(redis_url, settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}
    }
    cache.set("shop_reco:a", 1)
    assert cache_reads.get_many(["shop_reco:a"]) == {"shop_reco:a": 1}
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert cache_reads.get_many(["shop_reco:a"]) == {}  # the new, empty cache; not the old Redis one


def test_a_rewritten_value_is_read_anew(redis_url, settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}
    }
    cache.set("shop_reco:a", ["first"])
    assert cache_reads.get_many(["shop_reco:a"]) == {"shop_reco:a": ["first"]}
    cache.set("shop_reco:a", ["second"])
    assert cache_reads.get_many(["shop_reco:a"]) == {"shop_reco:a": ["second"]}
    cache.set("shop_reco:a", ["first"])  # the same bytes as before: the value, decoded once, is shared
    assert cache_reads.get_many(["shop_reco:a"]) == {"shop_reco:a": ["first"]}


def test_request_threads_keep_their_connections(redis_url, settings):
    """Two request threads taking turns, 50 reads: one connection per thread, not one per read (Django gives
    each thread its own cache backend, so the reader is kept per thread)."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}
    }
    cache.set("shop_reco:a", 1)
    server = redis.Redis.from_url(redis_url)
    before = server.info("stats")["total_connections_received"]
    turns = [threading.Semaphore(1), threading.Semaphore(0)]
    answers: list[dict] = []

    def take_turns(me: int) -> None:
        for _ in range(25):
            turns[me].acquire()
            answers.append(cache_reads.get_many(["shop_reco:a", "missing"]))
            turns[1 - me].release()

    threads = [threading.Thread(target=take_turns, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [{"shop_reco:a": 1}] * 50
    assert server.info("stats")["total_connections_received"] - before <= 2
    server.close()
