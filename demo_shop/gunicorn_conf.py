"""gunicorn settings for serving the shop in production: ``gunicorn -c python:demo_shop.gunicorn_conf demo_shop.wsgi``.

The app is imported once in the master and the workers fork from it. Everything imported by then (Django,
the apps, their modules: well over 100,000 objects) is moved out of the garbage collector's sight with
``gc.freeze()`` before the fork, as the Python docs advise for pre-fork servers: otherwise every full
collection in a worker walks all of it again (~100 ms on a small machine, a stall for every request the
worker holds), and touching their reference counts copies the shared memory pages.
"""

import gc
import os

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
