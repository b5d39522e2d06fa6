"""CSRF and authentication on every state-changing endpoint, shopper isolation per endpoint, throttling."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from shop_reco.models import Event, Experiment, ExperimentAssignment, ExperimentVariant
from shop_reco.services import experiments
from shop_reco.testing import publish_lists
from shop_reco.tracking import track
from tests.reliability.conftest import ALICE_VISITOR, BOB_VISITOR
from tests.tracking.fixtures import BROWSER

pytestmark = pytest.mark.django_db

# Every URL name of the demo shop, outside the admin, by what it does. A new URL must be classified here.
STATE_CHANGING = {
    "cart:add",
    "cart:update",
    "cart:remove",
    "orders:checkout",
    "accounts:login",
    "accounts:logout",
    "accounts:signup",
}
# CSRF-exempt by design (sendBeacon cannot send the header): it only ever writes the caller's own events.
CSRF_EXEMPT = {"shop_reco:beacon"}
READ_ONLY = {
    "catalogue:home",
    "catalogue:category",
    "catalogue:product",
    "catalogue:search",
    "cart:detail",
    "orders:done",
    "orders:history",
    "shop_reco:reco-similar",
    "shop_reco:reco-bought-together",
    "shop_reco:reco-cart",
    "shop_reco:reco-for-you",
    "shop_reco:reco-trending",
    "shop_reco:reco-recently-viewed",
    "shop_reco:reco-buy-again",
    "shop_reco:reco-schema",
}


def url_names(resolver: URLResolver | None = None, prefix: str = "") -> set[str]:
    names = set()
    for pattern in (resolver or get_resolver()).url_patterns:
        if isinstance(pattern, URLResolver):
            if pattern.app_name == "admin":
                continue  # Django's admin: every view staff-only, POSTs CSRF-checked (tested below)
            namespace = f"{prefix}{pattern.namespace}:" if pattern.namespace else prefix
            names |= url_names(pattern, namespace)
        elif isinstance(pattern, URLPattern) and pattern.name:
            names.add(prefix + pattern.name)
    return names


def test_every_url_of_the_shop_is_classified():
    assert url_names() == STATE_CHANGING | CSRF_EXEMPT | READ_ONLY


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", "alice@example.com", "pw-alice-123")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", "bob@example.com", "pw-bob-12345")


# --- CSRF and authentication ---


@pytest.mark.parametrize("name", sorted(STATE_CHANGING))
def test_state_changing_posts_without_a_csrf_token_are_refused(name, catalogue, alice):
    client = Client(enforce_csrf_checks=True, HTTP_USER_AGENT=BROWSER)
    if name == "accounts:logout":
        client.force_login(alice)
    data = {
        "product_id": catalogue["Kitchen 1"].pk,
        "quantity": 1,
        "email": "x@example.com",
        "username": "alice",
        "password": "pw-alice-123",
        "password1": "Long-enough-9",
        "password2": "Long-enough-9",
    }
    response = client.post(reverse(name), data)
    assert response.status_code == 403
    # ... and the same post with the token goes through (so the 403 was the CSRF check).
    client.get(reverse("accounts:signup"))  # a page with a form sets the CSRF cookie
    client.get("/")  # (signed in: the logout form in the header does)
    data["csrfmiddlewaretoken"] = client.cookies["csrftoken"].value
    assert client.post(reverse(name), data).status_code != 403


def test_the_admin_needs_staff_login_and_csrf(client, alice, catalogue):
    admin_urls = [
        reverse("admin:shop_reco_recoconfig_changelist"),
        reverse("admin:shop_reco_scoreversion_recompute"),
        reverse("admin:shop_reco_experiment_add"),
        reverse("admin:shop_reco_merchandisingrule_add"),
        reverse("admin:shop_reco_preview"),  # GET only: it shows any shopper's history
    ]

    def send(url: str):
        return client.get(url) if url.endswith("/preview/") else client.post(url, {})

    for url in admin_urls:
        response = send(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url
    client.force_login(alice)  # a shopper, not staff
    for url in admin_urls:
        response = send(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url
    staff = type(alice).objects.create_user("clerk", password="pw", is_staff=True)  # staff, no permissions
    client.force_login(staff)
    for url in admin_urls:
        assert send(url).status_code == 403, url
    superuser = type(alice).objects.create_superuser("root", password="pw")
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(superuser)
    for url in admin_urls[1:4]:
        assert csrf_client.post(url, {}).status_code == 403, url  # no token


def test_the_beacon_without_cookies_can_only_feed_a_fresh_anonymous_visitor(catalogue, alice, shopper_client):
    """What a cross-site POST (no SameSite=Lax cookies) amounts to: nothing lands on Alice or her browser."""
    stranger = Client(HTTP_USER_AGENT=BROWSER)
    event = {
        "event_type": "add_to_cart",
        "product_key": catalogue.key("Toys 1"),
        "user_id": alice.pk,
        "visitor_id": ALICE_VISITOR,
    }
    response = stranger.post(
        reverse("shop_reco:beacon"), {"events": [event]}, content_type="application/json"
    )
    assert response.status_code == 400  # a shopper in the payload is refused outright
    del event["user_id"], event["visitor_id"]
    response = stranger.post(
        reverse("shop_reco:beacon"), {"events": [event]}, content_type="application/json"
    )
    assert response.status_code == 202
    row = Event.objects.get(event_type="add_to_cart")
    assert row.user_id is None and row.visitor_id not in ("", ALICE_VISITOR)
    # A purchase cannot be forged from a browser at all.
    purchase = {"event_type": "purchase", "product_key": catalogue.key("Toys 1")}
    assert (
        stranger.post(
            reverse("shop_reco:beacon"), {"events": [purchase]}, content_type="application/json"
        ).status_code
        == 400
    )


# --- one shopper never reads another's data ---


@pytest.fixture
def histories(catalogue, alice):
    """Alice (logged in on ALICE_VISITOR) has a history, purchases, personal lists and an experiment variant."""
    for name in ("Garden 1", "Garden 2"):
        track("view", product=catalogue.key(name), visitor_id=ALICE_VISITOR, user=alice)
    track("purchase", product=catalogue.key("Garden 3"), user=alice, basket_ref="A1")
    track("view", product=catalogue.key("Toys 4"), visitor_id=BOB_VISITOR)
    publish_lists(
        {
            ("user", str(alice.pk), "for_you"): catalogue.keys("Garden 4", "Kitchen 4"),
            ("visitor", ALICE_VISITOR, "for_you"): catalogue.keys("Garden 4"),
            ("global", "", "popular"): catalogue.keys("Kitchen 1", "Kitchen 2", "Kitchen 3"),
        }
    )
    return {
        "private": set(catalogue.keys("Garden 1", "Garden 2", "Garden 3", "Garden 4")),
        "anchor": catalogue.key("Kitchen 1"),
    }


ENDPOINTS = [
    "reco-for-you",
    "reco-recently-viewed",
    "reco-buy-again",
    "reco-cart",
    "reco-trending",
    "reco-similar",
    "reco-bought-together",
]


def endpoint_url(name: str, anchor: str) -> str:
    if name in ("reco-similar", "reco-bought-together"):
        return reverse(f"shop_reco:{name}", args=[anchor])
    return reverse(f"shop_reco:{name}")


def shown(response) -> list[tuple[str, str, str]]:
    assert response.status_code == 200
    return [(item["key"], item["source"], item["reason"]) for item in response.json()["items"]]


@pytest.mark.parametrize("name", ENDPOINTS)
def test_no_endpoint_shows_alice_s_history_to_bob(name, histories, alice, bob, shopper_client):
    """Bob (without a history of his own) sees exactly what a stranger sees: nothing of Alice's."""
    url = endpoint_url(name, histories["anchor"])
    shopper_client(ALICE_VISITOR, alice).get(url, {"limit": 20})
    stranger = shown(Client(HTTP_USER_AGENT=BROWSER).get(url, {"limit": 20}))
    fresh = "c" * 32
    for other in (shopper_client(fresh), shopper_client(fresh, bob)):
        items = shown(other.get(url, {"limit": 20}))
        assert items == stranger, name
        assert not [reason for _, _, reason in items if "Garden" in reason], name  # no "Because you viewed"
        if name in ("reco-recently-viewed", "reco-buy-again"):  # others may show any product as a fallback
            assert not {key for key, _, _ in items} & histories["private"], name
        # Naming Alice is refused, whichever id is used.
        for params in ({"user": alice.pk}, {"visitor": ALICE_VISITOR}, {"user": alice.username}):
            assert other.get(url, params).status_code == 403, (name, params)


