"""The admin's tuning values at and beyond their bounds: saved at the bound, refused past it, never a 500."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from shop_reco.models import Experiment, RecoConfigRevision
from shop_reco.services import tuning
from tests.admin.test_tuning import _form_data

pytestmark = pytest.mark.django_db

ACCEPTED = [
    ("NEIGHBOURS", "1"),
    ("NEIGHBOURS", str(tuning.MAX_NEIGHBOURS)),
    ("DECAY_HALF_LIFE_DAYS", "0.0001"),
    ("DECAY_HALF_LIFE_DAYS", f"{tuning.MAX_HALF_LIFE_DAYS:g}"),
    ("MIN_SUPPORT", "0"),
    ("MIN_SUPPORT", "0.999999"),
    ("MIN_CONFIDENCE", "0"),
    ("MIN_CONFIDENCE", "1"),
    ("EVENT_WEIGHTS__view", f"{tuning.MAX_ABS_EVENT_WEIGHT:g}"),
    ("EVENT_WEIGHTS__remove_from_cart", f"-{tuning.MAX_ABS_EVENT_WEIGHT:g}"),
    ("SLOTS__similar__limit", "1"),
    ("SLOTS__similar__limit", "50"),
    ("SLOTS__similar__max_per_category", "1"),
    ("BLEND_WEIGHTS__similar__content", "0"),
]
REFUSED = [
    ("NEIGHBOURS", "0"),
    ("NEIGHBOURS", str(tuning.MAX_NEIGHBOURS + 1)),
    ("NEIGHBOURS", "-1"),
    ("NEIGHBOURS", "1.5"),
    ("NEIGHBOURS", "9" * 400),
    ("DECAY_HALF_LIFE_DAYS", "0"),
    ("DECAY_HALF_LIFE_DAYS", "-1"),
    ("DECAY_HALF_LIFE_DAYS", f"{tuning.MAX_HALF_LIFE_DAYS + 1:g}"),
    ("DECAY_HALF_LIFE_DAYS", "inf"),
    ("DECAY_HALF_LIFE_DAYS", "nan"),
    ("DECAY_HALF_LIFE_DAYS", "1e309"),
    ("MIN_SUPPORT", "1"),
    ("MIN_SUPPORT", "-0.0001"),
    ("MIN_CONFIDENCE", "1.0001"),
    ("EVENT_WEIGHTS__view", f"{tuning.MAX_ABS_EVENT_WEIGHT + 0.5:g}"),
    ("EVENT_WEIGHTS__view", "Infinity"),
    ("SLOTS__similar__limit", "0"),
    ("SLOTS__similar__limit", "51"),
    ("SLOTS__similar__max_per_category", "0"),
    ("SLOTS__similar__fallback", "popular, popular"),
    ("SLOTS__similar__fallback", "'; DROP TABLE shop_reco_recoconfig; --"),
    ("BLEND_WEIGHTS__similar__content", "-0.1"),
    ("BLEND_WEIGHTS__similar__cf", "NaN"),
]


def post(admin_client, changes: dict[str, str]):
    config = tuning.get_config()
    data = _form_data(admin_client, config)
    data.update(changes)
    return admin_client.post(reverse("admin:shop_reco_recoconfig_change", args=[config.pk]), data)


@pytest.mark.parametrize(("field", "value"), ACCEPTED)
def test_values_at_the_bounds_are_saved(admin_client, field, value):
    response = post(admin_client, {field: value})
    assert response.status_code == 302, response.context["adminform"].form.errors
    tuning.invalidate()
    config = tuning.current_config()
    path = field.split("__")
    current = config
    for part in path:
        current = current[part]
    assert float(current) == float(value)


@pytest.mark.parametrize(("field", "value"), REFUSED)
def test_values_beyond_the_bounds_are_refused_next_to_the_field(admin_client, field, value):
    tuning.get_config()  # its first revision
    before = RecoConfigRevision.objects.count()
    response = post(admin_client, {field: value})
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert RecoConfigRevision.objects.count() == before


@pytest.mark.parametrize(
    "overlay",
    [
        '{"NEIGHBOURS": Infinity}',
        '{"NEIGHBOURS": NaN}',
        '{"DECAY_HALF_LIFE_DAYS": -Infinity}',
        '{"EVENT_WEIGHTS": {"view": NaN}}',
        '{"BLEND_WEIGHTS": {"similar": {"cf": Infinity}}}',
        '{"SLOTS": {"similar": {"limit": 1e400}}}',
        '{"SLOTS": {"similar": {"max_per_category": Infinity}}}',
        '{"SLOTS": {"similar": {"limit": 99999999999999999999999}}}',
        '{"SLOTS": {"similar": "x"}}',
        '["not", "an", "object"]',
        json.dumps({"a" * 10_000: 1}),
    ],
)
def test_experiment_overlays_with_non_finite_or_odd_json_are_refused(admin_client, overlay):
    data = {
        "key": "exp",
        "name": "Exp",
        "description": "",
        "variants-TOTAL_FORMS": "2",
        "variants-INITIAL_FORMS": "0",
        "variants-MIN_NUM_FORMS": "0",
        "variants-MAX_NUM_FORMS": "1000",
        "variants-0-key": "control",
        "variants-0-weight": "1",
        "variants-0-is_control": "on",
        "variants-0-overlay": "{}",
        "variants-1-key": "test",
        "variants-1-weight": "1",
        "variants-1-overlay": overlay,
    }
    response = admin_client.post(reverse("admin:shop_reco_experiment_add"), data)
    assert response.status_code == 200, "saved an overlay that is not a finite configuration"
    assert not Experiment.objects.exists()


def test_tuning_validation_refuses_non_finite_numbers_everywhere():
    for bad in (float("nan"), float("inf"), -float("inf")):
        for values in (
            {"NEIGHBOURS": bad},
            {"DECAY_HALF_LIFE_DAYS": bad},
            {"MIN_SUPPORT": bad},
            {"MIN_CONFIDENCE": bad},
            {"EVENT_WEIGHTS": {"view": bad}},
            {"BLEND_WEIGHTS": {"similar": {"cf": bad}}},
            {"SLOTS": {"similar": {"limit": bad}}},
            {"SLOTS": {"similar": {"max_per_category": bad}}},
        ):
            with pytest.raises(tuning.ValidationError):
                tuning.validate_overlay(values)
