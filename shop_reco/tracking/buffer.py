"""The Redis event buffer: cheap appends in the request, crash-safe batch flushes in a task.

Keys, all under ``EVENT_BUFFER_KEY`` (``K``):

- ``K`` (list): rows waiting, as lines of PostgreSQL's COPY text format, appended with one ``RPUSH`` per
  request (atomic: a beacon batch is buffered whole or not at all).
- ``K:processing`` (list), and ``K:processing:N`` for flush slot N > 0: the batch a flusher is writing. A
  Lua script moves a batch from ``K`` to its slot's list atomically, so parallel flushers take disjoint
  slices; the list is deleted only after the database commit, so a flush killed midway leaves it for the next
  flusher of that slot, which writes it again; ``client_event_id`` makes the second write a no-op.
- ``K:lock`` and ``K:lock:N``: one flusher per slot, up to ``EVENT_FLUSH_WORKERS`` at once (with an expiry,
  so a dead flusher's lock lapses).
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
from shop_reco.queueing import FLUSH_EVENTS, celery_queues_tasks, queue_task
from shop_reco.redis_direct import ThreadConnections
from shop_reco.tracking.events import to_copy_line

logger = logging.getLogger("shop_reco.tracking")

# How long a failed buffer is skipped before it is tried again.
BREAKER_SECONDS = 5.0
# The size threshold asks for at most one flush per this many seconds.
TRIGGER_WINDOW_SECONDS = 5
# Rows per flush transaction.
FLUSH_BATCH = 10_000
LOCK_MS = 120_000
# Slots a flusher may find left over from a larger EVENT_FLUSH_WORKERS; checked so none is stranded.
MAX_FLUSH_SLOTS = 16
MERGE_TTL_SECONDS = 86_400
CONNECT_TIMEOUT = 0.25
SOCKET_TIMEOUT = 1.0

_clients: dict[str, Any] = {}
# url -> (client, its per-thread connections for the request's append); follows _clients when that changes.
_appenders: dict[str, tuple[Any, ThreadConnections]] = {}
_down_until = 0.0

# Move up to ARGV[1] items from KEYS[1] into the string KEYS[2] (lines joined by newlines, what COPY reads)
# atomically and return it: one reply to read instead of one per row.
_MOVE_SCRIPT = """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
local n = #items
if n == 0 then return false end
local batch = table.concat(items, '\\n')
redis.call('SET', KEYS[2], batch)
redis.call('LTRIM', KEYS[1], n, -1)
return batch
"""
# The batch a dead flusher left in KEYS[1]: a string, or a list of lines (the layout before batches were
# joined in Redis).
_LEFT_BEHIND_SCRIPT = """
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'string' then return redis.call('GET', KEYS[1]) end
if kind == 'list' then return table.concat(redis.call('LRANGE', KEYS[1], 0, -1), '\\n') end
return false
"""
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_EXTEND_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# Rows waiting in the list KEYS[1] plus those in the slots' batches KEYS[2..].
_COUNT_SCRIPT = """
local total = redis.call('LLEN', KEYS[1])
for i = 2, #KEYS do
  local kind = redis.call('TYPE', KEYS[i])['ok']
  if kind == 'list' then
    total = total + redis.call('LLEN', KEYS[i])
  elseif kind == 'string' then
    local _, newlines = string.gsub(redis.call('GET', KEYS[i]), '\\n', '')
    total = total + newlines + 1
  end
