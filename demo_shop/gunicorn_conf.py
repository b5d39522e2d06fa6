"""gunicorn settings for serving the shop in production: ``gunicorn -c python:demo_shop.gunicorn_conf demo_shop.wsgi``.

The app is imported once in the master and the workers fork from it. Everything imported by then (Django,
the apps, their modules: well over 100,000 objects) is moved out of the garbage collector's sight with
``gc.freeze()`` before the fork, as the Python docs advise for pre-fork servers: otherwise every full
collection in a worker walks all of it again (~100 ms on a small machine, a stall for every request the
worker holds), and touching their reference counts copies the shared memory pages.

A worker then fills its own caches (slot memos, product rows, lists, histories: ~100,000 more objects once
warm), which every full collection would walk again: measured here, 70-170 ms stalls every few seconds under
load, the p99 of every page. So a worker also freezes what it holds once a while (``GUNICORN_GC_FREEZE_SECONDS``,
default 300; 0 turns it off): one full collection (the one stall), then ``gc.freeze()``; later full collections
walk only what came since (2-15 ms). Cached entries dropped later are still freed by reference counting (they
hold no cycles); what a freeze catches of the requests in flight at that moment (a few dozen objects) stays.
"""

import gc
import os
import threading
import time

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
worker_class = "gthread"
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "2"))
preload_app = True


def when_ready(server):  # the master, app imported, before the first fork
    gc.disable()  # no collection leaves holes in the pages the workers will share
    gc.freeze()


def pre_fork(server, worker):  # objects the master made since (a respawn) join the frozen ones
    gc.freeze()


def post_fork(server, worker):
    gc.enable()
    _freezer.start()


class _PeriodicFreeze:
    """Collect and freeze every ``seconds`` (the first time a minute after the fork, once caches are warm)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.due = float("inf")
        self.lock = threading.Lock()

    def start(self) -> None:
        self.due = time.monotonic() + min(60.0, self.seconds) if self.seconds > 0 else float("inf")

    def after_request(self) -> None:
        if time.monotonic() < self.due or not self.lock.acquire(blocking=False):
            return
        try:
            gc.collect()
            gc.freeze()
            self.due = time.monotonic() + self.seconds
        finally:
            self.lock.release()


_freezer = _PeriodicFreeze(float(os.environ.get("GUNICORN_GC_FREEZE_SECONDS", "300")))


def post_request(worker, req, environ, resp):  # in the thread that served it, after the response
    _freezer.after_request()
