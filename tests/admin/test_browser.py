"""The admin screens in headless Chromium: preview, score versions and an experiment report, with charts."""

from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.utils import timezone

from shop_reco.models import Event, Experiment, ExperimentVariant, ScoreVersion
from shop_reco.services import experiments

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = "/usr/bin/chromium"


def _slot_traffic() -> None:
    now = timezone.now()
    events = []
    for day in range(10):
        at = now - timedelta(days=day, hours=1)
        for slot, shown, clicked in (
            ("similar", 40, 4 + day % 3),
            ("for_you", 30, 6 - day % 4),
            ("cart", 20, 1 + day % 2),
        ):
            events += [
                Event(event_type="rec_impression", visitor_id=f"t{day}", slot=slot, occurred_at=at)
            ] * 0
            events += [
                Event(event_type="rec_impression", visitor_id=f"t{day}-{n}", slot=slot, occurred_at=at)
                for n in range(shown)
            ]
            events += [
                Event(event_type="rec_click", visitor_id=f"t{day}-{n}", slot=slot, occurred_at=at)
                for n in range(clicked)
            ]
    Event.objects.bulk_create(events)


def _older_versions(published: ScoreVersion) -> None:
    for back, (precision, coverage) in enumerate(((0.09, 0.41), (0.1, 0.45), (0.11, 0.48)), start=1):
        version = ScoreVersion.objects.create(
            family="full",
            status=ScoreVersion.Status.RETIRED,
            metrics={"precision_at_10": precision, "coverage": coverage},
            timings={"total": 3.0 + back},
        )
        ScoreVersion.objects.filter(pk=version.pk).update(
            created_at=published.created_at - timedelta(days=back)
        )


@contextmanager
def chromium_page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


def test_admin_screens_show_their_charts(live_server, django_user_model, published, catalogue):
    from tests.experiments.test_report import _simulate

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed")
    # All database work happens before Playwright starts: its sync API runs an event loop in this thread.

    django_user_model.objects.create_superuser("boss", "boss@example.com", "pw")
    _older_versions(published)
    _slot_traffic()
    experiment = Experiment.objects.create(key="ab", name="Similar: 6 or 8 items")
    ExperimentVariant.objects.create(experiment=experiment, key="a", name="Six", is_control=True)
    ExperimentVariant.objects.create(
        experiment=experiment, key="b", name="Eight", overlay={"SLOTS": {"similar": {"limit": 8}}}
    )
    experiments.start(experiment)
    Experiment.objects.filter(pk=experiment.pk).update(started_at=timezone.now() - timedelta(days=2))
    experiment.refresh_from_db()
    _simulate(experiment, catalogue, np.random.default_rng(3))
    product = next(iter(catalogue))
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page() as page:
        _visit(page, live_server.url, product, experiment.pk)


def _visit(page, base: str, product: str, experiment_id: int) -> None:
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")

    page.goto(f"{base}/admin/shop_reco/recoconfig/preview/?product={product}&visitor_id=sim-1")
    assert page.locator("#sr-ctr-chart svg.sr-chart polyline.sr-series").first.is_visible()
    assert page.locator("#sr-ctr-chart svg.sr-chart circle.sr-point").count() >= 10
    assert page.locator(".sr-slot[data-slot=similar] tbody tr").count() >= 3
    page.screenshot(path=str(ARTIFACTS / "admin_preview.png"), full_page=True)

    page.goto(f"{base}/admin/shop_reco/scoreversion/")
    charts = page.locator("#sr-version-charts svg.sr-chart")
    assert charts.count() == 2
    assert charts.first.is_visible()
    assert charts.first.locator("circle.sr-point").count() == 8  # two metrics over four versions
    assert page.locator("#sr-recompute").is_visible()
    page.screenshot(path=str(ARTIFACTS / "admin_score_versions.png"), full_page=True)

    page.goto(f"{base}/admin/shop_reco/experiment/{experiment_id}/report/")
    intervals = page.locator("#sr-experiment-charts svg.sr-chart-interval")
    assert intervals.count() == 4
    for index in range(4):
        assert intervals.nth(index).is_visible()
        assert intervals.nth(index).locator("g.sr-interval").count() == 2
    assert page.locator("#sr-experiment-table tbody tr").count() == 2
    page.screenshot(path=str(ARTIFACTS / "admin_experiment_report.png"), full_page=True)

    page.goto(f"{base}/admin/shop_reco/recoconfig/")
    assert page.locator("#id_NEIGHBOURS").is_visible()
    page.screenshot(path=str(ARTIFACTS / "admin_tuning.png"), full_page=True)
