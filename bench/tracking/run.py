"""Tracking benchmark: middleware overhead, buffer flush into PostgreSQL, beacon intake under gunicorn.

    python -m bench.tracking.run                       # the full run (1,000,000 events flushed)
    python -m bench.tracking.run --events 200000 --seconds 10 --iterations 5000   # quicker

It creates its own PostgreSQL database (``shop_reco_bench_tracking``, or ``$SHOP_RECO_BENCH_TRACKING_DB``) and starts its own redis-server on a free port,
and removes both at the end. Targets: middleware p99 added latency <= 0.5 ms; flush >= 50,000 events/s;
beacon >= 2,000 events/s accepted with no 5xx and every accepted event stored exactly once.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.client import HTTPConnection
from typing import Any

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# Its own database name, so it never collides with another bench (override for parallel runs).
DB_NAME = os.environ.get("SHOP_RECO_BENCH_TRACKING_DB", "shop_reco_bench_tracking")
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
N_PRODUCTS = 1000
BATCH = 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# --- 1. middleware overhead ------


def bench_middleware(iterations: int) -> dict[str, float]:
    """Interleaved requests through two full middleware stacks, with and without TrackingMiddleware.

    Timed as a WSGI server sees it: ``get_response`` until the response is ready ("page"), then
    ``response.close()``, which the server calls after sending the body and where the view is written to the
    buffer; "worker" includes that close.
    """
    from django.conf import settings
    from django.core.handlers.base import BaseHandler
    from django.test import RequestFactory
    from django.test.utils import override_settings

    from shop_reco.checks import MIDDLEWARE_PATH
    from shop_reco.models import Event
    from shop_reco.tracking import buffer

    factory = RequestFactory()

    def handler(with_tracking: bool) -> BaseHandler:
        middleware = [m for m in settings.MIDDLEWARE if with_tracking or m != MIDDLEWARE_PATH]
        with override_settings(MIDDLEWARE=middleware):
            result = BaseHandler()
            result.load_middleware()
        return result

    def cookie_headers(on: BaseHandler, visitors: int = 1000) -> list[str]:
        """Returning visitors, each with the cookies a first page view gave them."""
        headers = []
        for _ in range(visitors):
            response = on.get_response(factory.get("/product/1/", HTTP_USER_AGENT=UA))
            response.close()
            headers.append("; ".join(f"{name}={morsel.value}" for name, morsel in response.cookies.items()))
        return headers

    def measure(on: BaseHandler, off: BaseHandler, cookies: list[str], n: int) -> dict[str, list[float]]:
        times: dict[str, list[float]] = {
            "on_page": [],
            "on_worker": [],
            "off_page": [],
            "off_worker": [],
            "on_cpu": [],
            "off_cpu": [],
        }
        rng = random.Random(1)
        for i in range(n):
            url = f"/product/{rng.randint(1, N_PRODUCTS)}/"
            cookie = cookies[rng.randrange(len(cookies))]
            order = (("on", on), ("off", off)) if i % 2 else (("off", off), ("on", on))
            for label, chain in order:  # interleaved, alternating order
                request = factory.get(url, HTTP_USER_AGENT=UA, HTTP_COOKIE=cookie)
                cpu = time.thread_time_ns()
                start = time.perf_counter_ns()
                response = chain.get_response(request)
                ready = time.perf_counter_ns()
                cpu_ready = time.thread_time_ns()
                response.close()
                done = time.perf_counter_ns()
                assert response.status_code == 200
                times[f"{label}_page"].append((ready - start) / 1e6)
                times[f"{label}_worker"].append((done - start) / 1e6)
                # CPU of this thread until the page is ready: what load on the machine cannot inflate.
                times[f"{label}_cpu"].append((cpu_ready - cpu) / 1e6)
        return times

    results: dict[str, float] = {}
    for label, buffer_url in (("buffer", settings.SHOP_RECO["EVENT_BUFFER_URL"]), ("direct", None)):
        with override_settings(SHOP_RECO={**settings.SHOP_RECO, "EVENT_BUFFER_URL": buffer_url}):
            on, off = handler(True), handler(False)
            cookies = cookie_headers(on)
            n = iterations if label == "buffer" else max(iterations // 4, 1000)
            measure(on, off, cookies, min(2000, n))  # warm-up
            gc.collect()
            times = measure(on, off, cookies, n)
        for key, values in times.items():
            results[f"{label}_{key}_p50"] = statistics.median(values)
            results[f"{label}_{key}_p99"] = percentile(values, 99)
        results[f"{label}_cpu_mean_added"] = statistics.fmean(times["on_cpu"]) - statistics.fmean(
            times["off_cpu"]
        )
        for kind in ("page", "worker"):
            for q in ("p50", "p99"):
                on_q, off_q = results[f"{label}_on_{kind}_{q}"], results[f"{label}_off_{kind}_{q}"]
                results[f"{label}_{kind}_{q}_added"] = on_q - off_q
        # The same figure per consecutive round, to show how much of it is noise.
        rounds, size = [], max(n // 5, 1)
        for start in range(0, n - size + 1, size):
            on_r, off_r = times["on_page"][start : start + size], times["off_page"][start : start + size]
            rounds.append(percentile(on_r, 99) - percentile(off_r, 99))
        results[f"{label}_page_p99_rounds"] = rounds  # type: ignore[assignment]
        results[f"{label}_round_n"] = size
        results[f"{label}_n"] = n
    buffer.get_client(settings.SHOP_RECO["EVENT_BUFFER_URL"]).delete("bench:events")
    Event.objects.all().delete()
    return results


# --- 2. flush into PostgreSQL ------


def fill_buffer(n: int, user_ids: list[int], product_keys: list[str]) -> None:
    import redis
    from django.conf import settings

    from shop_reco.tracking.events import to_copy_line

    client = redis.Redis.from_url(settings.SHOP_RECO["EVENT_BUFFER_URL"])
    rng = random.Random(7)
    visitors = [uuid.UUID(int=rng.getrandbits(128)).hex for _ in range(100_000)]
    start = datetime(2025, 1, 1, tzinfo=UTC)
    types = ["view"] * 70 + ["add_to_cart"] * 12 + ["rec_impression"] * 10 + ["purchase"] * 5 + ["search"] * 3
    chunk: list[str] = []
    for i in range(n):
        kind = types[i % 100]
        row = {
            "event_type": kind,
            "visitor_id": visitors[rng.randrange(len(visitors))],
            "user_id": user_ids[rng.randrange(len(user_ids))] if i % 5 == 0 else None,
            "product_key": "" if kind == "search" else product_keys[rng.randrange(len(product_keys))],
            "quantity": 1,
            "unit_price": "4.95" if kind == "purchase" else None,
            "basket_ref": f"W{i // 3}" if kind == "purchase" else "",
            "slot": "similar" if kind == "rec_impression" else "",
            "token": "",
            "client_event_id": uuid.uuid4().hex,
            "context": {"query": "blue mug", "results": 12} if kind == "search" else {},
            "occurred_at": (start + timedelta(seconds=i * 2.5)).isoformat(),
        }
        chunk.append(to_copy_line(row))
        if len(chunk) == 20_000:
            client.rpush("bench:events", *chunk)
            chunk = []
    if chunk:
        client.rpush("bench:events", *chunk)


def _backend_cpu_seconds(pid: int) -> float:
    """CPU time of a PostgreSQL backend on this machine (utime + stime), or nan when /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def _flusher(args: tuple[int, float]) -> dict[str, Any]:
    """One flusher process, as one Celery worker running the flush task: flush until the buffer is empty."""
    batch_size, go = args
    from django.db import connection

    from shop_reco.tracking import buffer

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    backend_cpu0, cpu0 = _backend_cpu_seconds(backend), time.process_time()
    while time.time() < go:  # every flusher starts at the same moment
        time.sleep(0.001)
    batches: list[tuple[int, float]] = []
    last_commit = time.time()
    while True:
        b0 = time.time()
        result = buffer.flush(batch_size=batch_size, max_batches=1)
        if result.busy:  # every slot taken: should not happen with one slot per flusher
            time.sleep(0.01)
            continue
        if not result.delivered:
            break
        last_commit = time.time()
        batches.append((result.delivered, last_commit - b0))
    stats = {
        "last_commit": last_commit,
        "batches": batches,
        "cpu": time.process_time() - cpu0,
        "backend_cpu": _backend_cpu_seconds(backend) - backend_cpu0,
    }
    connection.close()
    return stats


