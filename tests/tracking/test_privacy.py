"""Export and erasure of one shopper, services and commands."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from shop_reco.models import Event, RecommendationList, ScoreVersion
from shop_reco.services.privacy import erase_shopper, export_shopper
from shop_reco.services.tracking import flush_events
from shop_reco.tracking import track

pytestmark = pytest.mark.django_db
MINE, THEIRS = "1" * 32, "2" * 32


@pytest.fixture
def history(customer):
    """The customer browsed anonymously on MINE, then logged in; someone else browsed on THEIRS."""
    track("view", product="1", visitor_id=MINE)
    track("view", product="2", visitor_id=MINE, user=customer)
    track("purchase", product="2", user=customer, basket_ref="W1")
    track("view", product="3", visitor_id=THEIRS)
    version = ScoreVersion.objects.create()
    for kind, subject in [
        ("user", str(customer.pk)),
        ("visitor", MINE),
        ("visitor", THEIRS),
        ("product", "2"),
    ]:
        RecommendationList.objects.create(version=version, kind=kind, subject=subject, source="cf")
    return customer


def test_export_of_a_user_includes_their_browsers_anonymous_events(history):
    rows = [row for row in export_shopper(user_id=history.pk) if row["record"] == "event"]
    assert [row["product_key"] for row in rows] == ["1", "2", "2"]
    assert set(rows[0]) >= {"event_type", "visitor_id", "user_id", "occurred_at", "client_event_id"}
    json.dumps(rows)  # JSON-ready


def test_export_command_writes_json_lines(history, tmp_path):
    out = StringIO()
    call_command("reco_export_shopper", "--visitor", THEIRS, stdout=out, stderr=StringIO())
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [row["product_key"] for row in rows if row["record"] == "event"] == ["3"]
    target = tmp_path / "export.jsonl"
    call_command("reco_export_shopper", "--user", str(history.pk), "-o", str(target), stderr=StringIO())
    # Three events, then the user's and their browser's stored lists.
    assert len(target.read_text().splitlines()) == 5


def test_erase_user_deletes_events_and_derived_lists(history):
    result = erase_shopper(user_id=history.pk)
    assert (result.events, result.lists) == (3, 2)
    assert list(Event.objects.values_list("visitor_id", flat=True)) == [THEIRS]
    assert set(RecommendationList.objects.values_list("kind", "subject")) == {
        ("visitor", THEIRS),
        ("product", "2"),
    }


def test_erase_command_for_a_visitor(history):
    out = StringIO()
    call_command("reco_erase_shopper", "--visitor", THEIRS, "--noinput", stdout=out)
    assert "Erased 1 event(s), 1 recommendation list(s) and 0 experiment assignment(s)" in out.getvalue()
    assert not Event.objects.filter(visitor_id=THEIRS).exists()


def test_erase_reaches_events_still_in_the_buffer(buffered, customer):
    track("view", product="1", visitor_id=MINE, user=customer)
    track("view", product="9", visitor_id=THEIRS)
    erase_shopper(user_id=customer.pk)
    flush_events()
    assert list(Event.objects.values_list("product_key", flat=True)) == ["9"]


def test_exactly_one_shopper_must_be_named():
    with pytest.raises(ValueError):
        erase_shopper()
