"""The recompute on real Celery worker processes against Redis and PostgreSQL (no eager mode)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from celery import Celery
from django.db import connection

from shop_reco.models import RecommendationList, ScoreVersion

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.celery_worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    # Celery's Redis result consumer leaves pub/sub sockets to the garbage collector; not ours to fix.
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]
Status = ScoreVersion.Status


class Worker:
    def __init__(self, broker: str, concurrency: int = 1, shard_delay: float = 0) -> None:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings_worker",
            "SHOP_RECO_WORKER_DB": connection.settings_dict["NAME"],
            "SHOP_RECO_WORKER_BROKER": broker,
            "SHOP_RECO_TEST_SHARD_DELAY": str(shard_delay),
        }
        self.log = open(ROOT / "tests" / f".worker-{os.getpid()}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "demo_shop", "worker", "--concurrency", str(concurrency),
             "--pool", "prefork", "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes, as a crashed machine would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()


@pytest.fixture
def start_worker(redis_url: str, postgres: None) -> Iterator[Callable[..., Worker]]:
    workers: list[Worker] = []

    def start(**options: float) -> Worker:
        worker = Worker(redis_url, **options)  # type: ignore[arg-type]
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def client_app(redis_url: str) -> Iterator[Celery]:
    app = Celery("test-client", broker=redis_url, backend=redis_url, set_as_current=False)
    yield app
    # Celery's Redis result backend keeps pub/sub sockets open until told otherwise.
    backend = app.backend
    consumer = getattr(backend, "result_consumer", None)
    if consumer is not None and getattr(consumer, "_pubsub", None) is not None:
        consumer._pubsub.close()
    backend.client.connection_pool.disconnect()
    app.close()


def wait_for(condition: Callable[[], object], timeout: float = 90, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def published_after(previous: int | None) -> ScoreVersion | None:
    return ScoreVersion.objects.filter(status=Status.PUBLISHED, pk__gt=previous or 0).order_by("-pk").first()


def test_worker_publishes_a_version(shop, start_worker, client_app):
    start_worker(concurrency=2)
    result = client_app.send_task("shop_reco.tasks.recompute", kwargs={"shards": 3})
    version_id = result.get(timeout=60)
    version = wait_for(lambda: published_after(version_id - 1), what="a published version")
    assert version.pk == version_id
    assert RecommendationList.objects.filter(version=version, source="for_you").exists()
    assert version.progress_percent == 100


def test_two_concurrent_triggers_give_one_run(shop, start_worker, client_app):
    start_worker(concurrency=2, shard_delay=0.5)
    first = client_app.send_task("shop_reco.tasks.recompute", kwargs={"shards": 2})
    second = client_app.send_task("shop_reco.tasks.recompute", kwargs={"shards": 2})
    ids = [first.get(timeout=60), second.get(timeout=60)]
    assert sorted(ids, key=lambda v: v is None)[1] is None  # exactly one got the lock
    winner = next(v for v in ids if v is not None)
    wait_for(lambda: published_after(winner - 1), what="the winning run to publish")
    assert ScoreVersion.objects.count() == 1


def test_killed_worker_leaves_old_version_serving_and_work_completes(shop, start_worker, client_app):
    worker = start_worker()
    old = client_app.send_task("shop_reco.tasks.recompute").get(timeout=60)
    wait_for(lambda: published_after(old - 1), what="the first version")
    worker.stop()

    slow = start_worker(shard_delay=3)
    new = client_app.send_task("shop_reco.tasks.recompute", kwargs={"shards": 4}).get(timeout=60)
    wait_for(lambda: ScoreVersion.objects.get(pk=new).steps_done >= 2, what="the run to be mid-way")
    slow.kill()
    assert ScoreVersion.objects.get(status=Status.PUBLISHED).pk == old  # readers still see the old version

    start_worker()  # the killed shard comes back from the queue after the visibility timeout
    finished = wait_for(lambda: published_after(old), timeout=120, what="the interrupted run to finish")
    assert finished.pk == new
    again = client_app.send_task("shop_reco.tasks.recompute").get(timeout=60)
    assert wait_for(lambda: published_after(new), what="the next run").pk == again


def test_retried_shard_does_not_duplicate_rows(shop, start_worker, client_app):
    from shop_reco.services import recompute, versions

    version = versions.start_version("full", recompute.parameters())
    plan = recompute.prepare(version.pk, shards=2)
    start, stop = plan["item_blocks"][0]
    start_worker()
    shard = "shop_reco.tasks.recompute_item_shard"
    first = client_app.send_task(shard, args=[version.pk, start, stop]).get(timeout=60)
    rows_once = RecommendationList.objects.filter(version=version, kind="product").count()
    # The same shard delivered again (a lost ack, a retry): same lists, no duplicates.
    second = client_app.send_task(shard, args=[version.pk, start, stop]).get(timeout=60)
    assert first == second > 0
    assert RecommendationList.objects.filter(version=version, kind="product").count() == rows_once
