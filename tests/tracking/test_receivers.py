"""The shop's signals become events."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.test import RequestFactory

from shop_reco import signals
from shop_reco.models import Event
from shop_reco.tracking.identity import Visitor

pytestmark = pytest.mark.django_db


@pytest.fixture
def request_(customer):
    request = RequestFactory().get("/")
    request.user = customer
    request.shop_reco_visitor = Visitor("c" * 32, tracking=True)
    return request


def test_cart_changed_adds_and_removes(request_, products):
    signals.cart_changed.send(
        sender=None, request=request_, product=products[0], quantity=2, basket_ref="cart-1"
    )
    signals.cart_changed.send(sender=None, request=request_, product=str(products[0].pk), quantity=-1)
    signals.cart_changed.send(sender=None, request=request_, product=products[0], quantity=0)
    events = list(
        Event.objects.order_by("pk").values_list("event_type", "quantity", "basket_ref", "product_key")
    )
    key = str(products[0].pk)
    assert events == [("add_to_cart", 2, "cart-1", key), ("remove_from_cart", 1, "", key)]


def test_order_placed_is_one_purchase_per_product_and_idempotent(request_, products, customer):
    when = datetime(2025, 1, 2, 10, tzinfo=UTC)
    lines = [
        (products[0], 1, Decimal("4.50")),
        (products[1], 3, Decimal("2.00")),
        (products[0], 1, Decimal("4.50")),
    ]
    for _ in range(2):  # a retried checkout signal
        signals.order_placed.send(
            sender=None, request=request_, order_ref="W17", lines=lines, user=customer, placed_at=when
        )
    events = {e.product_key: e for e in Event.objects.filter(event_type="purchase")}
    assert set(events) == {str(products[0].pk), str(products[1].pk)}
    first = events[str(products[0].pk)]
    assert (first.quantity, first.unit_price, first.basket_ref, first.user) == (
        2,
        Decimal("4.50"),
        "W17",
        customer,
    )
    assert first.client_event_id == f"order:W17:{products[0].pk}"
    assert first.occurred_at == when


def test_order_without_request_is_tracked_for_the_user(products, customer):
    signals.order_placed.send(
        sender=None, request=None, order_ref="9", lines=[(products[2], 1, 1)], user=customer
    )
    assert Event.objects.get().user == customer


def test_searched_records_query_and_result_count(request_):
    signals.searched.send(sender=None, request=request_, query="blue mug", results=12)
    event = Event.objects.get()
    assert (event.event_type, event.context) == ("search", {"query": "blue mug", "results": 12})


def test_product_viewed_records_a_view(request_, products):
    signals.product_viewed.send(sender=None, request=request_, product=products[1])
    assert Event.objects.get().product_key == str(products[1].pk)


def test_signals_respect_do_not_track(products):
    request = RequestFactory().get("/", HTTP_DNT="1")
    signals.cart_changed.send(sender=None, request=request, product=products[0], quantity=1)
    signals.searched.send(sender=None, request=request, query="mug")
    assert not Event.objects.exists()


def test_a_bad_signal_argument_is_logged_not_raised(request_, caplog):
    with caplog.at_level(logging.ERROR, logger="shop_reco.tracking"):
        signals.cart_changed.send(sender=None, request=request_, product="x" * 100, quantity=1)
    assert "could not record cart_changed" in caplog.text
