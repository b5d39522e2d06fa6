"""Privacy: export and erase reach everything kept about a shopper; retention; nothing identifying stored."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection, models
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from shop_reco.models import Event, Experiment, ExperimentAssignment, ExperimentVariant, RecommendationList
from shop_reco.services import experiments
from shop_reco.services.privacy import erase_shopper, export_shopper
from shop_reco.testing import publish_lists
from shop_reco.tracking import track
from tests.reliability.conftest import ALICE_VISITOR, BOB_VISITOR

pytestmark = pytest.mark.django_db(transaction=True)

AGENT = "Mozilla/5.0 PrivacyProbe/31337 (X11; Linux x86_64) Firefox/128.0"
ADDRESS = "203.0.113.77"
FORWARDED = "198.51.100.23"


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", "alice@example.com", "pw-alice-123")


@pytest.fixture
def alice_data(catalogue, alice):
    """Events as a visitor and as a user, personal lists of both kinds, an experiment assignment; and Bob's."""
    track("view", product=catalogue.key("Garden 1"), visitor_id=ALICE_VISITOR)
    track("view", product=catalogue.key("Garden 2"), visitor_id=ALICE_VISITOR, user=alice)
    track("purchase", product=catalogue.key("Garden 3"), user=alice, basket_ref="A1")
    track("view", product=catalogue.key("Toys 1"), visitor_id=BOB_VISITOR)
    version = publish_lists(
        {
            ("user", str(alice.pk), "for_you"): catalogue.keys("Garden 4"),
            ("visitor", ALICE_VISITOR, "for_you"): catalogue.keys("Garden 4"),
            ("visitor", BOB_VISITOR, "for_you"): catalogue.keys("Toys 2"),
            ("product", catalogue.key("Garden 1"), "similar"): catalogue.keys("Garden 2"),
        }
    )
    experiment = Experiment.objects.create(key="blend", name="Blend")
    ExperimentVariant.objects.create(experiment=experiment, key="control", is_control=True)
    ExperimentVariant.objects.create(experiment=experiment, key="test")
    experiments.start(experiment)
    experiments.variant_for(visitor_id=ALICE_VISITOR, user=alice)
    experiments.variant_for(visitor_id=BOB_VISITOR)
    return version


def test_export_returns_events_lists_and_assignments(alice_data, alice):
    rows = list(export_shopper(user_id=alice.pk))
    kinds = [row["record"] for row in rows]
    assert kinds.count("event") == 3
    assert {(row["kind"], row["subject"]) for row in rows if row["record"] == "recommendation_list"} == {
        ("user", str(alice.pk)),
        ("visitor", ALICE_VISITOR),
    }
    (assignment,) = [row for row in rows if row["record"] == "experiment_assignment"]
    assert assignment["experiment"] == "blend" and assignment["user_id"] == alice.pk
    json.dumps(rows)
    assert BOB_VISITOR not in json.dumps(rows)
    out = StringIO()
    call_command("reco_export_shopper", "--user", str(alice.pk), stdout=out, stderr=StringIO())
    assert len(out.getvalue().splitlines()) == len(rows)


def test_erase_removes_everything_of_the_shopper_and_nothing_else(alice_data, alice, shopper_client):
    # Alice's personal list is cached by a request before the erasure.
    assert shopper_client(ALICE_VISITOR, alice).get(reverse("shop_reco:reco-for-you")).json()["items"]
    mine = (
        Event.objects.filter(user=alice).count()
        + Event.objects.filter(visitor_id=ALICE_VISITOR, user=None).count()
    )
    assert mine >= 3  # hers, and the impression the request just recorded
    result = erase_shopper(user_id=alice.pk)
    assert (result.events, result.lists, result.assignments) == (mine, 2, 1)
    assert not Event.objects.filter(user=alice).exists()
    assert not Event.objects.filter(visitor_id=ALICE_VISITOR).exists()
    assert not RecommendationList.objects.filter(subject__in=[str(alice.pk), ALICE_VISITOR]).exists()
    assert not ExperimentAssignment.objects.filter(visitor_id=ALICE_VISITOR).exists()
    assert not ExperimentAssignment.objects.filter(user=alice).exists()
    assert list(export_shopper(user_id=alice.pk)) == []
    # Bob's data and the product lists stay.
    assert Event.objects.filter(visitor_id=BOB_VISITOR).count() == 1
    assert RecommendationList.objects.filter(kind="visitor", subject=BOB_VISITOR).exists()
    assert RecommendationList.objects.filter(kind="product").exists()
    assert ExperimentAssignment.objects.filter(visitor_id=BOB_VISITOR).exists()
    # No shop_reco table mentions her visitor id any more.
    assert not rows_containing(ALICE_VISITOR, app_label="shop_reco")
    # Nothing of Alice is served from a cache afterwards (this request tracks her afresh, as it should).
    items = shopper_client(ALICE_VISITOR, alice).get(reverse("shop_reco:reco-for-you")).json()["items"]
    assert all(item["source"] != "for_you" for item in items)