def bench_flush(n: int, batch_size: int, flushers: int) -> dict[str, Any]:
    import redis
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection, connections

    from demo_shop.catalogue.models import Product
    from shop_reco.models import Event

    user_model = get_user_model()
    user_model.objects.bulk_create([user_model(username=f"shopper{i}") for i in range(1000)])
    user_ids = list(user_model.objects.values_list("pk", flat=True))
    product_keys = [str(pk) for pk in Product.objects.values_list("pk", flat=True)]
    t0 = time.perf_counter()
    fill_buffer(n, user_ids, product_keys)
    fill_seconds = time.perf_counter() - t0

    connections.close_all()  # each forked flusher opens its own connection
    redis_client = redis.Redis.from_url(settings.SHOP_RECO["EVENT_BUFFER_URL"])
    redis_cpu0 = _redis_cpu_seconds(redis_client)
    go = time.time() + 1.0
    with multiprocessing.get_context("fork").Pool(flushers) as pool:
        parts = pool.map(_flusher, [(batch_size, go)] * flushers)
    # Sustained: from the moment the flushers start to the last commit, every row and every index in.
    seconds = max(part["last_commit"] for part in parts) - go
    redis_cpu = _redis_cpu_seconds(redis_client) - redis_cpu0
    count = Event.objects.count()
    batch_rates = [rows / took for part in parts for rows, took in part["batches"]]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), pg_size_pretty(pg_indexes_size(%s)) FROM pg_indexes WHERE tablename = %s",
            [Event._meta.db_table, Event._meta.db_table],
        )
        n_indexes, index_size = cursor.fetchone()
        cursor.execute(
            f"SELECT count(DISTINCT client_event_id) FROM {connection.ops.quote_name(Event._meta.db_table)}"
        )
        distinct_ids = cursor.fetchone()[0]
    backend_cpu = sum(part["backend_cpu"] for part in parts)
    return {
        "events": n,
        "rows": count,
        "distinct_ids": distinct_ids,
        "seconds": seconds,
        "rate": count / seconds,
        "flushers": flushers,
        "slowest_batch_rate": min(batch_rates),
        "median_batch_rate": statistics.median(batch_rates),
        "fill_seconds": fill_seconds,
        "indexes": f"{n_indexes} indexes, {index_size}",
        "python_cpu_us_per_row": 1e6 * sum(part["cpu"] for part in parts) / max(count, 1),
        "backend_cpu_us_per_row": 1e6 * backend_cpu / max(count, 1),
        "redis_cpu_us_per_row": 1e6 * redis_cpu / max(count, 1),
    }


