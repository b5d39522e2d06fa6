"""Several flushers at once: each takes its own slot and its own batches, and every event is stored once."""

from __future__ import annotations

import threading
from unittest import mock

import pytest
import redis
from django.db import connection, connections

from shop_reco.models import Event
from shop_reco.services.tracking import queue_parallel_flushes
from shop_reco.tracking import buffer, record, store
from shop_reco.tracking.events import make_row, to_copy_line

KEY = "test:events"


def rows(n: int, start: int = 0) -> list[dict]:
    return [make_row("view", product_key=str(i % 7), visitor_id=f"v{i % 5}") for i in range(start, start + n)]


@pytest.mark.django_db
def test_a_second_flush_takes_the_next_slot_and_the_batches_the_first_has_not(buffered):
    record(rows(100))
    write = store.write_copy_batch
    inner: list[buffer.FlushResult] = []
    started = threading.Event()

    def write_while_another_flush_runs(batch, merges=None):
        if not started.is_set():
            started.set()
            inner.append(buffer.flush(batch_size=10))  # slot 0 is held: this one runs in slot 1
        return write(batch, merges)

    with mock.patch.object(store, "write_copy_batch", side_effect=write_while_another_flush_runs):
        outer = buffer.flush(batch_size=10, max_batches=1)
    assert (outer.delivered, inner[0].delivered) == (10, 90)
    assert Event.objects.count() == 100
    assert buffer.pending_count() == 0


@pytest.mark.django_db
def test_every_slot_busy_reports_busy(buffered, reco):
    reco(EVENT_FLUSH_WORKERS=2)
    client = redis.Redis.from_url(buffered)
    client.set(f"{KEY}:lock", "someone")
    client.set(f"{KEY}:lock:1", "someone else")
    record(rows(5))
    assert buffer.flush().busy
    assert Event.objects.count() == 0


@pytest.mark.django_db
def test_a_batch_a_dead_flusher_left_in_its_slot_is_delivered_once(buffered):
    batch = rows(10)
    record(batch[:4])
    client = redis.Redis.from_url(buffered)
    # As if the flusher of slot 1 died after taking these six rows (committed or not).
    client.set(f"{KEY}:processing:1", b"\n".join(to_copy_line(row).encode() for row in batch[4:]))
    assert buffer.pending_count() == 10
    assert buffer.flush(slot=1).delivered == 10
    assert Event.objects.count() == 10
    client.set(f"{KEY}:processing:1", b"\n".join(to_copy_line(row).encode() for row in batch[4:]))
    assert (buffer.flush(slot=1).stored, Event.objects.count()) == (0, 10)  # the re-delivery


@pytest.mark.django_db
def test_a_slot_beyond_a_lowered_worker_count_is_not_stranded(buffered, reco):
    reco(EVENT_FLUSH_WORKERS=1)
    client = redis.Redis.from_url(buffered)
    client.set(f"{KEY}:processing:3", to_copy_line(rows(1)[0]))
    record(rows(2, start=1))
    assert buffer.flush().delivered == 3
    assert Event.objects.count() == 3
    assert buffer.pending_count() == 0


@pytest.mark.django_db
def test_flush_all_writes_every_slot(buffered):
    client = redis.Redis.from_url(buffered)
    client.set(f"{KEY}:processing:1", to_copy_line(rows(1)[0]))
    record(rows(3, start=1))
    assert buffer.flush_all(wait=1.0).delivered == 4
    assert Event.objects.count() == 4


@pytest.mark.django_db(transaction=True)
def test_concurrent_flushers_store_each_event_once_even_when_retries_land_in_both(postgres, buffered, reco):
    reco(EVENT_FLUSH_WORKERS=3)
    batch = rows(1500)
    for start in range(0, 1500, 50):
        record(batch[start : start + 50])
        if start % 150 == 0:
            record(batch[start : start + 50])  # a client retry: the same ids again, later in the buffer
    errors: list[BaseException] = []

    def flusher() -> None:
        try:
            buffer.flush(batch_size=100)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=flusher) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    connections.close_all()
    assert not errors
    assert buffer.pending_count() == 0
    ids = list(Event.objects.values_list("client_event_id", flat=True))
    assert len(ids) == len(set(ids)) == 1500
    assert set(ids) == {row["client_event_id"] for row in batch}


@pytest.mark.django_db
def test_a_flush_task_queues_its_siblings_only_for_a_large_buffer(buffered, reco):
    reco(EVENT_FLUSH_WORKERS=3)
    task = mock.Mock()
    with mock.patch.object(buffer, "celery_queues_tasks", return_value=True):
        record(rows(5))
        assert queue_parallel_flushes(task) == 0
        with mock.patch.object(buffer, "FLUSH_BATCH", 2):
            assert queue_parallel_flushes(task) == 2
    assert task.delay.call_args_list == [mock.call(fan_out=False)] * 2
