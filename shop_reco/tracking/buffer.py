"""The Redis event buffer: cheap appends in the request, crash-safe batch flushes in a task.

Keys, all under ``EVENT_BUFFER_KEY`` (``K``):

- ``K`` (list): rows waiting, as lines of PostgreSQL's COPY text format, appended with one ``RPUSH`` per
  request (atomic: a beacon batch is buffered whole or not at all).
- ``K:processing`` (list): the batch a flush is writing. A Lua script moves a batch from ``K`` to it
  atomically; it is deleted only after the database commit, so a flush killed midway leaves it for the
  next flush, which writes it again; ``client_event_id`` makes the second write a no-op.
- ``K:lock``: one flusher at a time (with an expiry, so a dead flusher's lock lapses).
- ``K:trigger``: set for a few seconds when the size threshold asked for a flush, so it asks once per window.
- ``K:merges`` (hash): visitor id -> "user id|time" for recent logins, so the visitor's events still in the
  buffer become the user's too.
- ``K:dead`` (list): batches the database refused for a reason other than being unreachable, kept for a look.

A buffer that cannot be reached is skipped for a few seconds (the caller writes to the database instead),
so an outage costs one timeout, not one per request.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shop_reco.conf import reco_settings
from shop_reco.tracking.events import to_copy_line

logger = logging.getLogger("shop_reco.tracking")

# How long a failed buffer is skipped before it is tried again.
BREAKER_SECONDS = 5.0
# The size threshold asks for at most one flush per this many seconds.
TRIGGER_WINDOW_SECONDS = 5
# Rows per flush transaction.
FLUSH_BATCH = 10_000
LOCK_MS = 120_000
MERGE_TTL_SECONDS = 86_400
CONNECT_TIMEOUT = 0.25
SOCKET_TIMEOUT = 1.0

_clients: dict[str, Any] = {}
_down_until = 0.0

# Move up to ARGV[1] items from KEYS[1] to KEYS[2] atomically and return them.
_MOVE_SCRIPT = """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
local n = #items
if n == 0 then return items end
for i = 1, n, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(items, i, math.min(i + 999, n)))
end
redis.call('LTRIM', KEYS[1], n, -1)
return items
"""
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_EXTEND_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_DEAD_LETTER_SCRIPT = """
local items = redis.call('LRANGE', KEYS[1], 0, -1)
for i = 1, #items, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(items, i, math.min(i + 999, #items)))
end
redis.call('DEL', KEYS[1])
return #items
"""


class BufferUnavailable(Exception):
    """The buffer is configured but cannot be reached."""


@dataclass
class FlushResult:
    delivered: int = 0  # rows taken from the buffer (re-deliveries included)
    stored: int = 0  # rows new to the database
    batches: int = 0
    busy: bool = False  # another flush holds the lock
    dead_lettered: int = 0


def buffer_url() -> str | None:
    return reco_settings.EVENT_BUFFER_URL


def get_client(url: str) -> Any:
    client = _clients.get(url)
    if client is None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=SOCKET_TIMEOUT,
            # No retries: in a request the database fallback beats waiting, and a flush simply runs again.
            retry=Retry(NoBackoff(), 0),
            health_check_interval=30,
        )
        _clients[url] = client
    return client


def _key(suffix: str = "") -> str:
    base = reco_settings.EVENT_BUFFER_KEY
    return f"{base}:{suffix}" if suffix else base


def reset_breaker() -> None:
    global _down_until
    _down_until = 0.0


def push(rows: Sequence[dict[str, Any]]) -> bool:
    """Buffer rows in one atomic append; False when there is no buffer or it cannot be reached."""
    global _down_until
    url = buffer_url()
    if not url or not rows:
        return False
    if time.monotonic() < _down_until:
        return False
    import redis

    payloads = [to_copy_line(row) for row in rows]
    try:
        client = get_client(url)
        length = client.rpush(_key(), *payloads)
    except redis.RedisError:
        _down_until = time.monotonic() + BREAKER_SECONDS
        logger.warning(
            "shop_reco event buffer at %s is unreachable; writing events directly", url, exc_info=True
        )
        return False
    if length >= reco_settings.EVENT_BUFFER_FLUSH_SIZE:
        _ask_for_flush(client)
    return True


_asked_until = 0.0  # this process asked for a flush lately: no round trip to ask again


def _ask_for_flush(client: Any) -> None:
    """Queue one flush task per window; never flush here, inside someone's request."""
    global _asked_until
    now = time.monotonic()
    if now < _asked_until:
        return
    _asked_until = now + TRIGGER_WINDOW_SECONDS
    try:
        if not celery_queues_tasks():
            return  # eager (or no) Celery would run the flush in this request; the periodic flush will do it
        if client.set(_key("trigger"), "1", nx=True, ex=TRIGGER_WINDOW_SECONDS):
            from shop_reco.tasks import flush_events

            flush_events.delay()
    except Exception:  # a broker hiccup must not fail the request; the periodic flush still runs
        logger.warning("shop_reco could not queue an event flush", exc_info=True)