def test_erase_of_a_visitor_by_command(alice_data):
    out = StringIO()
    call_command("reco_erase_shopper", "--visitor", BOB_VISITOR, "--noinput", stdout=out)
    assert "Erased 1 event(s), 1 recommendation list(s) and 1 experiment assignment(s)" in out.getvalue()
    assert not rows_containing(BOB_VISITOR, app_label="shop_reco")


def test_retention_purge_deletes_only_old_events(catalogue):
    old = timezone.now() - timedelta(days=800)
    track("view", product=catalogue.key("Kitchen 1"), visitor_id=ALICE_VISITOR, occurred_at=old)
    track("view", product=catalogue.key("Kitchen 2"), visitor_id=ALICE_VISITOR)
    out = StringIO()
    call_command("reco_purge_events", stdout=out)  # RETENTION_DAYS = 730
    assert "Deleted 1 event(s)" in out.getvalue()
    assert list(Event.objects.values_list("product_key", flat=True)) == [catalogue.key("Kitchen 2")]
    call_command("reco_purge_events", "--days", "0", stdout=StringIO())
    assert not Event.objects.exists()


IDENTIFYING = (
    "ip",
    "ip_address",
    "remote_addr",
    "user_agent",
    "useragent",
    "agent",
    "address",
    "host",
    "referer",
)


def test_no_shop_reco_model_has_a_column_for_an_address_or_a_user_agent():
    for model in apps.get_app_config("shop_reco").get_models():
        for field in model._meta.get_fields():
            if not isinstance(field, models.Field):
                continue
            assert not isinstance(field, models.GenericIPAddressField), (model, field.name)
            words = field.name.lower().split("_")
            assert not set(words) & set(IDENTIFYING) and field.name.lower() not in IDENTIFYING, (
                model,
                field.name,
            )


def rows_containing(needle: str, *, app_label: str | None = None) -> list[tuple[str, str]]:
    """(table, row) of every stored row whose text holds ``needle``, in every table (or one app's)."""
    tables = connection.introspection.table_names()
    if app_label is not None:
        tables = [model._meta.db_table for model in apps.get_app_config(app_label).get_models()]
    found = []
    with connection.cursor() as cursor:
        for table in tables:
            quoted = connection.ops.quote_name(table)
            if connection.vendor == "postgresql":
                cursor.execute(f"SELECT t::text FROM {quoted} AS t")
                rows = [row[0] for row in cursor.fetchall()]
            else:
                cursor.execute(f"SELECT * FROM {quoted}")
                rows = [repr(row) for row in cursor.fetchall()]
            found += [(table, row) for row in rows if needle in row]
    return found


def test_no_table_stores_the_address_or_the_user_agent_after_tracked_requests(catalogue, alice):
    client = Client(HTTP_USER_AGENT=AGENT, REMOTE_ADDR=ADDRESS, HTTP_X_FORWARDED_FOR=FORWARDED)
    client.get("/")
    client.get(reverse("catalogue:product", args=[catalogue.key("Kitchen 1")]))
    client.get(reverse("catalogue:search"), {"q": "mug"})
    client.get(reverse("cart:detail"))
    token = client.cookies["csrftoken"].value
    client.post(reverse("cart:add"), {"product_id": catalogue.key("Kitchen 1"), "csrfmiddlewaretoken": token})
    client.post(reverse("orders:checkout"), {"email": "guest@example.com", "csrfmiddlewaretoken": token})
    client.post(
        reverse("shop_reco:beacon"),
        {
            "events": [
                {"event_type": "rec_click", "product_key": catalogue.key("Kitchen 2"), "slot": "similar"}
            ]
        },
        content_type="application/json",
    )
    client.login(username="alice", password="pw-alice-123")
    client.get(reverse("shop_reco:reco-for-you"))
    assert Event.objects.count() >= 4  # the requests were tracked
    for needle in ("PrivacyProbe", ADDRESS, FORWARDED):
        assert rows_containing(needle) == [], needle
