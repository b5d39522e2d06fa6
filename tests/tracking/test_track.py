"""shop_reco.track(): the one function every way in goes through."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import OperationalError, connection
from django.test import RequestFactory

import shop_reco
from shop_reco.models import Event
from shop_reco.tracking import InvalidEvent, track
from shop_reco.tracking.identity import Visitor

pytestmark = pytest.mark.django_db


def test_track_stores_every_field(products, customer):
    when = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
    event_id = shop_reco.track(
        "add_to_cart",
        product=products[0],
        visitor_id="a" * 32,
        user=customer,
        quantity=2,
        unit_price=4.5,
        basket_ref="b1",
        context={"source": "list"},
        occurred_at=when,
    )
    event = Event.objects.get()
    assert event.client_event_id == event_id
    assert (event.event_type, event.product_key, event.visitor_id, event.user) == (
        "add_to_cart",
        str(products[0].pk),
        "a" * 32,
        customer,
    )
    assert (event.quantity, event.unit_price, event.basket_ref) == (2, Decimal("4.50"), "b1")
    assert event.context == {"source": "list"}
    assert event.occurred_at == when


def test_track_takes_visitor_and_user_from_the_request(customer):
    request = RequestFactory().get("/")
    request.user = customer
    request.shop_reco_visitor = Visitor("b" * 32, tracking=True)
    track("search", request=request, context={"query": "mug", "results": 3})
    event = Event.objects.get()
    assert (event.visitor_id, event.user_id, event.context) == (
        "b" * 32,
        customer.pk,
        {"query": "mug", "results": 3},
    )


def test_an_opted_out_request_records_nothing():
    request = RequestFactory().get("/", HTTP_DNT="1")
    assert track("view", request=request, product="1") is None
    assert not Event.objects.exists()


def test_the_same_client_event_id_is_stored_once():
    for _ in range(3):
        track("view", product="1", visitor_id="v", client_event_id="retry-1")
    assert Event.objects.count() == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"event_type": "viewed"}, "event_type"),
        ({"event_type": "view", "quantity": "2"}, "quantity"),
        ({"event_type": "view", "unit_price": "cheap"}, "unit_price"),
        ({"event_type": "view", "product": "x" * 65}, "product_key"),
        ({"event_type": "view", "context": ["not", "a", "dict"]}, "context"),
        ({"event_type": "view", "context": {"blob": "x" * 5000}}, "context"),
        ({"event_type": "view", "context": {"bad": "\x00"}}, "context"),
    ],
)
def test_invalid_arguments_name_the_field(kwargs, field):
    with pytest.raises(InvalidEvent) as info:
        track(**kwargs)
    assert field in info.value.errors
    assert not Event.objects.exists()


def test_custom_event_types_from_settings(reco):
    with pytest.raises(InvalidEvent):
        track("compare", product="1")
    reco(CUSTOM_EVENT_TYPES=("compare",))
    track("compare", product="1")
    assert Event.objects.get().event_type == "compare"


def test_a_database_failure_is_logged_not_raised(caplog):
    def refuse(execute, sql, params, many, context):
        if "shop_reco_event" in sql:
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with caplog.at_level(logging.ERROR, logger="shop_reco.tracking"), connection.execute_wrapper(refuse):
        assert track("view", product="1", visitor_id="v") is None
    assert "could not store 1 event" in caplog.text
    assert not Event.objects.exists()


def test_a_checked_context_is_reused_as_validated_and_cannot_change():
    import copy
    import pickle

    from shop_reco.tracking.events import checked_context, make_row, to_copy_line

    context = checked_context({"keys": ["1", "2"], "version": 3})
    first, second = make_row("rec_impression", context=context), make_row("rec_impression", context=context)
    assert first["client_event_id"] != second["client_event_id"]
    assert to_copy_line(first).split("\t")[10] == '{"keys":["1","2"],"version":3}'
    for change in (
        lambda: context.__setitem__("keys", []),
        lambda: context.update(keys=[]),
        lambda: context.pop("keys"),
        lambda: context.clear(),
        lambda: context.setdefault("extra", 1),
    ):
        with pytest.raises(TypeError):
            change()
    assert context == {"keys": ["1", "2"], "version": 3}
    for copied in (pickle.loads(pickle.dumps(context)), copy.deepcopy(context), copy.copy(context)):
        assert type(copied) is dict and copied == context  # a copy is a plain dict, free to change
    with pytest.raises(InvalidEvent) as raised:
        checked_context({"when": datetime.now(UTC)})
    assert "context" in raised.value.errors


def test_event_ids_are_unique_across_forked_workers():
    import multiprocessing
    import re

    from shop_reco.tracking.events import new_event_id

    def ids_of_a_worker(queue):
        queue.put([new_event_id() for _ in range(1000)])

    context = multiprocessing.get_context("fork")
    queue = context.SimpleQueue()
    workers = [context.Process(target=ids_of_a_worker, args=(queue,)) for _ in range(3)]
    for worker in workers:
        worker.start()
    batches = [queue.get() for _ in workers]
    for worker in workers:
        worker.join(10)
    mine = [new_event_id() for _ in range(1000)]
    every = [event_id for batch in [*batches, mine] for event_id in batch]
    assert all(re.fullmatch(r"[0-9a-f]{32}", event_id) for event_id in every)
    assert len(set(every)) == len(every) == 4000  # a forked worker does not repeat its parent's sequence
