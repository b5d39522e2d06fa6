"""Hostile input: generated beacon payloads, oversize and deeply nested bodies, unicode and SQL-like strings.

Whatever a browser sends, the beacon answers 202, 204 or a 4xx naming the problem, never a 5xx, and stores
exactly the events it accepted, byte for byte.
"""

from __future__ import annotations

import json
import uuid

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shop_reco.models import Event
from tests.tracking.fixtures import BROWSER

pytestmark = [pytest.mark.django_db]

HOSTILE_STRINGS = [
    "'; DROP TABLE shop_reco_event; --",
    "1 OR 1=1",
    '" OR ""="',
    "\\'; SELECT pg_sleep(5); --",
    "%00\x00nul",
    "<script>alert(1)</script>",
    "\uff33\uff48\uff4f\uff50 ☃ 🛒 Ω ß ǅ \u202e\u200b",  # fullwidth, emoji, bidi override, zero width
    "\ud800",  # a lone surrogate: not encodable as UTF-8
    "\\N",  # COPY's NULL marker
    "a\tb\nc\\d",  # COPY's delimiters and escapes
]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
EVENT_TYPES = st.sampled_from(
    [
        "view",
        "add_to_cart",
        "remove_from_cart",
        "purchase",
        "search",
        "wishlist",
        "rec_click",
        "rec_impression",
    ]
) | st.text(max_size=40)
PRODUCT_KEYS = st.sampled_from(["PRODUCT", "", "0", "-1", "99999999999999999999"]) | st.text(max_size=70)


def event_strategy():
    fields = {
        "event_type": EVENT_TYPES | JSON_VALUES,
        "product_key": PRODUCT_KEYS | JSON_VALUES,
        "quantity": st.integers(min_value=-(10**6), max_value=10**6) | JSON_VALUES,
        "unit_price": st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str) | JSON_VALUES,
        "slot": st.text(max_size=70) | st.sampled_from(HOSTILE_STRINGS),
        "token": st.text(max_size=70) | st.sampled_from(HOSTILE_STRINGS),
        "basket_ref": st.text(max_size=70),
        "client_event_id": st.uuids().map(str) | JSON_VALUES,
        "context": JSON_VALUES,
        # Fields a browser must never set.
        "user_id": st.integers(),
        "visitor_id": st.text(max_size=40),
        "occurred_at": st.text(max_size=30),
    }
    return st.fixed_dictionaries({}, optional=fields)


@pytest.fixture
def beacon(catalogue, settings):
    settings.SHOP_RECO = {**settings.SHOP_RECO, "BEACON_THROTTLE_RATE": None}
    client = Client(HTTP_USER_AGENT=BROWSER)
    client.get("/")  # the visitor cookie
    product_key = catalogue.key("Kitchen 1")

    def post(payload, content_type="application/json"):
        if isinstance(payload, bytes | str):
            body = payload
        else:
            body = json.dumps(payload).replace('"PRODUCT"', json.dumps(product_key))
        return client.post(reverse("shop_reco:beacon"), body, content_type=content_type)

    return post


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(event_strategy(), max_size=6))
def test_generated_batches_are_accepted_whole_or_refused_with_reasons(beacon, events):
    before = Event.objects.count()
    response = beacon({"events": events})
    assert response.status_code in (202, 400), response.content
    stored = Event.objects.count() - before
    if response.status_code == 202:
        assert stored == response.json()["accepted"] == len(events)
        for row in Event.objects.order_by("-pk")[: len(events)]:
            assert row.user_id is None  # never from the payload
    else:
        assert stored == 0  # all or nothing
        assert response.json()  # names the problem


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300) | JSON_VALUES.map(json.dumps))
def test_any_body_is_a_4xx_or_accepted(beacon, body):
    response = beacon(body)
    assert response.status_code in (202, 400, 413, 415), response.content


@pytest.mark.parametrize("text", HOSTILE_STRINGS)
def test_unicode_and_sql_like_strings_are_stored_verbatim_or_refused(beacon, text):
    event = {
        "event_type": "search",
        "slot": text[:64],
        "token": text[:64],
        "context": {"query": text, text: [text]},
        "client_event_id": str(uuid.uuid4()),
    }
    response = beacon({"events": [event]})
    if response.status_code == 400:  # NUL and lone surrogates cannot be stored; named, not a 500
        assert "\ud800" in text or "\x00" in text
        return
    assert response.status_code == 202, response.content
    row = Event.objects.get(client_event_id=event["client_event_id"])
    assert (row.slot, row.token, row.context) == (event["slot"], event["token"], event["context"])
    assert Event.objects.filter(event_type="search").count() == 1  # and the "DROP TABLE" did nothing


@pytest.mark.parametrize("text", ["\x00", "a\x00b", "\ud800", "\\u0000"])
def test_unstorable_characters_inside_the_context_are_a_400_not_a_500(beacon, text):
    response = beacon({"events": [{"event_type": "search", "context": {"q": text, text: 1}}]})
    assert response.status_code in (202, 400), response.content


def test_oversize_bodies_are_413(beacon, settings):
    limit = settings.SHOP_RECO.get("BEACON_MAX_BYTES", 64 * 1024)
    big = {"events": [{"event_type": "search", "context": {"q": "x" * 1000}}] * (limit // 1000 + 5)}
    assert beacon(big).status_code == 413
    assert beacon(b"{" + b" " * (limit + 10) + b"}").status_code == 413
    assert not Event.objects.filter(event_type="search").exists()


def test_deeply_nested_payloads_are_stored_or_refused_not_crashing(beacon):
    for depth in (50, 500, 5000):
        nested = "[" * depth + "]" * depth
        response = beacon('{"events": [{"event_type": "search", "context": {"a": ' + nested + "}}]}")
        assert response.status_code in (202, 400, 413), (depth, response.status_code)
    # Deeper than Python's JSON parser recurses, within the byte limit: a 400, not a RecursionError.
    response = beacon('{"events": ' + "[" * 30000 + "]" * 30000 + "}")
    assert response.status_code == 400, response.content
    # And past the byte limit.
    assert beacon('{"events": ' + "[" * 60000 + "]" * 60000 + "}").status_code == 413


def test_too_many_events_and_wrong_content_types(beacon):
    assert beacon({"events": [{"event_type": "search"}] * 51}).status_code == 400
    assert beacon("events=1", content_type="application/x-www-form-urlencoded").status_code == 415
    assert beacon("{}", content_type="multipart/form-data; boundary=x").status_code == 415


def test_a_cache_outage_lets_batches_through_unthrottled(beacon, settings, monkeypatch, caplog):
    from django.core.cache import cache

    settings.SHOP_RECO = {**settings.SHOP_RECO, "BEACON_THROTTLE_RATE": "100/min"}

    def down(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "get", down)
    response = beacon({"events": [{"event_type": "search", "client_event_id": str(uuid.uuid4())}]})
    assert response.status_code == 202
    assert "not throttling" in caplog.text


def test_a_database_outage_is_a_503_the_browser_can_resend(beacon, monkeypatch):
    from django.db import OperationalError

    from shop_reco.api import views

    def down(*args, **kwargs):
        raise OperationalError("the database system is starting up")

    monkeypatch.setattr(views, "get_visitor", down)  # any query of the view failing
    response = beacon({"events": [{"event_type": "rec_click", "product_key": "PRODUCT", "slot": "similar"}]})
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
