"""Reads of the Django cache on the storefront's hot path: one round trip, no per-call set-up.

Django's Redis backend builds a new ``redis.Redis`` object for every call, which costs more CPU than the round
trip itself (~90 us against ~80 us per ``get_many`` on a 2-core machine), and redis-py's pool adds ~40 us more
per command. For a default cache on that backend, :func:`get_many` sends ``MGET`` on a connection each thread
keeps (``redis_direct``), made from Django's own connection settings, and uses Django's keys and serializer,
so its entries stay the ones ``cache.get``/``cache.set``/``cache.delete_many`` see. Any other backend (or a
Django whose backend looks different) goes through the public API.

The same stored bytes decode to the same value, so values are decoded once per process and shared: what
:func:`get_many` returns is read-only (a shopper's history, a stored list).
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

from django.core.cache import cache, caches
from django.core.signals import setting_changed

from shop_reco.redis_direct import ThreadConnections

# Distinct stored values whose decoding a process keeps (a history or a list is a few hundred bytes to a few KB).
DECODED_VALUES = 2048

# Django gives each thread its own cache backend object, so the reader built from it is kept per thread:
# (generation, connections or None, make_key, decode). A settings change starts a new generation.
_readers = threading.local()
_generation = 0
_decoders: dict[int, Any] = {}  # generation -> the shared decode memo of that generation's serializer


def _fast_reader() -> tuple[Any, Any, Any] | None:
    reader = getattr(_readers, "reader", None)
    if reader is not None and reader[0] == _generation:
        return None if reader[1] is None else reader[1:]
    from django.core.cache.backends.redis import RedisCache

    generation = _generation
    backend = caches["default"]
    inner = getattr(backend, "_cache", None)
    serializer = getattr(inner, "_serializer", None)
    if type(backend) is not RedisCache or inner is None or serializer is None:
        _readers.reader = (generation, None, None, None)
        return None
    decode = _decoders.get(generation)
    if decode is None:
        decode = _decoders.setdefault(generation, lru_cache(maxsize=DECODED_VALUES)(serializer.loads))
    reader = (generation, ThreadConnections(inner.get_client(None)), backend.make_key, decode)
    _readers.reader = reader
    return reader[1:]


def get_many(keys: list[str]) -> dict[str, Any]:
    """``cache.get_many(keys)`` of the default cache (values shared read-only on Redis: do not mutate)."""
    reader = _fast_reader()
    if reader is None:
        return cache.get_many(keys)
    connections, make_key, decode = reader
    values = connections.call("MGET", *[make_key(key) for key in keys])
    return {key: decode(value) for key, value in zip(keys, values, strict=True) if value is not None}


def _new_generation(*, setting: str, **kwargs: Any) -> None:
    global _generation
    if setting == "CACHES":
        _generation += 1
        _decoders.clear()


setting_changed.connect(_new_generation)