@pytest.mark.parametrize("name", ENDPOINTS)
def test_staff_need_the_preview_permission_to_read_a_shopper(name, histories, alice, django_user_model):
    url = endpoint_url(name, histories["anchor"])
    staff = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get(url, {"user": alice.pk}).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="preview_recommendations"))
    client.force_login(django_user_model.objects.get(pk=staff.pk))
    assert client.get(url, {"user": alice.pk}).status_code == 200


def test_pages_never_show_alice_s_recommendations_or_orders_to_bob(
    histories, alice, bob, shopper_client, catalogue
):
    from demo_shop.orders.models import Order

    order = Order.objects.create(user=alice, email="alice@example.com", number="A-0001")
    for client in (shopper_client(BOB_VISITOR), shopper_client(BOB_VISITOR, bob)):
        home = client.get("/")
        assert home.status_code == 200
        body = home.content.decode()
        assert ("Garden 1" not in body and "Garden 2" not in body) or "viewed Garden" not in body
        assert "viewed Garden" not in body and "bought Garden" not in body
        assert client.get(reverse("orders:done", args=[order.number])).status_code == 404
        history = client.get(reverse("orders:history"))
        assert history.status_code in (200, 302)
        assert order.number not in history.content.decode()


def test_experiment_assignments_are_never_exposed_to_another_shopper(histories, alice, bob, shopper_client):
    experiment = Experiment.objects.create(key="blend", name="Blend")
    ExperimentVariant.objects.create(experiment=experiment, key="control", is_control=True)
    ExperimentVariant.objects.create(experiment=experiment, key="test", overlay={"NEIGHBOURS": 10})
    experiments.start(experiment)
    mine = experiments.variant_for(visitor_id=ALICE_VISITOR, user=alice)
    assert ExperimentAssignment.objects.filter(user=alice).exists()
    for client in (shopper_client(BOB_VISITOR), shopper_client(BOB_VISITOR, bob)):
        for name in ENDPOINTS:
            body = client.get(endpoint_url(name, histories["anchor"])).content.decode()
            assert "blend" not in body and "variant" not in body
        # The admin's preview (which shows a shopper's variant) is staff-only.
        response = client.get(reverse("admin:shop_reco_preview"), {"user": alice.pk})
        assert response.status_code == 302 and mine.key not in response.content.decode()


# --- throttling ---


def test_the_beacon_is_throttled_per_visitor_and_dropping_the_cookie_does_not_help(catalogue, settings):
    settings.SHOP_RECO = {**settings.SHOP_RECO, "BEACON_THROTTLE_RATE": "5/min"}
    client = Client(HTTP_USER_AGENT=BROWSER)
    client.get("/")
    batch = {"events": [{"event_type": "search", "client_event_id": str(uuid.uuid4())}]}
    statuses = [
        client.post(reverse("shop_reco:beacon"), batch, content_type="application/json").status_code
        for _ in range(7)
    ]
    assert statuses[:5] == [202] * 5 and statuses[5:] == [429, 429]
    # Another visitor has their own allowance ...
    other = Client(HTTP_USER_AGENT=BROWSER)
    other.get("/")
    assert other.post(reverse("shop_reco:beacon"), batch, content_type="application/json").status_code == 202
    # ... but cookie-less requests from one address share one.
    fresh = [
        Client(HTTP_USER_AGENT=BROWSER).post(
            reverse("shop_reco:beacon"), batch, content_type="application/json"
        )
        for _ in range(7)
    ]
    assert 429 in [response.status_code for response in fresh]
    assert "Retry-After" in fresh[-1]
