"""The Redis buffer: batching, crash-safe flushes, de-duplication, the size trigger and every fallback."""

from __future__ import annotations

import logging
from unittest import mock

import pytest
import redis
from django.db import OperationalError, connection

from shop_reco.models import Event
from shop_reco.queueing import FLUSH_EVENTS
from shop_reco.services.tracking import flush_events, merge_visitor
from shop_reco.tracking import buffer, record, store, track
from shop_reco.tracking.events import from_copy_line, make_row, to_copy_line

pytestmark = pytest.mark.django_db
KEY = "test:events"


def rows(n: int, **fields) -> list[dict]:
    return [make_row("view", product_key=str(i % 7), visitor_id=f"v{i % 5}", **fields) for i in range(n)]


def test_events_wait_in_redis_until_flushed(buffered):
    client = redis.Redis.from_url(buffered)
    for i in range(30):
        track("view", product=str(i), visitor_id="v")
    assert Event.objects.count() == 0
    assert client.llen(KEY) == 30
    result = flush_events(batch_size=8)
    assert (result.delivered, result.stored, result.batches) == (30, 30, 4)
    assert Event.objects.count() == 30
    assert buffer.pending_count() == 0
    assert flush_events().delivered == 0


def test_a_batch_is_buffered_whole(buffered):
    assert record(rows(20))
    assert redis.Redis.from_url(buffered).llen(KEY) == 20


def test_a_flush_killed_before_commit_is_delivered_again(buffered):
    record(rows(10))
    with (
        mock.patch.object(store, "write_copy_batch", side_effect=OperationalError("db down")),
        pytest.raises(OperationalError),
    ):
        flush_events()
    client = redis.Redis.from_url(buffered)
    assert client.llen(KEY) == 0 and buffer.pending_count() == 10  # parked in the flush slot, not lost
    assert not client.exists(f"{KEY}:lock")
    assert flush_events().stored == 10
    assert Event.objects.count() == 10


def test_a_flush_killed_after_commit_stores_the_redelivery_once(buffered):
    record(rows(10))
    client = redis.Redis.from_url(buffered)
    items = client.lrange(KEY, 0, -1)
    assert flush_events().stored == 10
    # As if the flusher died between the commit and deleting its processing list.
    client.rpush(f"{KEY}:processing", *items)
    result = flush_events()
    assert (result.delivered, result.stored) == (10, 0)
    assert Event.objects.count() == 10


def test_duplicated_client_events_are_stored_once(buffered):
    batch = rows(5)
    record(batch)
    record(batch)  # a client retry with the same ids
    assert flush_events().stored == 5
    assert Event.objects.count() == 5


def test_copy_path_on_postgresql_dedupes_and_drops_erased_users(postgres, customer):
    batch = rows(300)
    batch[0]["user_id"] = customer.pk
    lines = [to_copy_line(row).encode() for row in batch]
    assert store.write_copy_lines(lines[:100]) == 100  # the fast path: one COPY
    assert store.write_copy_lines(lines) == 200  # a re-delivery: only the new ones
    more = rows(50)
    more[0]["user_id"] = customer.pk + 1000  # erased while buffered
    assert store.write_copy_lines([to_copy_line(row).encode() for row in more]) == 49
    assert Event.objects.filter(user=customer).count() == 1
    assert Event.objects.count() == 349


AWKWARD_CONTEXT = {
    "query": 'caf\u00e9 \u2603 "quoted" back\\slash',
    "lines": "one\ttab\nnew line\r",
    "keys": ["1", "2"],
    "nested": {"ratio": 0.25, "ok": True, "none": None},
}


def test_a_context_reaches_postgresql_as_it_was_tracked_through_copy(postgres):
    row = make_row("search", visitor_id="v", context=AWKWARD_CONTEXT, basket_ref="tab\there")
    # A context taken back out of a row and tracked again is not confused with the one validated first.
    again = make_row("search", visitor_id="w", context={**row["context"], "page": 2})
    assert store.write_copy_lines([to_copy_line(r).encode() for r in (row, again)]) == 2
    stored = {event.visitor_id: event for event in Event.objects.all()}
    assert stored["v"].context == AWKWARD_CONTEXT
    assert stored["v"].basket_ref == "tab\there"
    assert stored["w"].context == {**AWKWARD_CONTEXT, "page": 2}


def test_the_slow_path_reads_back_the_same_row():
    row = make_row("search", visitor_id="v", context=AWKWARD_CONTEXT, basket_ref="a\\b\nc")
    back = from_copy_line(to_copy_line(row).encode())
    assert back == row
    assert back["context"] == AWKWARD_CONTEXT


def test_event_ids_are_indexed_byte_by_byte_on_postgresql(postgres):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name, collation_name FROM information_schema.columns "
            "WHERE table_name = %s AND column_name IN ('visitor_id', 'client_event_id')",
            [Event._meta.db_table],
        )
        assert dict(cursor.fetchall()) == {"visitor_id": "C", "client_event_id": "C"}
        cursor.execute("SET LOCAL enable_seqscan = off")  # the test table is tiny
    # Lookups by visitor (a plain text parameter, the database's collation) still use the index.
    plan = Event.objects.filter(visitor_id="v" * 32).order_by("-occurred_at").explain()
    assert "shop_reco_event_visitor_time" in plan


