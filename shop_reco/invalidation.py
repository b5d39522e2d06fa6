"""Values a worker process keeps in its own memory, dropped by every process when shop_reco changes them.

A shopper's history is read on every personal slot. The Django cache (Redis) shares it between workers at the
price of a round trip per request; a copy in the process itself costs nothing to read, but must not outlive
a change another process made. So a change is announced: :func:`announce` deletes the shared entries and
publishes their names on one Redis channel in one script, and a thread in every process, subscribed to that
channel, marks those names dropped. A local copy (:class:`LocalValues`) is used only

- while that thread is subscribed: each subscription is a new epoch, and nothing copied in an earlier epoch is
  used (announcements may have been missed while it was away);
- if no announcement of its names arrived after the shared read it was copied from began;
- for at most ``LOCAL_SECONDS``, since writes that bypass shop_reco (the ORM by hand, the retention purge)
  announce nothing.

Another process sees an announcement within the channel's delivery time (well under a millisecond on a quiet
server, a few milliseconds under load); the announcing process at once. Only a default cache on Django's
Redis backend has a channel: with any other cache nothing is kept locally.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

from django.core.cache import cache, caches
from django.core.signals import setting_changed

logger = logging.getLogger("shop_reco.storefront")

# How long a local copy may serve at most, announced or not.
LOCAL_SECONDS = 30.0
# Names whose drop is remembered this long: a copy that could still be in use is younger than this.
_DROP_MEMORY_SECONDS = LOCAL_SECONDS + 10.0
# A shared read slower than this is not copied: drops are remembered for LOCAL_SECONDS plus this margin.
_SLOW_READ_SECONDS = 5.0
_RECONNECT_SECONDS = (0.1, 0.5, 2.0, 5.0)
# The listener pings this often, and takes a channel silent for three times as long as lost.
_PING_SECONDS = 5.0
_WARN_SECONDS = 60.0

# Delete the shared entries and publish the names in one step: no reader can fetch a deleted entry's old
# value after the announcement has left, and no announcement is lost between the two.
_ANNOUNCE = """
if #KEYS > 0 then redis.call('DEL', unpack(KEYS)) end
return redis.call('PUBLISH', ARGV[1], ARGV[2])
"""

_epochs = itertools.count(1)


class Listener:
    """The subscribing thread of one process: which names were dropped, and since when it listens."""

    def __init__(self, client: Any, channel: str) -> None:
        self.pid = os.getpid()
        self.sender = os.urandom(8).hex()  # names this process's announcements
        self.channel = channel
        self.epoch = 0  # 0: not subscribed, nothing local may be used
        self.seq = 0  # announcements received so far
        self.dropped: dict[str, int] = {}  # name -> seq of its latest announcement
        self._dropped_at: OrderedDict[str, float] = OrderedDict()
        self._drop_lock = threading.Lock()  # the thread and an announcing request may drop at once
        self._client = client
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shop_reco-invalidation", daemon=True)
        self._thread.start()

    def drop(self, names: Iterable[str]) -> None:
        """Mark ``names`` dropped (the listener on an announcement; the announcing process at once)."""
        with self._drop_lock:
            seq = self.seq + 1
            now = time.monotonic()
            for name in names:
                self.dropped[name] = seq  # before seq moves on: no reader sees the new seq without the drop
                self._dropped_at[name] = now
                self._dropped_at.move_to_end(name)
            self.seq = seq

    def stop(self) -> None:
        self._stop.set()
        self.epoch = 0

    def _run(self) -> None:
        failures = 0
        warned_at = -_WARN_SECONDS
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self._client.pubsub()
                pubsub.subscribe(self.channel)
                heard = pinged = time.monotonic()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    now = time.monotonic()
                    if message is not None:
                        heard = now
                    if now - pinged >= _PING_SECONDS:
                        # A connection that died without a word would otherwise look like a quiet channel.
                        if now - heard > 3 * _PING_SECONDS:
                            raise ConnectionError("the invalidation channel stopped answering")
                        pubsub.ping()
                        pinged = now
                        self._forget_old_drops()
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        # Announcements from now on reach this process: local copies may be used.
                        self.epoch = next(_epochs)
                        failures = 0
                    elif message["type"] == "message":
                        sender, *names = message["data"].decode().split("\n")
                        if sender != self.sender:  # its own announcements dropped at once, after the delete
                            self.drop(names)
            except Exception:
                if time.monotonic() - warned_at >= _WARN_SECONDS:
                    warned_at = time.monotonic()
                    logger.warning(
                        "shop_reco lost its invalidation channel; local copies unused until it is back",
                        exc_info=True,
                    )
            finally:
                self.epoch = 0
                if pubsub is not None:
                    with contextlib.suppress(Exception):  # the connection is already gone
                        pubsub.close()
            failures += 1
            self._stop.wait(_RECONNECT_SECONDS[min(failures, len(_RECONNECT_SECONDS)) - 1])

    def _forget_old_drops(self) -> None:
        horizon = time.monotonic() - _DROP_MEMORY_SECONDS
        with self._drop_lock:
            dropped_at = self._dropped_at
            while dropped_at:
                name, when = next(iter(dropped_at.items()))
                if when > horizon:
                    break
                del dropped_at[name]
                self.dropped.pop(name, None)


def local_lifetime() -> float:
    """LOCAL_SECONDS less up to a fifth, at random: copies read together (a warm-up, a busy minute) do not all
    lapse, and go back to Redis, in the same instant."""
    return LOCAL_SECONDS * (1.0 - 0.2 * random.random())


Token = tuple[int, int, float]  # (epoch, announcements received, when) as a shared read began


def read_token() -> Token | None:
    """Take before a shared read whose value may be kept locally; None: nothing may be kept now."""
    listener = current_listener()
    if listener is None or not listener.epoch:
        return None
    return listener.epoch, listener.seq, time.monotonic()


def unchanged_since(token: Token | None, names: Sequence[str]) -> bool:
    """Whether a value read after ``token`` is still current: the channel has stayed up since, and no
    process has announced a change of any of ``names``."""
    if token is None:
        return False
    listener = current_listener()
    if listener is None or listener.epoch != token[0]:
        return False
    dropped, seq = listener.dropped, token[1]
    return all(dropped.get(name, 0) <= seq for name in names)


def keepable(token: Token | None, names: Sequence[str]) -> bool:
    """Whether a value just read after ``token`` may be kept: unchanged since, and read quickly enough that
    the listener still remembers every announcement made during the read."""
    return (
        token is not None
        and time.monotonic() - token[2] <= _SLOW_READ_SECONDS
        and unchanged_since(token, names)
    )


class LocalValues:
    """A bounded map of local copies, each valid only as the module docstring says.

    ``read_token()`` before the shared read; ``put(key, names, value, token)`` after it, with the names whose
    announcement makes the value stale; ``get(key)`` returns the value or None.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[str, tuple[Token, float, tuple[str, ...], Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        entry = self._entries.get(key)  # one dict read: atomic under the GIL
        if entry is None:
            return None
        token, expires, names, value = entry
        if expires <= time.monotonic() or not unchanged_since(token, names):
            return None
        return value

    def put(self, key: str, names: Sequence[str], value: Any, token: Token | None) -> None:
        if not keepable(token, names):
            return  # announced while it was being read: that value may already be the old one
        with self._lock:
            self._entries[key] = (token, time.monotonic() + local_lifetime(), tuple(names), value)  # type: ignore[assignment]
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


# (pid, cache generation, listener or None when the cache has no channel): read without the lock.
_state: tuple[int, int, Listener | None] = (-1, -1, None)
_state_lock = threading.Lock()
_generation = 0  # a change of CACHES starts over


def _redis_parts() -> tuple[Any, Any] | None:
    """(redis client, make_key) of the default cache when it is Django's Redis backend, else None."""
    from django.core.cache.backends.redis import RedisCache

    backend = caches["default"]
    if type(backend) is not RedisCache:
        return None
    return backend._cache.get_client(None), backend.make_key


def _channel(client: Any, make_key: Any) -> str:
    # Channels are server-wide, databases are not: name the database and the cache's key prefix.
    database = client.connection_pool.connection_kwargs.get("db", 0)
    return f"shop_reco:invalidate:{database}:{make_key('')}"


def current_listener(*, start: bool = True) -> Listener | None:
    """This process's listener, started on first use; None when the default cache has no channel (or, with
    ``start=False``, when this process has not started one)."""
    global _state
    state = _state
    if state[0] == os.getpid() and state[1] == _generation:
        return state[2]
    if not start:
        return None
    with _state_lock:
        pid, generation, listener = _state
        if pid == os.getpid() and generation == _generation:
            return listener
        if listener is not None and pid == os.getpid():
            listener.stop()
        generation = _generation
        parts = _redis_parts()
        listener = None if parts is None else Listener(parts[0], _channel(*parts))
        _state = (os.getpid(), generation, listener)
        return listener


def announce(keys: Sequence[str]) -> None:
    """Delete the default cache's entries ``keys`` and tell every process to drop local copies named so.

    Raises what the cache raises: the caller decides what a failed announcement costs.
    """
    if not keys:
        return
    parts = _redis_parts()
    if parts is None:
        cache.delete_many(keys)
        return
    from redis.exceptions import ResponseError  # installed: the cache is Django's Redis backend

    client, make_key = parts
    # A process that keeps no local copies (a task worker announcing its writes) needs no listener.
    listener = current_listener(start=False)
    sender = listener.sender if listener is not None else "-"
    try:
        client.eval(
            _ANNOUNCE,
            len(keys),
            *[make_key(key) for key in keys],
            _channel(client, make_key),
            "\n".join([sender, *keys]),
        )
    except ResponseError:
        # A server or proxy without scripts or PUBLISH: the shared entries still go; local copies then live
        # their LOCAL_SECONDS (and a listener on such a server never subscribes, so none are kept).
        logger.warning("shop_reco could not announce a change on Redis; deleting only", exc_info=True)
        cache.delete_many(keys)
    finally:
        if listener is not None:
            # This process knows at once (the others within the delivery time), and after the delete: a
            # copy read before it is refused, one read after it is current.
            listener.drop(keys)


def _forget_after_fork() -> None:
    global _state_lock
    _state_lock = threading.Lock()  # a parent's thread may have held it; the child starts its own listener


def _new_generation(*, setting: str, **kwargs: Any) -> None:
    global _generation
    if setting == "CACHES":
        _generation += 1
        pid, _, listener = _state
        if listener is not None and pid == os.getpid():
            listener.stop()


os.register_at_fork(after_in_child=_forget_after_fork)
setting_changed.connect(_new_generation)
