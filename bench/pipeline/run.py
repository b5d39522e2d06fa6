"""Recompute pipeline benchmark (issue 5): real Celery workers against Redis and PostgreSQL.

    python -m bench.pipeline.run [--quick] [--skip-synthetic]

1. The shipped Online Retail demo (loader subset + imported orders) in database ``shop_reco_bench_pipeline``:
   one worker (``--concurrency 1``), trigger ``shop_reco.tasks.recompute``, time to the published version.
   Target: under 30 s.
2. Incremental, same database, worker running: a customer's order (the ``order_placed`` signal, as the
   checkout sends it) until that customer's for-you list read through ``GET /reco/api/for-you/`` has changed.
   Target: under 5 s.
3. A synthetic shop (``bench.pipeline.synth``; 1M users x 100k products x 20M events, or 20k x 2k x 200k with
   ``--quick``) in ``shop_reco_bench_pipeline_synth``: a full recompute with one worker process, then with
   two, on the same data. Peak RSS is the sum over each worker's process tree, sampled every 0.5 s.
   Targets: peak RSS under 24 GiB; two processes >= 1.6x faster than one.

Every database it creates it drops at the end; every worker it starts it kills; every wait has a timeout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SERVER = "postgres://postgres@127.0.0.1:5432"
DEMO_DB = "shop_reco_bench_pipeline"
SYNTH_DB = "shop_reco_bench_pipeline_synth"
REDIS = os.environ.get("SHOP_RECO_BENCH_REDIS", "redis://127.0.0.1:6379/9")
GIB = 1024**3


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def env_for(database: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "demo_shop.settings",
        "DATABASE_URL": f"{SERVER}/{database}",
        "REDIS_URL": REDIS,
        "CELERY_BROKER_URL": REDIS,
        "CELERY_RESULT_BACKEND": REDIS,
        "DJANGO_DEBUG": "0",
    }


def recreate_database(name: str) -> None:
    import psycopg

    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def manage(database: str, *args: str, timeout: float = 900) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env_for(database), check=True, timeout=timeout,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def flush_redis() -> None:
    import redis

    client = redis.Redis.from_url(REDIS)
    client.flushdb()
    client.close()


# -- workers -------------------------------------------------------------------------------------------


class Worker:
    """``celery -A demo_shop worker`` in its own process group, with an RSS sampler over its process tree."""

    def __init__(self, database: str, concurrency: int) -> None:
        self.log_path = Path(f"/tmp/shop_reco_bench_worker_{os.getpid()}_{concurrency}.log")
        self.log_file = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "demo_shop", "worker", "--concurrency", str(concurrency),
             "--pool", "prefork", "--without-gossip", "--without-mingle", "--prefetch-multiplier", "1",
             "--loglevel", os.environ.get("SHOP_RECO_BENCH_WORKER_LOGLEVEL", "WARNING")],
            cwd=ROOT, env=env_for(database), stdout=self.log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.peak_rss = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _tree_rss(self) -> int:
        pids = [self.process.pid]
        total = 0
        seen: set[int] = set()
        while pids:
            pid = pids.pop()
            if pid in seen:
                continue
            seen.add(pid)
            try:
                with open(f"/proc/{pid}/status") as status:
                    for line in status:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1]) * 1024
                with open(f"/proc/{pid}/task/{pid}/children") as children:
                    pids.extend(int(child) for child in children.read().split())
            except (FileNotFoundError, ProcessLookupError, ValueError):
                continue
        return total

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, self._tree_rss())
            self._stop.wait(0.5)

    def reset_peak(self) -> None:
        self.peak_rss = self._tree_rss()

    def wait_ready(self, app: Any, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited: see {self.log_path}")
            if app.control.ping(timeout=1.0):
                return
        raise TimeoutError(f"worker not ready after {timeout} s: see {self.log_path}")

    def stop(self) -> None:
        self._stop.set()
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(20)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.log_file.close()


def celery_client() -> Any:
    from celery import Celery

    return Celery("bench-client", broker=REDIS, backend=REDIS, set_as_current=False)


def timed_recompute(app: Any, database: str, worker: Worker, timeout: float) -> dict[str, Any]:
    """Trigger a recompute and wait for its version to publish; wall seconds from the trigger."""
    import psycopg

    worker.reset_peak()
    load_before = os.getloadavg()
    started = time.perf_counter()
    version_id = app.send_task("shop_reco.tasks.recompute").get(timeout=timeout)
    if version_id is None:
        raise RuntimeError("a recompute was already running")
    deadline = time.monotonic() + timeout
    with psycopg.connect(f"{SERVER}/{database}", autocommit=True) as connection:
        while True:
            status, timings, counts, error = connection.execute(
                "SELECT status, timings, input_counts, error FROM shop_reco_scoreversion WHERE id = %s",
                [version_id],
            ).fetchone()
            if status == "published":
                break
            if status == "failed":
                raise RuntimeError(f"version {version_id} failed: {error}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"version {version_id} not published after {timeout} s")
            time.sleep(0.2)
    return {
        "seconds": time.perf_counter() - started,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "peak_rss": worker.peak_rss,
        "timings": timings,
        "counts": counts,
        "version": version_id,
    }


# -- incremental ---------------------------------------------------------------------------------------


def measure_incremental(position: int = 0, timeout: float = 30) -> dict[str, Any]:
    """A customer places an order; seconds until their for-you response (API) reflects the refreshed list.

    ``position`` picks the customer (by id among those with a for-you list), so repeated runs use new ones.
    """
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.test import Client

    from shop_reco import signals
    from shop_reco.models import RecommendationList
    from shop_reco.services import versions

    live = versions.live_version()
    stored = (
        RecommendationList.objects.filter(version=live, kind="user", source="for_you")
        .exclude(item_keys=[])
        .order_by("subject")[position]
    )
    user = get_user_model().objects.get(pk=stored.subject)
    client = Client()
    client.force_login(user)

    def api_keys() -> list[str]:
        response = client.get("/reco/api/for-you/", {"limit": 10})
        items = response.json()["items"]
        return [str(item.get("key") or item.get("product_key") or item.get("id")) for item in items]

    before = api_keys()
    bought = stored.item_keys[0]
    started = time.perf_counter()
    with transaction.atomic():
        signals.order_placed.send(
            sender=None, request=None, order_ref=f"bench-{int(time.time() * 1000)}", lines=[(bought, 1, None)],
            user=user,
        )  # fmt: skip
    deadline = time.monotonic() + timeout
    list_at = api_at = None
    while time.monotonic() < deadline and (list_at is None or api_at is None):
        now = time.perf_counter() - started
        if list_at is None:
            fresh = RecommendationList.objects.get(pk=stored.pk)
            if fresh.item_keys != stored.item_keys and bought not in fresh.item_keys:
                list_at = now
        if list_at is not None and api_at is None:
            after = api_keys()
            if after != before and bought not in after:
                api_at = time.perf_counter() - started
        time.sleep(0.05)
    return {"list_s": list_at, "api_s": api_at, "user": user.pk, "bought": bought}


# -- the runs ------------------------------------------------------------------------------------------


def run_demo(results: list[tuple[str, str, str, bool | None]], figures: dict[str, Any]) -> None:
    log(f"demo: creating {DEMO_DB}, loading the Online Retail subset and importing its orders")
    recreate_database(DEMO_DB)
    flush_redis()
    manage(DEMO_DB, "migrate", "-v0")
    manage(DEMO_DB, "load_demo_data")
    manage(DEMO_DB, "reco_import_events", "--orders", "demo_shop.orders.history.order_lines")
    app = celery_client()
    worker = Worker(DEMO_DB, concurrency=1)
    try:
        worker.wait_ready(app)
        log("demo: recompute with one worker")
        demo = timed_recompute(app, DEMO_DB, worker, timeout=300)
        figures["demo"] = demo
        seconds = demo["seconds"]
        counts = demo["counts"]
        results.append(
            (
                "1. demo full recompute, 1 worker",
                f"{seconds:.1f} s ({counts.get('events')} events, {counts.get('products')} products, "
                f"{counts.get('active_shoppers')} shoppers); peak RSS {demo['peak_rss'] / 2**20:.0f} MiB",
                "< 30 s",
                seconds < 30,
            )
        )
        log("demo: incremental update after an order")
        os.environ.update(env_for(DEMO_DB))
        # The first order of this process pays its cold start (imports, broker and cache connections); a
        # storefront that serves orders is warm, so the target is read on the next three orders.
        cold = measure_incremental(0)
        warm = [measure_incremental(n) for n in (1, 2, 3)]
        figures["incremental"] = {"cold": cold, "warm": warm}
        seen = [run["api_s"] for run in warm if run["api_s"] is not None]
        worst = max(seen) if len(seen) == len(warm) else None
        cold_text = f"{cold['api_s']:.2f} s" if cold["api_s"] is not None else "not seen in 30 s"
        figure = "not seen in 30 s"
        if worst is not None:
            stored = max(run["list_s"] for run in warm)
            figure = f"{worst:.2f} s (stored list {stored:.2f} s); first order of the process {cold_text}"
        results.append(
            ("3. order -> for-you API updated (worst of 3)", figure, "< 5 s", worst is not None and worst < 5)
        )
    finally:
        worker.stop()
        app.close()


def run_synthetic(
    quick: bool, results: list[tuple[str, str, str, bool | None]], figures: dict[str, Any]
) -> None:
    from bench.pipeline import synth

    size = dict(users=20_000, products=2_000, events=200_000) if quick else dict(
        users=1_000_000, products=100_000, events=20_000_000
    )  # fmt: skip
    label = f"{size['users']:,} users x {size['products']:,} products x {size['events']:,} events"
    log(f"synthetic: creating {SYNTH_DB} and generating {label}")
    recreate_database(SYNTH_DB)
    flush_redis()
    manage(SYNTH_DB, "migrate", "-v0")
    started = time.perf_counter()
    generated = synth.generate(f"{SERVER}/{SYNTH_DB}", **size)
    generated["total_s"] = time.perf_counter() - started
    figures["synthetic_data"] = generated
    log(f"synthetic: data ready in {generated['total_s']:.0f} s: {json.dumps(generated)}")
    timeout = 600 if quick else 3 * 3600
    runs: dict[int, dict[str, Any]] = {}
    for processes in (1, 2):
        app = celery_client()
        worker = Worker(SYNTH_DB, concurrency=processes)
        try:
            worker.wait_ready(app)
            log(f"synthetic: recompute with {processes} worker process(es)")
            runs[processes] = timed_recompute(app, SYNTH_DB, worker, timeout=timeout)
            steps = stage_summary(runs[processes]) or {}
            log(f"synthetic: {processes} process(es): {runs[processes]['seconds']:.1f} s, serial steps "
                f"{steps.get('serial_s')} s of {steps.get('serial_s', 0) + steps.get('parallel_s', 0):.1f} s")  # fmt: skip
        finally:
            worker.stop()
            app.close()
    figures["synthetic"] = runs
    one, two = runs[1], runs[2]
    peak = max(one["peak_rss"], two["peak_rss"])
    speedup = one["seconds"] / two["seconds"]
    results.append(
        (
            f"2a. synthetic full recompute ({label}), 1 process",
            f"{one['seconds']:.1f} s; peak RSS {one['peak_rss'] / GIB:.2f} GiB",
            "",
            None,
        )
    )
    results.append(
        (
            "2b. same data, 2 processes",
            f"{two['seconds']:.1f} s; peak RSS {two['peak_rss'] / GIB:.2f} GiB",
            "",
            None,
        )
    )
    results.append(("2c. synthetic peak worker RSS", f"{peak / GIB:.2f} GiB", "< 24 GiB", peak < 24 * GIB))
    results.append(("2d. speed-up 2 processes vs 1", f"{speedup:.2f}x", ">= 1.6x", speedup >= 1.6))
    steps = stage_summary(one)
    if steps:
        results.append(
            (
                "2e. serial share of the 1-process run (Amdahl)",
                f"{steps['serial_fraction']:.1%} serial ({steps['serial_s']:.1f} of "
                f"{steps['serial_s'] + steps['parallel_s']:.1f} s of steps) -> at best "
                f"{steps['expected_speedup_2']:.2f}x with 2 idle cores; measured {speedup:.2f}x "
                f"(serial share of CPU {steps['serial_fraction_cpu']:.1%})",
                "",
                None,
            )
        )


def stage_summary(run: dict[str, Any]) -> dict[str, Any] | None:
    from shop_reco.services.stage_timing import summary

    stages = (run.get("timings") or {}).get("stages")
    return summary(stages) if stages else None


def print_stages(label: str, run: dict[str, Any], one_process: bool = True) -> None:
    """Per step: count, summed wall, worker CPU and database-backend CPU seconds, and the load averages."""
    steps = stage_summary(run)
    before = ", ".join(f"{x:.2f}" for x in run["load_before"])
    after = ", ".join(f"{x:.2f}" for x in run["load_after"])
    print(f"\n{label}: {run['seconds']:.1f} s wall; load average {before} before, {after} after")
    if steps is None:
        print("  (no step timings recorded)")
        return
    from shop_reco.services.stage_timing import SERIAL_STEPS

    print(f"  {'step':<10} {'kind':<8} {'n':>3} {'wall s':>9} {'worker CPU s':>13} {'db CPU s':>9}")
    order = ["plan", "load", "content", "combine", "item", "assemble", "shopper", "finalize"]
    for name in sorted(steps["steps"], key=lambda n: order.index(n) if n in order else len(order)):
        v = steps["steps"][name]
        kind = "serial" if name in SERIAL_STEPS else "parallel"
        print(f"  {name:<10} {kind:<8} {int(v['count']):>3} {v['wall_s']:>9.1f} {v['cpu_s']:>13.1f} "
              f"{v['db_cpu_s']:>9.1f}")  # fmt: skip
    print(f"  serial {steps['serial_s']:.1f} s, parallel {steps['parallel_s']:.1f} s (summed over processes), "
          f"serial fraction {steps['serial_fraction']:.1%}, Amdahl bound for 2 processes "
          f"{steps['expected_speedup_2']:.2f}x")  # fmt: skip
    if one_process:
        unaccounted = run["seconds"] - steps["serial_s"] - steps["parallel_s"]
        print(f"  outside the steps (queue, chord callbacks, the bench's polling): {unaccounted:.1f} s")
    print(f"  CPU: {steps['total_cpu_s']:.1f} s (worker + database backend), serial "
          f"{steps['serial_cpu_s']:.1f} s = {steps['serial_fraction_cpu']:.1%}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description="Recompute pipeline benchmark (issue 5).")
    parser.add_argument("--quick", action="store_true", help="CI scale: a small synthetic shop.")
    parser.add_argument(
        "--skip-synthetic", action="store_true", help="Only the demo and the incremental update."
    )
    parser.add_argument("--keep", action="store_true", help="Keep the benchmark databases afterwards.")
    args = parser.parse_args()
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    os.environ.update(env_for(DEMO_DB))
    results: list[tuple[str, str, str, bool | None]] = []
    figures: dict[str, Any] = {}
    failed: list[str] = []
    try:
        try:
            run_demo(results, figures)
        except Exception as exc:  # report and go on to the synthetic shop
            failed.append(f"demo: {exc!r}")
            log(f"demo failed: {exc!r}")
        if not args.skip_synthetic:
            try:
                run_synthetic(args.quick, results, figures)
            except Exception as exc:
                failed.append(f"synthetic: {exc!r}")
                log(f"synthetic failed: {exc!r}")
    finally:
        if not args.keep:
            for name in (DEMO_DB, SYNTH_DB):
                try:
                    drop_database(name)
                except Exception as exc:  # pragma: no cover - best effort
                    log(f"could not drop {name}: {exc!r}")
        flush_redis()

    print()
    print(
        f"Recompute pipeline benchmark ({'quick' if args.quick else 'full'}), {time.strftime('%Y-%m-%d %H:%M')}"
    )
    width = max([len(r[0]) for r in results] + [10])
    print(f"{'measure':<{width}}  {'figure':<70}  {'target':<9}  result")
    for name, figure, target, ok in results:
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        print(f"{name:<{width}}  {figure:<70}  {target:<9}  {verdict}")
    for problem in failed:
        print(f"ERROR {problem}")
    if "synthetic" in figures:
        for processes, run in figures["synthetic"].items():
            print_stages(f"synthetic, {processes} worker process(es)", run, one_process=processes == 1)
    if "demo" in figures:
        print_stages("demo, 1 worker process", figures["demo"])
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