def celery_queues_tasks() -> bool:
    """True when ``.delay()`` sends to a broker rather than running the task here and now."""
    from celery import current_app

    conf = current_app.conf
    return bool(conf.broker_url) and not conf.task_always_eager


def remember_merge(visitor_id: str, user_id: Any) -> None:
    """Tell the flusher that this visitor's buffered anonymous events belong to ``user_id``."""
    url = buffer_url()
    if not url:
        return
    import redis

    try:
        client = get_client(url)
        client.hset(_key("merges"), visitor_id, f"{user_id}|{int(time.time())}")
        client.expire(_key("merges"), MERGE_TTL_SECONDS)
    except redis.RedisError:
        logger.warning("shop_reco could not record a visitor merge in the buffer", exc_info=True)


def forget_merges(visitor_ids: Sequence[str]) -> None:
    url = buffer_url()
    if url and visitor_ids:
        get_client(url).hdel(_key("merges"), *visitor_ids)


def _recent_merges(client: Any) -> dict[str, str]:
    """Visitor -> user for logins within MERGE_TTL_SECONDS; older entries are dropped on the way."""
    merges: dict[str, str] = {}
    stale: list[bytes] = []
    cutoff = time.time() - MERGE_TTL_SECONDS
    for visitor, value in client.hgetall(_key("merges")).items():
        user_id, _, stamp = value.decode().partition("|")
        if stamp.isdigit() and int(stamp) >= cutoff:
            merges[visitor.decode()] = user_id
        else:
            stale.append(visitor)
    if stale:
        client.hdel(_key("merges"), *stale)
    return merges


def pending_count() -> int:
    url = buffer_url()
    if not url:
        return 0
    client = get_client(url)
    return int(client.llen(_key())) + int(client.llen(_key("processing")))


def flush(*, batch_size: int = FLUSH_BATCH, max_batches: int | None = None, wait: float = 0.0) -> FlushResult:
    """Move buffered rows into the database in batches until the buffer is empty.

    Raises the database's error when it is unreachable: the batch stays in ``K:processing`` and the next flush
    delivers it again.
    """
    from django.db import DatabaseError, InterfaceError, OperationalError

    from shop_reco.tracking import store

    result = FlushResult()
    url = buffer_url()
    if not url:
        return result
    client = get_client(url)
    lock, processing, token = _key("lock"), _key("processing"), uuid.uuid4().hex
    deadline = time.monotonic() + wait
    while not client.set(lock, token, nx=True, px=LOCK_MS):
        if time.monotonic() >= deadline:
            result.busy = True
            return result
        time.sleep(0.05)
    move = client.register_script(_MOVE_SCRIPT)
    merges = _recent_merges(client)
    try:
        # First whatever a flush that died left behind.
        items = client.lrange(processing, 0, -1)
        while True:
            if not items:
                if max_batches is not None and result.batches >= max_batches:
                    break
                items = move(keys=[_key(), processing], args=[batch_size])
                if not items:
                    break
            try:
                result.stored += store.write_copy_lines(items, merges=merges)
            except (OperationalError, InterfaceError):
                raise  # database down: keep the batch for the next flush
            except DatabaseError:
                # The database refused this batch itself; park it instead of retrying it forever.
                logger.exception(
                    "shop_reco moved %d buffered events the database refused to %s", len(items), _key("dead")
                )
                result.dead_lettered += client.register_script(_DEAD_LETTER_SCRIPT)(
                    keys=[processing, _key("dead")]
                )
            else:
                client.delete(processing)  # only after the commit
            result.delivered += len(items)
            result.batches += 1
            items = []
            client.register_script(_EXTEND_SCRIPT)(keys=[lock], args=[token, LOCK_MS])
    finally:
        client.register_script(_RELEASE_SCRIPT)(keys=[lock], args=[token])
    return result


def requeue_dead_letters() -> int:
    """Put parked batches back in the buffer (after fixing what the database refused)."""
    url = buffer_url()
    if not url:
        return 0
    client = get_client(url)
    return int(client.register_script(_DEAD_LETTER_SCRIPT)(keys=[_key("dead"), _key()]))
