"""The experiment report from real events, checked against scipy on the same counts; stop and promote."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone
from scipy import stats as sps

from shop_reco.attribution import make_token
from shop_reco.models import Event, Experiment, ExperimentAssignment, ExperimentVariant
from shop_reco.services import experiments, tuning

pytestmark = pytest.mark.django_db


@pytest.fixture
def running(catalogue):
    experiment = Experiment.objects.create(key="ab", name="A/B")
    ExperimentVariant.objects.create(experiment=experiment, key="a", is_control=True)
    ExperimentVariant.objects.create(
        experiment=experiment, key="b", overlay={"NEIGHBOURS": 80, "SLOTS": {"cart": {"limit": 4}}}
    )
    experiments.start(experiment)
    Experiment.objects.filter(pk=experiment.pk).update(started_at=timezone.now() - timedelta(days=2))
    experiment.refresh_from_db()
    return experiment


def _simulate(experiment, catalogue, rng):
    """Shoppers with impressions, clicks, add-to-carts and purchases; returns what the report must find."""
    keys = list(catalogue)
    now = timezone.now()
    assigned_at = now - timedelta(days=1)
    expected = {key: {"impressions": 0, "clicks": 0, "carted": [], "revenue": []} for key in ("a", "b")}
    events = []
    for number in range(240):
        visitor = f"sim-{number}"
        variant = experiments.assign(experiment, visitor_id=visitor)
        want = expected[variant.key]
        lift = 0.15 if variant.key == "b" else 0.0
        impressions = int(rng.integers(1, 6))
        clicks = int(rng.binomial(impressions, 0.2 + lift))
        want["impressions"] += impressions
        want["clicks"] += clicks
        at = assigned_at + timedelta(minutes=10)
        events += [Event(event_type="rec_impression", visitor_id=visitor, slot="similar", occurred_at=at)] * 0
        for _ in range(impressions):
            events.append(
                Event(event_type="rec_impression", visitor_id=visitor, slot="similar", occurred_at=at)
            )
        carted = False
        revenue = Decimal("0")
        for click in range(clicks):
            key = keys[click % len(keys)]
            token = make_token("similar", "similar", 1, click + 1, key)
            events.append(
                Event(
                    event_type="rec_click",
                    visitor_id=visitor,
                    product_key=key,
                    token=token,
                    slot="similar",
                    occurred_at=at + timedelta(minutes=1),
                )
            )
            if rng.random() < 0.5:
                carted = True
                events.append(
                    Event(
                        event_type="add_to_cart",
                        visitor_id=visitor,
                        product_key=key,
                        occurred_at=at + timedelta(minutes=2),
                    )
                )
                if rng.random() < 0.6:
                    quantity = int(rng.integers(1, 4))
                    price = Decimal(str(catalogue[key].price))
                    revenue += price * quantity
                    events.append(
                        Event(
                            event_type="purchase",
                            visitor_id=visitor,
                            product_key=key,
                            quantity=quantity,
                            unit_price=price,
                            occurred_at=at + timedelta(minutes=3),
                        )
                    )
        # Noise the report must ignore: a purchase without a click, and a click-then-buy outside the window.
        events.append(
            Event(
                event_type="purchase",
                visitor_id=visitor,
                product_key=keys[-1],
                unit_price=Decimal("99"),
                occurred_at=at,
            )
        )
        want["carted"].append(1 if carted else 0)
        want["revenue"].append(float(revenue))
    # Events of a shopper outside the experiment.
    events.append(
        Event(
            event_type="rec_impression",
            visitor_id="outsider",
            slot="similar",
            occurred_at=now - timedelta(hours=1),
        )
    )
    ExperimentAssignment.objects.filter(experiment=experiment).update(assigned_at=assigned_at)
    Event.objects.bulk_create(events)
    return expected


def test_report_matches_an_independent_computation(running, catalogue):
    rng = np.random.default_rng(7)
    expected = _simulate(running, catalogue, rng)
    report = experiments.report(running)
    control, test = report.results
    assert (control.variant.key, test.variant.key) == ("a", "b")
    for row in report.results:
        want = expected[row.variant.key]
        assert row.visitors == len(want["revenue"])
        assert row.impressions == want["impressions"]
        assert row.clicks == want["clicks"]
        assert row.add_to_cart_visitors == sum(want["carted"])
        assert row.converted_visitors == sum(1 for value in want["revenue"] if value > 0)
        assert float(row.revenue) == pytest.approx(sum(want["revenue"]))
        low, high = sps.binomtest(row.clicks, row.impressions).proportion_ci(0.95, method="wilson")
        assert (row.ctr.low, row.ctr.high) == (pytest.approx(low), pytest.approx(high))
        revenue = np.array(want["revenue"])
        t_low, t_high = sps.t.interval(0.95, len(revenue) - 1, loc=revenue.mean(), scale=sps.sem(revenue))
        assert row.revenue_per_visitor.low == pytest.approx(t_low)
        assert row.revenue_per_visitor.high == pytest.approx(t_high)

    a, b = expected["a"], expected["b"]
    table = [[a["clicks"], a["impressions"] - a["clicks"]], [b["clicks"], b["impressions"] - b["clicks"]]]
    assert test.comparisons["ctr"].test.p_value == pytest.approx(
        sps.chi2_contingency(table, correction=False)[1]
    )
    carts = [
        [sum(a["carted"]), len(a["carted"]) - sum(a["carted"])],
        [sum(b["carted"]), len(b["carted"]) - sum(b["carted"])],
    ]
    assert test.comparisons["add_to_cart_rate"].test.p_value == pytest.approx(
        sps.chi2_contingency(carts, correction=False)[1]
    )
    welch = sps.ttest_ind(b["revenue"], a["revenue"], equal_var=False)
    assert test.comparisons["revenue_per_visitor"].test.statistic == pytest.approx(welch.statistic)
    assert test.comparisons["revenue_per_visitor"].test.p_value == pytest.approx(welch.pvalue)
    assert test.comparisons["ctr"].lift == pytest.approx(test.ctr.estimate / control.ctr.estimate - 1)


def test_logged_in_events_count_for_the_visitor_assignment(running, catalogue, django_user_model):
    user = django_user_model.objects.create_user(username="dora")
    visitor = "dora-phone"
    variant = experiments.variant_for(visitor_id=visitor)
    experiments.variant_for(visitor_id=visitor, user=user)
    later = timezone.now() + timedelta(seconds=1)
    key = next(iter(catalogue))
    Event.objects.create(event_type="rec_impression", user=user, slot="cart", occurred_at=later)
    Event.objects.create(
        event_type="rec_click",
        user=user,
        product_key=key,
        token=make_token("cart", "similar", 1, 1, key),
        occurred_at=later,
    )
    Event.objects.create(
        event_type="purchase",
        user=user,
        product_key=key,
        unit_price=Decimal("5"),
        quantity=2,
        occurred_at=later + timedelta(seconds=1),
    )
    report = experiments.report(running, until=later + timedelta(minutes=1))
    row = next(r for r in report.results if r.variant == variant)
    assert (row.visitors, row.impressions, row.clicks, row.converted_visitors) == (1, 1, 1, 1)
    assert row.revenue == Decimal("10")


def test_report_page_stop_and_promote(admin_client, admin_user, running, catalogue):
    _simulate(running, catalogue, np.random.default_rng(1))
    url = reverse("admin:shop_reco_experiment_report", args=[running.pk])
    response = admin_client.get(url)
    assert response.status_code == 200
    body = response.content.decode()
    assert body.count('class="sr-chart sr-chart-interval"') == 4
    assert "Promote" in body and "Stop experiment" in body

    response = admin_client.post(reverse("admin:shop_reco_experiment_stop", args=[running.pk]), follow=True)
    running.refresh_from_db()
    assert running.status == Experiment.Status.STOPPED
    assert "Stop experiment" not in response.content.decode()

    winner = running.variants.get(key="b")
    response = admin_client.post(
        reverse("admin:shop_reco_experiment_promote", args=[running.pk, winner.pk]), follow=True
    )
    running.refresh_from_db()
    assert running.status == Experiment.Status.PROMOTED
    assert running.promoted_variant == winner
    config = tuning.current_config()
    assert config["NEIGHBOURS"] == 80 and config["SLOTS"]["cart"]["limit"] == 4
    revision = tuning.get_config(0).revisions.first()
    assert revision.author == admin_user
    assert "Promoted variant 'b'" in revision.comment


def test_promote_needs_config_permission(client, staff_with, running):
    client.force_login(staff_with("shop_reco.view_experiment", "shop_reco.change_experiment"))
    variant = running.variants.first()
    response = client.get(reverse("admin:shop_reco_experiment_report", args=[running.pk]))
    assert response.status_code == 200 and "Promote" not in response.content.decode()
    assert (
        client.post(reverse("admin:shop_reco_experiment_promote", args=[running.pk, variant.pk])).status_code
        == 403
    )


def test_variant_overlays_are_validated_in_the_admin(admin_client):
    data = {
        "name": "Bad",
        "key": "bad",
        "description": "",
        "variants-TOTAL_FORMS": "2",
        "variants-INITIAL_FORMS": "0",
        "variants-MIN_NUM_FORMS": "2",
        "variants-MAX_NUM_FORMS": "1000",
        "variants-0-key": "a",
        "variants-0-weight": "1",
        "variants-0-is_control": "on",
        "variants-0-overlay": "{}",
        "variants-1-key": "b",
        "variants-1-weight": "1",
        "variants-1-overlay": '{"SLOTS": {"similar": {"limit": -3}}}',
    }
    response = admin_client.post(reverse("admin:shop_reco_experiment_add"), data)
    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][0].formset.errors
    assert "SLOTS.similar.limit" in str(errors)
    data["variants-1-overlay"] = '{"SLOTS": {"similar": {"limit": 3}}}'
    data["variants-1-is_control"] = "on"
    response = admin_client.post(reverse("admin:shop_reco_experiment_add"), data)
    assert "at most one variant as the control" in str(
        response.context["inline_admin_formsets"][0].formset.non_form_errors()
    )
    del data["variants-1-is_control"]
    response = admin_client.post(reverse("admin:shop_reco_experiment_add"), data)
    assert response.status_code == 302, (
        response.context["adminform"].form.errors,
        response.context["inline_admin_formsets"][0].formset.errors,
        response.context["inline_admin_formsets"][0].formset.non_form_errors(),
    )
    experiment = Experiment.objects.get(key="bad")
    response = admin_client.post(
        reverse("admin:shop_reco_experiment_changelist"),
        {"action": "start_selected", "_selected_action": [experiment.pk]},
    )
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.RUNNING