def _redis_cpu_seconds(client: Any) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


# --- 3. beacon under gunicorn ------


def _load_worker(args: tuple[int, list[str], list[str], float, int, int]) -> dict[str, Any]:
    port, cookies, product_keys, deadline, threads, seed = args
    statuses: Counter[int] = Counter()
    accepted: list[str] = []
    sent_events = 0
    lock = threading.Lock()

    def run(thread_no: int) -> None:
        nonlocal sent_events
        rng = random.Random(seed * 100 + thread_no)
        mine = cookies[thread_no::threads]
        conn = HTTPConnection("127.0.0.1", port, timeout=30)
        previous: tuple[bytes, list[str]] | None = None
        i = 0
        while time.time() < deadline:
            if previous is not None and rng.random() < 0.01:
                body, ids = previous  # a client retry: the same batch, the same ids
            else:
                ids = [str(uuid.uuid4()) for _ in range(BATCH)]
                events = []
                for event_id in ids:
                    kind = rng.choice(("rec_click", "view", "wishlist", "rec_impression"))
                    event: dict[str, Any] = {"event_type": kind, "client_event_id": event_id}
                    if kind == "rec_impression":
                        event.update(
                            slot="similar", context={"keys": rng.sample(product_keys, 4), "seen": True}
                        )
                    else:
                        event["product_key"] = rng.choice(product_keys)
                        if kind == "rec_click":
                            event.update(slot="similar", token="s.sim.1.3.x")
                    events.append(event)
                body = json.dumps({"events": events}).encode()
            headers = {
                "Content-Type": "text/plain;charset=UTF-8",
                "User-Agent": UA,
                "Cookie": mine[i % len(mine)],
            }
            i += 1
            try:
                conn.request("POST", "/reco/events/", body, headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except OSError:
                conn.close()
                conn = HTTPConnection("127.0.0.1", port, timeout=30)
                status = 0
            with lock:
                statuses[status] += 1
                sent_events += BATCH
                if status == 202:
                    accepted.extend(ids)
            previous = (body, ids)
        conn.close()

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return {"statuses": dict(statuses), "accepted": accepted, "sent_events": sent_events}


def bench_beacon(
    seconds: float, workers: int, loaders: int, threads: int, worker_class: str, worker_threads: int
) -> dict[str, Any]:
    from django.conf import settings
    from django.db import connections
    from django.http import HttpResponse

    from demo_shop.catalogue.models import Product
    from shop_reco.models import Event
    from shop_reco.tracking import buffer
    from shop_reco.tracking.identity import Visitor, set_visitor_cookie

    Event.objects.all().delete()
    product_keys = [str(pk) for pk in Product.objects.values_list("pk", flat=True)]
    cookies = []
    name = settings.SHOP_RECO.get("VISITOR_COOKIE_NAME", "shop_reco_vid")
    for _ in range(4000):  # returning visitors, each with a signed cookie from an earlier page view
        response = HttpResponse()
        set_visitor_cookie(response, Visitor(uuid.uuid4().hex, tracking=True))
        cookies.append(f"{name}={response.cookies[name].value}")

    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.tracking.settings"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "bench.tracking.wsgi:application",
            "--workers",
            str(workers),
            "--worker-class",
            worker_class,
            "--threads",
            str(worker_threads),
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "--keep-alive",
            "30",
            "--preload",
        ],
        env=env,
    )
    stop = threading.Event()

    def flusher() -> None:  # what the Celery beat flush task does in production
        while not stop.wait(1.0):
            buffer.flush(wait=1.0)
        connections.close_all()

    try:
        wait_port(port)
        conn = HTTPConnection("127.0.0.1", port, timeout=120)  # warm up both workers
        for _ in range(8):
            conn.request("GET", "/reco/events/", headers={"User-Agent": UA})  # 405, stores nothing
            conn.getresponse().read()
        conn.close()
        connections.close_all()
        flush_thread = threading.Thread(target=flusher)
        flush_thread.start()
        start = time.time()
        deadline = start + seconds
        shares = [cookies[n::loaders] for n in range(loaders)]
        with multiprocessing.get_context("fork").Pool(loaders) as pool:
            parts = pool.map(
                _load_worker, [(port, shares[n], product_keys, deadline, threads, n) for n in range(loaders)]
            )
        elapsed = time.time() - start
        stop.set()
        flush_thread.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
    buffer.flush(wait=10.0)

    statuses: Counter[int] = Counter()
    accepted: list[str] = []
    for part in parts:
        statuses.update(part["statuses"])
        accepted.extend(part["accepted"])
    unique = set(accepted)
    stored_ids = set(Event.objects.values_list("client_event_id", flat=True))
    return {
        "seconds": elapsed,
        "requests": sum(statuses.values()),
        "statuses": dict(sorted(statuses.items())),
        "accepted_events": len(accepted),
        "unique_accepted": len(unique),
        "rate": len(accepted) / elapsed,
        "stored_rows": Event.objects.count(),
        "missing": len(unique - stored_ids),
        "unexpected": len(stored_ids - unique),
        "server_errors": sum(n for code, n in statuses.items() if code >= 500 or code == 0),
    }


