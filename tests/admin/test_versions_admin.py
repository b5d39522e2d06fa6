"""Score versions in the admin: list with progress and deltas, detail page, the recompute action."""

from __future__ import annotations

import contextlib

import pytest
from celery import current_app, shared_task
from django.urls import reverse

from shop_reco.models import ScoreVersion
from shop_reco.queueing import RECOMPUTE as RECOMPUTE_TASK

pytestmark = pytest.mark.django_db


CALLS: list[str] = []


@shared_task(name=f"{RECOMPUTE_TASK}.fake")
def fake_recompute_task(family: str = "full") -> int:
    """Stands in for the pipeline's task: records the call and starts a building version."""
    CALLS.append(family)
    return ScoreVersion.objects.create(family=family, steps_total=10, steps_done=3).pk


@pytest.fixture
def fake_recompute(monkeypatch):
    """Registers the stand-in under the real task's name for one test."""
    CALLS.clear()
    with contextlib.suppress(ImportError):  # the real task registers first; the swap below then wins
        import shop_reco.tasks  # noqa: F401
    current_app.loader.import_default_modules()
    monkeypatch.setitem(current_app.tasks, RECOMPUTE_TASK, current_app.tasks[f"{RECOMPUTE_TASK}.fake"])
    return CALLS


def _versions(published):
    older = ScoreVersion.objects.create(
        family="full", status=ScoreVersion.Status.RETIRED, metrics={"precision_at_10": 0.10, "coverage": 0.6}
    )
    ScoreVersion.objects.filter(pk=older.pk).update(created_at=published.created_at.replace(year=2020))
    return older


def test_list_shows_progress_inputs_deltas_and_charts(admin_client, published):
    _versions(published)
    response = admin_client.get(reverse("admin:shop_reco_scoreversion_changelist"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "precision_at_10: 0.12 (+0.02)" in body
    assert "coverage: 0.5 (-0.1)" in body
    assert "events: 120" in body
    assert "4.0 s" in body
    assert body.count('class="sr-chart sr-chart-line') == 2
    assert 'http-equiv="refresh"' not in body  # nothing is building


def test_detail_compares_with_the_previous_version_and_refreshes_while_building(admin_client, published):
    older = _versions(published)
    response = admin_client.get(reverse("admin:shop_reco_scoreversion_change", args=[published.pk]))
    assert response.context["previous_version"] == older
    rows = {row.name: row for row in response.context["metric_rows"]}
    assert rows["precision_at_10"].delta == pytest.approx(0.02)
    assert "sr-chart-bar" in response.content.decode()

    building = ScoreVersion.objects.create(family="full", steps_done=1, steps_total=4)
    response = admin_client.get(reverse("admin:shop_reco_scoreversion_change", args=[building.pk]))
    body = response.content.decode()
    assert 'http-equiv="refresh"' in body
    assert 'value="25"' in body


def test_recompute_button_enqueues_the_task_and_reports(admin_client, fake_recompute):
    response = admin_client.post(reverse("admin:shop_reco_scoreversion_recompute"), follow=True)
    assert fake_recompute == ["full"]
    new = ScoreVersion.objects.get()
    messages = [str(m) for m in response.context["messages"]]
    assert messages == [f"Recompute of 'full' finished: version {new.pk}."]  # eager Celery ran it
    body = response.content.decode()
    assert 'http-equiv="refresh"' in body and 'value="30"' in body  # its progress, refreshing


def test_recompute_action_enqueues_each_selected_family(admin_client, published, fake_recompute):
    response = admin_client.post(
        reverse("admin:shop_reco_scoreversion_changelist"),
        {"action": "recompute_now", "_selected_action": [published.pk]},
        follow=True,
    )
    assert fake_recompute == ["full"]
    assert "finished" in next(str(m) for m in response.context["messages"])


def test_recompute_already_running_and_queued_messages(admin_client, monkeypatch):
    class Result:
        id = "abc"

        def __init__(self, ready, result=None):
            self._ready, self.result = ready, result

        def ready(self):
            return self._ready

        def failed(self):
            return False

    import shop_reco.admin as admin_module

    monkeypatch.setattr(admin_module, "enqueue_recompute", lambda family: Result(True, None))
    response = admin_client.post(reverse("admin:shop_reco_scoreversion_recompute"), follow=True)
    assert "already running" in next(str(m) for m in response.context["messages"])
    monkeypatch.setattr(admin_module, "enqueue_recompute", lambda family: Result(False))
    response = admin_client.post(reverse("admin:shop_reco_scoreversion_recompute"), follow=True)
    assert "queued (task abc)" in next(str(m) for m in response.context["messages"])


def test_recompute_needs_change_permission(client, staff_with, fake_recompute):
    client.force_login(staff_with("shop_reco.view_scoreversion"))
    response = client.get(reverse("admin:shop_reco_scoreversion_changelist"))
    assert response.status_code == 200
    assert "sr-recompute" not in response.content.decode()
    assert client.post(reverse("admin:shop_reco_scoreversion_recompute")).status_code == 403
    assert fake_recompute == []


def test_published_versions_cannot_be_deleted(admin_client, published):
    response = admin_client.get(reverse("admin:shop_reco_scoreversion_delete", args=[published.pk]))
    assert response.status_code == 403