def test_the_size_threshold_queues_one_flush_per_window(buffered, reco):
    reco(EVENT_BUFFER_URL=buffered, EVENT_BUFFER_KEY=KEY, EVENT_BUFFER_FLUSH_SIZE=5)
    with (
        mock.patch.object(buffer, "celery_queues_tasks", return_value=True),
        mock.patch.object(buffer, "queue_task") as queue_task,
    ):
        for i in range(20):
            track("view", product=str(i), visitor_id="v")
    queue_task.assert_called_once_with(FLUSH_EVENTS)
    assert Event.objects.count() == 0  # nothing flushed inside the "request"


def test_eager_celery_never_flushes_inside_the_request(buffered, reco):
    reco(EVENT_BUFFER_URL=buffered, EVENT_BUFFER_KEY=KEY, EVENT_BUFFER_FLUSH_SIZE=1)
    with mock.patch.object(buffer, "queue_task") as queue_task:
        track("view", product="1", visitor_id="v")
    queue_task.assert_not_called()


def test_unreachable_buffer_writes_directly_and_skips_redis_for_a_while(reco, caplog):
    reco(EVENT_BUFFER_URL="redis://127.0.0.1:1/0")  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="shop_reco.tracking"):
        track("view", product="1", visitor_id="v")
    assert Event.objects.count() == 1
    assert "unreachable" in caplog.text
    with mock.patch.object(buffer, "get_client") as get_client:
        track("view", product="2", visitor_id="v")
    get_client.assert_not_called()  # the breaker is open
    assert Event.objects.count() == 2


def test_buffered_anonymous_events_follow_a_login(buffered, customer):
    track("view", product="1", visitor_id="d" * 32)
    track("view", product="2", visitor_id="e" * 32)
    merge_visitor("d" * 32, customer)
    flush_events()
    assert list(Event.objects.filter(user=customer).values_list("product_key", flat=True)) == ["1"]
    assert Event.objects.get(product_key="2").user is None


def test_a_batch_the_database_refuses_is_parked(buffered, caplog):
    client = redis.Redis.from_url(buffered)
    bad = make_row("view", product_key="1")
    bad["quantity"] = "lots"  # cannot happen through make_row; a corrupted buffer entry
    client.rpush(KEY, to_copy_line(bad))
    with caplog.at_level(logging.ERROR, logger="shop_reco.tracking"):
        result = flush_events()
    assert result.dead_lettered == 1
    assert client.llen(f"{KEY}:dead") == 1
    assert "refused" in caplog.text
    assert buffer.requeue_dead_letters() == 1
    assert client.llen(KEY) == 1


def test_redis_stopped_during_ingestion_loses_no_accepted_event(private_redis, reco):
    """A private redis-server (AOF on) is shut down mid-ingestion and started again."""
    reco(EVENT_BUFFER_URL=private_redis.url, EVENT_BUFFER_KEY=KEY)
    accepted = []
    for i in range(40):
        accepted.append(track("view", product=str(i), visitor_id="v"))
    private_redis.stop()
    for i in range(40, 80):  # Redis gone: straight to the database
        accepted.append(track("view", product=str(i), visitor_id="v"))
    assert Event.objects.count() == 40
    private_redis.start()
    buffer.reset_breaker()
    for i in range(80, 120):
        accepted.append(track("view", product=str(i), visitor_id="v"))
    flush_events()
    assert None not in accepted
    stored = list(Event.objects.values_list("client_event_id", flat=True))
    assert sorted(stored) == sorted(accepted)


def test_a_buffer_write_that_times_out_goes_to_the_database_and_is_stored_once(private_redis, reco):
    """CLIENT PAUSE makes the append time out, so the event is written directly. Had Redis applied the
    append after all (a lost reply), the flush would meet the same client_event_id and store nothing."""
    reco(EVENT_BUFFER_URL=private_redis.url, EVENT_BUFFER_KEY=KEY)
    admin = redis.Redis.from_url(private_redis.url)
    with mock.patch.object(buffer, "SOCKET_TIMEOUT", 0.2):
        buffer._clients.pop(private_redis.url, None)
        admin.execute_command("CLIENT", "PAUSE", 1000, "WRITE")
        event_id = track("view", product="1", visitor_id="v")
        admin.execute_command("CLIENT", "UNPAUSE")
    assert Event.objects.filter(client_event_id=event_id).count() == 1
    buffer._clients.pop(private_redis.url, None)
    buffer.reset_breaker()
    admin.rpush(
        KEY, to_copy_line(make_row("view", product_key="1", visitor_id="v", client_event_id=event_id))
    )
    assert flush_events().stored == 0
    assert Event.objects.filter(client_event_id=event_id).count() == 1