# --- main ------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="Events to flush (default 1,000,000).")
    parser.add_argument("--flush-batch", type=int, default=20_000)
    parser.add_argument(
        "--flushers", type=int, default=2, help="Parallel flush processes, as Celery workers (default 2)."
    )
    parser.add_argument("--iterations", type=int, default=20_000, help="Middleware requests per variant.")
    parser.add_argument("--seconds", type=float, default=20.0, help="Beacon load duration.")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers.")
    parser.add_argument("--loaders", type=int, default=2, help="Load generator processes.")
    parser.add_argument("--threads", type=int, default=4, help="Threads per load generator.")
    parser.add_argument("--worker-class", default="gthread", help="gunicorn worker class (sync, gthread).")
    parser.add_argument("--worker-threads", type=int, default=4, help="Threads per gthread worker.")
    parser.add_argument(
        "--only", default="middleware,flush,beacon", help="Comma-separated parts to run (default: all three)."
    )
    args = parser.parse_args()
    parts = set(args.only.split(","))

    import psycopg

    redis_dir = tempfile.mkdtemp(prefix="shop_reco_bench_redis_")
    redis_port = free_port()
    subprocess.run(
        [
            "redis-server",
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "yes",
            "--dir",
            redis_dir,
        ],
        check=True,
        capture_output=True,
    )
    wait_port(redis_port)
    os.environ["BENCH_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
    os.environ["BENCH_DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.tracking.settings"
    os.environ["BENCH_FLUSH_WORKERS"] = str(args.flushers)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DB_NAME}")
    try:
        import django

        django.setup()
        from django.core.management import call_command

        from demo_shop.catalogue.models import Category, Product

        call_command("migrate", verbosity=0)
        category = Category.objects.create(name="Bench", slug="bench")
        Product.objects.bulk_create(
            [
                Product(sku=f"B{i}", name=f"Product {i}", category=category, price="4.95", stock=10)
                for i in range(1, N_PRODUCTS + 1)
            ]
        )
        print(
            f"PostgreSQL database {DB_NAME}, private redis-server on port {redis_port}, {os.cpu_count()} CPUs"
        )

        checks: list[tuple[str, bool, str]] = []
        if "middleware" in parts:
            print(
                f"\n[1/3] middleware overhead: {args.iterations} interleaved requests per variant "
                "(RequestFactory, full middleware stack, tiny product view)"
            )
            m = bench_middleware(args.iterations)
            for label in ("buffer", "direct"):
                for kind in ("page", "worker"):
                    on, off = f"{label}_on_{kind}", f"{label}_off_{kind}"
                    print(
                        f"  {label:6} {kind:6}: p50 {m[on + '_p50']:.3f} vs {m[off + '_p50']:.3f} ms, "
                        f"p99 {m[on + '_p99']:.3f} vs {m[off + '_p99']:.3f} ms "
                        f"-> added p50 {m[f'{label}_{kind}_p50_added']:.3f} ms, "
                        f"p99 {m[f'{label}_{kind}_p99_added']:.3f} ms (n={m[f'{label}_n']})"
                    )
                print(
                    f"  {label:6} writes, page p99 added per round of {m[f'{label}_round_n']}: "
                    + ", ".join(f"{v:.3f}" for v in m[f"{label}_page_p99_rounds"])
                    + " ms"
                )
                print(
                    f"  {label:6} CPU added per page (thread time, mean): "
                    f"{1000 * m[f'{label}_cpu_mean_added']:.1f} us"
                )
            checks.append(
                (
                    "middleware p99 added to the page <= 0.5 ms",
                    m["buffer_page_p99_added"] <= 0.5,
                    f"p99 +{m['buffer_page_p99_added']:.3f} ms, p50 +{m['buffer_page_p50_added']:.3f} ms "
                    f"(worker time with the write: p99 +{m['buffer_worker_p99_added']:.3f} ms, "
                    f"p50 +{m['buffer_worker_p50_added']:.3f} ms; CPU +{1000 * m['buffer_cpu_mean_added']:.0f} us "
                    f"per page; load average {os.getloadavg()[0]:.2f})",
                )
            )

        if "flush" in parts:
            print(
                f"\n[2/3] flush: {args.events:,} buffered events -> PostgreSQL (COPY, conflict fallback), "
                f"batches of {args.flush_batch:,}"
            )
            f = bench_flush(args.events, args.flush_batch, args.flushers)
            print(
                f"  filled Redis in {f['fill_seconds']:.1f} s; {f['flushers']} flushers stored {f['rows']:,} rows "
                f"({f['distinct_ids']:,} distinct ids) in {f['seconds']:.1f} s from start to last commit "
                f"= {f['rate']:,.0f} events/s (median batch {f['median_batch_rate']:,.0f}/s per flusher, "
                f"slowest {f['slowest_batch_rate']:,.0f}/s); {f['indexes']}"
            )
            print(
                f"  CPU per row: PostgreSQL backends {f['backend_cpu_us_per_row']:.1f} us, "
                f"flusher processes {f['python_cpu_us_per_row']:.1f} us, "
                f"redis-server {f['redis_cpu_us_per_row']:.1f} us; "
                f"load average {', '.join(f'{v:.2f}' for v in os.getloadavg())}"
            )
            checks.append(
                (
                    "flush >= 50,000 events/s sustained",
                    f["rate"] >= 50_000 and f["rows"] == args.events and f["distinct_ids"] == args.events,
                    f"{f['rate']:,.0f}/s for {f['rows']:,} rows, {f['flushers']} flushers",
                )
            )

        if "beacon" in parts:
            print(
                f"\n[3/3] beacon: gunicorn {args.workers} {args.worker_class} workers "
                f"({args.worker_threads} threads), {args.loaders}x{args.threads} "
                f"keep-alive clients, batches of {BATCH}, {args.seconds:.0f} s, ~1% retried batches"
            )
            b = bench_beacon(
                args.seconds, args.workers, args.loaders, args.threads, args.worker_class, args.worker_threads
            )
            print(
                f"  {b['requests']} requests {b['statuses']}; accepted {b['accepted_events']:,} events "
                f"({b['unique_accepted']:,} unique) = {b['rate']:,.0f} events/s; "
                f"stored rows {b['stored_rows']:,}, "
                f"missing {b['missing']}, unexpected {b['unexpected']}"
            )
            checks.append(
                (
                    "beacon >= 2,000 events/s, no 5xx, stored exactly once",
                    b["rate"] >= 2000
                    and b["server_errors"] == 0
                    and b["missing"] == 0
                    and b["unexpected"] == 0
                    and b["stored_rows"] == b["unique_accepted"],
                    f"{b['rate']:,.0f}/s, {b['server_errors']} 5xx/errors, missing {b['missing']}, "
                    f"duplicated {b['stored_rows'] - b['unique_accepted'] + b['unexpected']}",
                )
            )

        print("\nSummary")
        for label, ok, figure in checks:
            print(f"  {'PASS' if ok else 'FAIL'}  {label}: {figure}")
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        subprocess.run(["redis-cli", "-p", str(redis_port), "shutdown", "nosave"], capture_output=True)


if __name__ == "__main__":
    main()
