"""The beacon endpoint: batches from beacon.js, validated whole, stored all-or-nothing, throttled."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import redis
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

import shop_reco
from shop_reco.models import Event
from shop_reco.services.tracking import flush_events
from tests.tracking.fixtures import BROWSER

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tracking_state")]


@pytest.fixture
def beacon(browser):
    browser.get("/")  # the page that loads beacon.js sets the visitor cookie

    def post(payload, content_type="application/json", **extra):
        body = payload if isinstance(payload, str | bytes) else json.dumps(payload)
        return browser.post(reverse("shop_reco:beacon"), body, content_type=content_type, **extra)

    return post


def click(product, **fields):
    return {
        "event_type": "rec_click",
        "product_key": str(product.pk),
        "slot": "similar",
        "token": "s.sim.1.1.x",
        "client_event_id": str(uuid.uuid4()),
        **fields,
    }


def test_a_batch_is_stored_for_the_cookie_visitor(beacon, browser, products):
    impression = {
        "event_type": "rec_impression",
        "slot": "similar",
        "context": {"keys": [str(p.pk) for p in products], "seen": True},
    }
    response = beacon({"events": [click(products[0]), impression]})
    assert response.status_code == 202
    assert response.json() == {"accepted": 2}
    events = list(Event.objects.order_by("pk"))
    assert [e.event_type for e in events] == ["rec_click", "rec_impression"]
    visitor = browser.get("/").wsgi_request.shop_reco_visitor.id
    assert {e.visitor_id for e in events} == {visitor}
    assert events[0].token == "s.sim.1.1.x" and events[0].slot == "similar" and events[0].user is None


def test_sendbeacon_text_plain_bodies_and_the_session_user(beacon, browser, products, customer):
    browser.force_login(customer)
    assert (
        beacon({"events": [click(products[1])]}, content_type="text/plain;charset=UTF-8").status_code == 202
    )
    assert Event.objects.get().user == customer


def test_csrf_is_not_required_but_the_shopper_cannot_be_named(products, customer):
    client = Client(enforce_csrf_checks=True, HTTP_USER_AGENT=BROWSER)
    client.force_login(customer)
    url = reverse("shop_reco:beacon")
    assert (
        client.post(url, {"events": [click(products[0])]}, content_type="application/json").status_code == 202
    )
    spoof = click(products[0], user_id=999, visitor_id="f" * 32)
    response = client.post(url, {"events": [spoof]}, content_type="application/json")
    assert response.status_code == 400
    assert set(response.json()["events"]["0"]) == {"user_id", "visitor_id"}
    assert Event.objects.count() == 1


def test_form_posts_are_refused(beacon, products):
    response = beacon("events=1", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ('{"events": [', {"body"}),
        ("[]", {"body"}),
        ("{}", {"events"}),
        ('{"events": {"event_type": "view"}}', {"events"}),
        ('{"events": []}', {"events"}),
    ],
)
def test_malformed_bodies_get_a_400_naming_the_field(beacon, body, errors):
    response = beacon(body)
    assert response.status_code == 400
    assert set(response.json()) == errors
    assert not Event.objects.exists()


def test_unknown_event_type_names_the_event_and_stores_nothing(beacon, products):
    response = beacon(
        {
            "events": [
                click(products[0]),
                click(products[1]),
                click(products[2]),
                {"event_type": "foo", "product_key": str(products[0].pk)},
            ]
        }
    )
    assert response.status_code == 400
    assert response.json() == {"events": {"3": {"event_type": ["Unknown event type 'foo'."]}}}
    assert not Event.objects.exists()


def test_unknown_product_is_checked_in_one_query_per_batch(beacon, products):
    batch = [click(products[i % 3]) for i in range(10)] + [click(products[0], product_key="424242")]
    with CaptureQueriesContext(connection) as queries:
        response = beacon({"events": batch})
    assert response.status_code == 400
    assert response.json() == {"events": {"10": {"product_key": ["Unknown product '424242'."]}}}
    product_queries = [q for q in queries if "catalogue_product" in q["sql"]]
    assert len(product_queries) == 1
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"quantity": "many"}, "quantity"),
        ({"quantity": True}, "quantity"),
        ({"unit_price": "cheap"}, "unit_price"),
        ({"slot": ["similar"]}, "slot"),
        ({"token": "t" * 65}, "token"),
        ({"context": ["a", "list"]}, "context"),
        ({"context": {"huge": "x" * 4000}}, "context"),
        ({"client_event_id": "order:W1:1"}, "client_event_id"),
        ({"event_type": 7}, "event_type"),
        ({"event_type": "purchase"}, "event_type"),
        ({"product_key": ""}, "product_key"),
    ],
)
def test_wrong_types_get_a_400_naming_the_field(beacon, products, fields, field):
    response = beacon({"events": [click(products[0]), click(products[1], **fields)]})
    assert response.status_code == 400
    assert field in response.json()["events"]["1"]
    assert not Event.objects.exists()


def test_an_event_that_is_not_an_object(beacon, products):
    response = beacon({"events": [click(products[0]), "rec_click"]})
    assert response.status_code == 400
    assert "1" in response.json()["events"]


def test_oversize_batches(beacon, products, reco):
    reco(BEACON_MAX_EVENTS=3)
    response = beacon({"events": [click(products[0]) for _ in range(4)]})
    assert response.status_code == 400
    assert "At most 3 events" in response.json()["events"][0]
    reco(BEACON_MAX_BYTES=200)
    response = beacon({"events": [click(products[0]) for _ in range(3)]})
    assert response.status_code == 413
    assert "body" in response.json()
    assert not Event.objects.exists()


def test_retried_batches_are_stored_once(beacon, products):
    batch = {"events": [click(products[0]), click(products[1])]}
    assert beacon(batch).status_code == 202
    assert beacon(batch).status_code == 202
    assert Event.objects.count() == 2


def test_do_not_track_and_bots_are_ignored_quietly(beacon, browser, products):
    assert beacon({"events": [click(products[0])]}, HTTP_DNT="1").status_code == 204
    assert beacon({"events": [click(products[0])]}, HTTP_USER_AGENT="AhrefsBot/7.0").status_code == 204
    assert not Event.objects.exists()


def test_throttled_per_visitor(beacon, products, reco):
    reco(BEACON_THROTTLE_RATE="2/min")
    assert beacon({"events": [click(products[0])]}).status_code == 202
    assert beacon({"events": [click(products[0])]}).status_code == 202
    assert beacon({"events": [click(products[0])]}).status_code == 429
    other = Client(HTTP_USER_AGENT=BROWSER)
    other.get("/")
    response = other.post(
        reverse("shop_reco:beacon"), {"events": [click(products[0])]}, content_type="application/json"
    )
    assert response.status_code == 202


def test_buffered_batches_are_appended_whole(beacon, buffered, products):
    assert beacon({"events": [click(products[0]) for _ in range(5)]}).status_code == 202
    assert redis.Redis.from_url(buffered).llen("test:events") == 5
    assert Event.objects.count() == 0
    flush_events()
    assert Event.objects.count() == 5


def test_database_and_buffer_down_is_a_503_not_a_500(beacon, products, reco):
    from django.db import OperationalError

    def refuse(execute, sql, params, many, context):
        if "shop_reco_event" in sql:
            raise OperationalError("connection refused")
        return execute(sql, params, many, context)

    reco(EVENT_BUFFER_URL="redis://127.0.0.1:1/0")
    with connection.execute_wrapper(refuse):
        response = beacon({"events": [click(products[0])]})
    assert response.status_code == 503


def test_the_beacon_script_is_shipped():
    script = Path(shop_reco.__file__).parent / "static" / "shop_reco" / "beacon.js"
    text = script.read_text()
    for needle in (
        "sendBeacon",
        "keepalive",
        "data-reco-token",
        "IntersectionObserver",
        "client_event_id",
        "rec_click",
        "rec_impression",
    ):
        assert needle in text


@pytest.mark.parametrize(
    "event",
    [
        {"event_type": "rec_click", "product_key": "7", "slot": "similar", "token": "s.sim.1.1.x"},
        {"event_type": " view ", "product_key": " 7 ", "quantity": 3},
        {"event_type": "rec_impression", "slot": "similar", "context": {"keys": ["1", "2"], "seen": True}},
        {
            "event_type": "wishlist",
            "product_key": "7",
            "client_event_id": "0F8FAD5B-D9CB-469F-A165-70867728950E",
        },
        {"event_type": "add_to_cart", "product_key": "7", "unit_price": None, "basket_ref": "b1"},
    ],
)
def test_the_plain_validation_path_gives_the_serializers_row(event):
    from shop_reco.api.serializers import BeaconEventSerializer, _plain_row

    context = {"visitor_id": "a" * 32, "user_id": None}
    plain = _plain_row(event, context["visitor_id"], None)
    serializer = BeaconEventSerializer(data=event, context=context)
    assert plain is not None and serializer.is_valid()
    expected = dict(serializer.validated_data)
    if "client_event_id" not in event:
        plain["client_event_id"] = expected["client_event_id"]  # both new random ids
    plain.pop("occurred_at"), expected.pop("occurred_at")
    assert plain == expected


@pytest.mark.parametrize(
    "event",
    [
        "view",
        {"event_type": "view", "product_key": 7},  # CharField coerces numbers: the serializer's job
        {"event_type": "view", "product_key": "7", "unit_price": "4.95"},
        {"event_type": "view", "product_key": "7", "quantity": 1.0},
        {"event_type": "view", "product_key": "prodüct"},
        {"event_type": "view", "product_key": "7", "user_id": 1},
        {"event_type": "purchase", "product_key": "7"},
        {"event_type": "view"},
        {"event_type": "view", "product_key": "7", "client_event_id": "order:W1:1"},
    ],
)
def test_the_plain_path_leaves_anything_unusual_to_the_serializer(event):
    from shop_reco.api.serializers import _plain_row

    assert _plain_row(event, "a" * 32, None) is None
