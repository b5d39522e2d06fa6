"""Product rows reloaded before they lapse by a thread in each process, not by the requests that find them lapsed.

A process keeps the product rows its slots read for PRODUCT_CACHE_SECONDS (``services.context``). Reloaded by
requests, the rows due put a batch query (25-40 ms on a busy 2-core machine) into one request every second or
so, and delayed every request queued behind it on that worker: on the storefront benchmark the endpoints' p99
was 17-20 ms with the rows never reloaded and 26-70 ms with requests reloading them. Here a daemon thread per
process reloads the rows due within ``REFRESH_AHEAD_SHARE`` of their lifetime, soonest first, a small batch at
a time with a pause between batches, while the process serves slots: after PRODUCT_CACHE_SECONDS without one
it stops querying, so an idle worker leaves the database alone. A row that lapses anyway (the thread fell
behind, or the database was away) is read by the request that needs it, as without the thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from django.db import close_old_connections, connections

from shop_reco.conf import reco_settings

logger = logging.getLogger("shop_reco.recommendations")

ROWS_PER_BATCH = 50  # ~5 ms of model instances: requests of the same process wait at most about that long
BATCHES_PER_ROUND = 200
WAKE_SECONDS = 0.5
PAUSE_SECONDS = 0.01
FAILURE_PAUSE_SECONDS = 5.0

_last_read = 0.0
_thread: tuple[int, threading.Thread | None] = (0, None)
_lock = threading.Lock()


def note_read(now: float) -> None:
    """A slot read cached rows at ``now`` (``time.monotonic()``): the process is serving, keep them fresh."""
    global _last_read
    _last_read = now


def enabled() -> bool:
    return bool(reco_settings.PRODUCT_REFRESH_THREAD) and float(reco_settings.PRODUCT_CACHE_SECONDS) > 0


def _alive() -> bool:
    pid, thread = _thread
    return pid == os.getpid() and thread is not None and thread.is_alive()


def running() -> bool:
    """Whether this process's refresh thread is alive and wanted (requests then leave rows due to it)."""
    return enabled() and _alive()


def start() -> None:
    """Start this process's thread, once (a forked worker starts its own)."""
    global _thread
    if not enabled() or _alive():
        return
    with _lock:
        if _alive():
            return
        thread = threading.Thread(target=_run, name="shop_reco-row-refresh", daemon=True)
        _thread = (os.getpid(), thread)
        thread.start()


def refresh_due() -> int:
    """Reload the cached rows due now, soonest first, in batches; how many were reloaded."""
    from shop_reco.services.context import RecoContext
    from shop_reco.services.lists import soonest_due_rows

    seconds = float(reco_settings.PRODUCT_CACHE_SECONDS)
    if seconds <= 0 or time.monotonic() - _last_read > seconds:
        return 0  # nothing served lately: rows lapse, and the next request reads what it needs
    reloaded: set[str] = set()  # once per round, whatever lifetime a row came back with
    try:
        for _ in range(BATCHES_PER_ROUND):
            due = soonest_due_rows(time.monotonic(), seconds, ROWS_PER_BATCH, reloaded)
            if not due:
                break
            RecoContext().reload(due, seconds)
            reloaded.update(due)
            time.sleep(PAUSE_SECONDS)  # the process's requests run between batches
    finally:
        if reloaded:
            close_old_connections()  # this thread's connection, past CONN_MAX_AGE or broken
    return len(reloaded)


def _run() -> None:
    me = threading.current_thread()
    try:
        while _thread[1] is me and enabled():
            time.sleep(WAKE_SECONDS)
            try:
                refresh_due()
            except Exception:  # the database restarting, say: requests read lapsed rows themselves meanwhile
                logger.warning("shop_reco could not reload product rows ahead of time", exc_info=True)
                time.sleep(FAILURE_PAUSE_SECONDS)
    finally:
        connections.close_all()  # this thread's connections


def _forget_after_fork() -> None:
    global _lock
    _lock = threading.Lock()  # a parent's thread may have held it; the child's thread is started on use


os.register_at_fork(after_in_child=_forget_after_fork)
