"""Retention: the purge service, task and command."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from shop_reco import tasks
from shop_reco.models import Event
from shop_reco.tracking import track

pytestmark = pytest.mark.django_db


def test_purge_deletes_only_events_past_retention(reco):
    reco(RETENTION_DAYS=30)
    now = timezone.now()
    for days in (1, 29, 31, 400):
        track("view", product=str(days), visitor_id="v", occurred_at=now - timedelta(days=days))
    assert tasks.purge_events.delay().get() == 2
    assert sorted(Event.objects.values_list("product_key", flat=True)) == ["1", "29"]


def test_purge_command_and_keep_forever(reco):
    track("view", product="1", visitor_id="v", occurred_at=timezone.now() - timedelta(days=10))
    out = StringIO()
    call_command("reco_purge_events", "--days", "5", stdout=out)
    assert "Deleted 1 event(s)" in out.getvalue()
    reco(RETENTION_DAYS=None)
    out = StringIO()
    call_command("reco_purge_events", stdout=out)
    assert "nothing purged" in out.getvalue()


def test_flush_task_and_command(buffered):
    track("view", product="1", visitor_id="v")
    assert tasks.flush_events.delay().get() == 1
    track("view", product="2", visitor_id="v")
    out = StringIO()
    call_command("reco_flush_events", stdout=out)
    assert "1 new" in out.getvalue()
    assert Event.objects.count() == 2