end
return total
"""
# Move the lines of KEYS[1] (a batch string, or a list of lines) to the end of the list KEYS[2].
_DEAD_LETTER_SCRIPT = """
local kind = redis.call('TYPE', KEYS[1])['ok']
local items
if kind == 'string' then
  items = {}
  for line in string.gmatch(redis.call('GET', KEYS[1]), '[^\\n]+') do items[#items + 1] = line end
elseif kind == 'list' then
  items = redis.call('LRANGE', KEYS[1], 0, -1)
else
  return 0
end
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
        length = _appender(url, client).call("RPUSH", _key(), *payloads)
    except redis.RedisError:
        _down_until = time.monotonic() + BREAKER_SECONDS
        logger.warning(
            "shop_reco event buffer at %s is unreachable; writing events directly", url, exc_info=True
        )
        return False
    if length >= reco_settings.EVENT_BUFFER_FLUSH_SIZE:
        _ask_for_flush(client)
    return True


def push_lines(lines: Sequence[bytes]) -> None:
    """Append COPY lines (the spool's) in as few commands as possible; raises when the buffer cannot take them."""
    url = buffer_url()
    if not url:
        raise BufferUnavailable("no EVENT_BUFFER_URL")
    client = get_client(url)
    length = 0
    for start in range(0, len(lines), FLUSH_BATCH):
        length = client.rpush(_key(), *lines[start : start + FLUSH_BATCH])
    if length >= reco_settings.EVENT_BUFFER_FLUSH_SIZE:
        _ask_for_flush(client)


def _appender(url: str, client: Any) -> ThreadConnections:
    """The request threads' own connections for appends: no pool round per request (redis_direct)."""
    entry = _appenders.get(url)
    if entry is None or entry[0] is not client:
        entry = _appenders[url] = (client, ThreadConnections(client))
    return entry[1]


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
            queue_task(FLUSH_EVENTS)
    except Exception:  # a broker hiccup must not fail the request; the periodic flush still runs
        logger.warning("shop_reco could not queue an event flush", exc_info=True)


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
    keys = [_key(), *(_slot_keys(slot)[1] for slot in range(MAX_FLUSH_SLOTS))]
    return int(client.register_script(_COUNT_SCRIPT)(keys=keys))


def _slot_keys(slot: int) -> tuple[str, str]:
    """(lock, processing) of a flush slot; slot 0 keeps the names of the single-flusher layout."""
    return (
        (_key("lock"), _key("processing"))
        if slot == 0
        else (_key(f"lock:{slot}"), _key(f"processing:{slot}"))
    )


def flush_slots() -> int:
    return min(int(reco_settings.EVENT_FLUSH_WORKERS), MAX_FLUSH_SLOTS)


def flush(
    *,
    batch_size: int = FLUSH_BATCH,
    max_batches: int | None = None,
    wait: float = 0.0,
    slot: int | None = None,
) -> FlushResult:
    """Move buffered rows into the database in batches until the buffer is empty.

    Takes the first free flush slot (or ``slot``), so up to ``EVENT_FLUSH_WORKERS`` flushes (tasks, commands)
    run at once on separate connections, each over its own batches. Raises the database's error when it is
    unreachable: the batch stays in the slot's processing list and the slot's next flush delivers it again.
    """
    result = FlushResult()
    url = buffer_url()
    if not url:
        return result
    client = get_client(url)
    token = uuid.uuid4().hex
    slots = [slot] if slot is not None else list(range(flush_slots()))
    deadline = time.monotonic() + wait
    while True:
        taken = next((n for n in slots if client.set(_slot_keys(n)[0], token, nx=True, px=LOCK_MS)), None)
        if taken is not None:
            break
        if time.monotonic() >= deadline:
            result.busy = True
            return result
        time.sleep(0.05)
    lock = _slot_keys(taken)[0]
    try:
        _flush_slot(client, taken, token, result, batch_size=batch_size, max_batches=max_batches)
        if taken == 0 and slot is None:
            _flush_stranded_slots(client, result, batch_size=batch_size)
    finally:
        client.register_script(_RELEASE_SCRIPT)(keys=[lock], args=[token])
    return result


def flush_all(*, wait: float = 30.0) -> FlushResult:
    """Flush through every slot in turn, waiting for each: afterwards no batch is still being written.

    For the erasure, which must not run while another flusher is about to commit the shopper's events.
    """
    total = FlushResult()
    for slot in range(flush_slots()):
        part = flush(slot=slot, wait=wait)
        total.busy = total.busy or part.busy
        total.delivered += part.delivered
        total.stored += part.stored
        total.batches += part.batches
        total.dead_lettered += part.dead_lettered
    return total


def _flush_slot(
    client: Any, slot: int, token: str, result: FlushResult, *, batch_size: int, max_batches: int | None
) -> None:
    from django.db import DatabaseError, InterfaceError, OperationalError

    from shop_reco.tracking import store

    lock, processing = _slot_keys(slot)
    move = client.register_script(_MOVE_SCRIPT)
    merges = _recent_merges(client)
    # First whatever a flush of this slot that died left behind.
    batch = client.register_script(_LEFT_BEHIND_SCRIPT)(keys=[processing])
    while True:
        if not batch:
            if max_batches is not None and result.batches >= max_batches:
                break
            batch = move(keys=[_key(), processing], args=[batch_size])
            if not batch:
                break
        rows = batch.count(b"\n") + 1
        try:
            result.stored += store.write_copy_batch(batch, merges=merges)
        except (OperationalError, InterfaceError):
            raise  # database down: keep the batch for the next flush
        except DatabaseError:
            # The database refused this batch itself; park it instead of retrying it forever.
            logger.exception(
                "shop_reco moved %d buffered events the database refused to %s", rows, _key("dead")
            )
            result.dead_lettered += client.register_script(_DEAD_LETTER_SCRIPT)(
                keys=[processing, _key("dead")]
            )
        else:
            client.delete(processing)  # only after the commit
        result.delivered += rows
        result.batches += 1
        batch = None
        client.register_script(_EXTEND_SCRIPT)(keys=[lock], args=[token, LOCK_MS])


def _flush_stranded_slots(client: Any, result: FlushResult, *, batch_size: int) -> None:
    """Batches left in slots beyond EVENT_FLUSH_WORKERS (the setting was lowered after a crash)."""
    extra = range(flush_slots(), MAX_FLUSH_SLOTS)
    with client.pipeline(transaction=False) as pipe:
        for slot in extra:
            pipe.exists(_slot_keys(slot)[1])
        lengths = pipe.execute()
    for slot, length in zip(extra, lengths, strict=True):
        if not length:
            continue
        token = uuid.uuid4().hex
        lock = _slot_keys(slot)[0]
        if client.set(lock, token, nx=True, px=LOCK_MS):
            try:
                # max_batches=result.batches: only the stranded batch, new work goes to the live slots.
                _flush_slot(client, slot, token, result, batch_size=batch_size, max_batches=result.batches)
            finally:
                client.register_script(_RELEASE_SCRIPT)(keys=[lock], args=[token])


def requeue_dead_letters() -> int:
    """Put parked batches back in the buffer (after fixing what the database refused)."""
    url = buffer_url()
    if not url:
        return 0
    client = get_client(url)
    return int(client.register_script(_DEAD_LETTER_SCRIPT)(keys=[_key("dead"), _key()]))
