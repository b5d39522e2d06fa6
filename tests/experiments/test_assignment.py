"""Deterministic assignment: stable, sticky across login, split as configured."""

from __future__ import annotations

import uuid

import pytest
from scipy import stats as sps

from shop_reco.models import Experiment, ExperimentAssignment, ExperimentVariant
from shop_reco.services import experiments, tuning


@pytest.fixture
def experiment(db):
    experiment = Experiment.objects.create(key="similar-limit", name="Similar limit")
    ExperimentVariant.objects.create(experiment=experiment, key="control", is_control=True, weight=1)
    ExperimentVariant.objects.create(
        experiment=experiment, key="eight", weight=3, overlay={"SLOTS": {"similar": {"limit": 8}}}
    )
    experiments.start(experiment)
    return experiment


@pytest.mark.parametrize("weights", [(1, 1), (1, 3), (2, 3, 5)])
def test_split_proportions_within_tolerance(weights):
    arms = [(f"v{index}", weight) for index, weight in enumerate(weights)]
    n = 40_000
    counts = dict.fromkeys((name for name, _ in arms), 0)
    for number in range(n):
        counts[experiments.choose("split-test", uuid.UUID(int=number * 7919 + 1).hex, arms)] += 1
    total = sum(weights)
    expected = [n * weight / total for weight in weights]
    _, p_value = sps.chisquare(list(counts.values()), expected)
    assert p_value > 0.001, counts
    for (name, weight), want in zip(arms, expected, strict=True):
        sigma = (n * (weight / total) * (1 - weight / total)) ** 0.5
        assert abs(counts[name] - want) < 4 * sigma


def test_other_experiments_shuffle_independently():
    arms = [("a", 1), ("b", 1)]
    units = [f"visitor-{number}" for number in range(4000)]
    first = [experiments.choose("exp-one", unit, arms) for unit in units]
    second = [experiments.choose("exp-two", unit, arms) for unit in units]
    agreement = sum(x == y for x, y in zip(first, second, strict=True)) / len(units)
    assert 0.45 < agreement < 0.55


def test_assignment_is_stable_and_logged_once(experiment):
    first = experiments.variant_for(visitor_id="v-1")
    for _ in range(3):
        assert experiments.variant_for(visitor_id="v-1") == first
    assert ExperimentAssignment.objects.filter(visitor_id="v-1").count() == 1
    variants = list(experiment.variants.order_by("pk"))
    expected = experiments.choose(experiment.key, "v-1", [(v.key, v.weight) for v in variants])
    assert first.key == expected


def test_stored_assignments_follow_the_hash_in_bulk(experiment):
    variants = list(experiment.variants.order_by("pk"))
    for number in range(300):
        visitor = f"bulk-{number}"
        got = experiments.assign(experiment, variants, visitor_id=visitor)
        assert got.key == experiments.choose(experiment.key, visitor, [(v.key, v.weight) for v in variants])


def _visitor_in(experiment, key: str) -> str:
    variants = [(v.key, v.weight) for v in experiment.variants.order_by("pk")]
    return next(
        f"visitor-{n}"
        for n in range(1000)
        if experiments.choose(experiment.key, f"visitor-{n}", variants) == key
    )


def test_user_keeps_the_variant_of_their_first_visitor_id(experiment, django_user_model):
    user = django_user_model.objects.create_user(username="bob")
    phone = _visitor_in(experiment, "control")
    laptop = _visitor_in(experiment, "eight")
    assert experiments.variant_for(visitor_id=phone).key == "control"  # anonymous first exposure
    assert experiments.variant_for(visitor_id=phone, user=user).key == "control"  # logs in: same
    assert ExperimentAssignment.objects.get(visitor_id=phone).user == user
    # Later, on another device whose visitor id alone would hash to "eight", the user stays in "control".
    assert experiments.variant_for(visitor_id=laptop, user=user).key == "control"
    assert ExperimentAssignment.objects.get(visitor_id=laptop).variant.key == "control"
    assert experiments.variant_for(user=user).key == "control"


def test_user_without_visitor_id(experiment, django_user_model):
    user = django_user_model.objects.create_user(username="carol")
    variant = experiments.variant_for(user=user)
    assert variant == experiments.variant_for(user=user)
    assert ExperimentAssignment.objects.filter(user=user).count() == 1


def test_no_shopper_and_no_running_experiment(experiment):
    assert experiments.variant_for() is None
    experiments.stop(experiment)
    assert experiments.variant_for(visitor_id="v-1") is None


def test_config_for_shopper_applies_the_variant(experiment):
    visitor = _visitor_in(experiment, "eight")
    assert experiments.config_for_shopper(visitor_id=visitor)["SLOTS"]["similar"]["limit"] == 8
    control = _visitor_in(experiment, "control")
    assert experiments.config_for_shopper(visitor_id=control) == tuning.current_config()


def test_only_one_experiment_runs(experiment):
    from django.core.exceptions import ValidationError

    other = Experiment.objects.create(key="other", name="Other")
    ExperimentVariant.objects.create(experiment=other, key="a")
    ExperimentVariant.objects.create(experiment=other, key="b")
    with pytest.raises(ValidationError, match="one experiment runs at a time"):
        experiments.start(other)
