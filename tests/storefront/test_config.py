"""Slots follow the effective configuration: settings, the admin's tuning, the experiment variant."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import AnonymousUser

from shop_reco.models import Experiment, ExperimentAssignment, ExperimentVariant
from shop_reco.services import experiments, tuning
from shop_reco.services import recommendations as reco
from shop_reco.services.context import context_for
from shop_reco.testing import publish_lists, visitor_cookie
from shop_reco.tracking.identity import Visitor

EVERYTHING = [f"{c} {i}" for c in ("Kitchen", "Garden", "Toys") for i in range(1, 5)]


@pytest.fixture(autouse=True)
def _fresh_config():
    experiments.clear_memo()
    with tuning._lock:
        tuning._local.clear()
    yield
    experiments.clear_memo()
    with tuning._lock:
        tuning._local.clear()


@pytest.fixture
def popular(catalogue):
    publish_lists(
        {
            ("global", "", "popular"): catalogue.keys(*EVERYTHING),
            ("global", "", "trending"): catalogue.keys("Toys 4", "Toys 3"),
        }
    )


def tune(values) -> None:
    tuning.save_config(tuning.get_config(0), values, comment="test")


def test_tuned_limit_and_cap_apply(catalogue, popular):
    assert len(reco.similar_products(catalogue["Kitchen 1"])) == 6  # the built-in limit
    tune({"SLOTS": {"similar": {"limit": 3, "max_per_category": 1}}})
    result = reco.similar_products(catalogue["Kitchen 1"])
    assert len(result) == 3
    assert len({item.category for item in result}) == 3


def test_tuned_exclude_purchased(catalogue, popular):
    from tests.storefront.test_slots import VISITOR, purchase

    purchase(catalogue.key("Toys 4"))
    # Trending shows what the shopper bought by default; tuned, it hides it.
    assert catalogue.key("Toys 4") in reco.trending(context=context_for(visitor_id=VISITOR)).keys
    tune({"SLOTS": {"trending": {"exclude_purchased": True}}})
    assert catalogue.key("Toys 4") not in reco.trending(context=context_for(visitor_id=VISITOR)).keys


def test_fallback_order_is_honoured(catalogue):
    publish_lists(
        {
            ("category", "Kitchen", "popular"): catalogue.keys("Kitchen 3"),
            ("global", "", "trending"): catalogue.keys("Toys 1"),
        }
    )
    reasons = [item.reason for item in reco.similar_products(catalogue["Kitchen 1"], limit=3)]
    assert reasons[:2] == ["Popular in Kitchen", "Trending now"]
    tune({"SLOTS": {"similar": {"fallback": ["popular", "category"]}}})
    reasons = [item.reason for item in reco.similar_products(catalogue["Kitchen 1"], limit=3)]
    assert reasons[:2] == ["Trending now", "Popular in Kitchen"]
    assert len(reasons) == 2  # no catalogue stage in the list: nothing else to show
    tune({"SLOTS": {"similar": {"fallback": []}}})
    assert not reco.similar_products(catalogue["Kitchen 1"], limit=3)


def test_blend_weights_reweigh_and_switch_off_lists(catalogue):
    publish_lists(
        {
            ("global", "", "trending"): (catalogue.keys("Toys 1"), [1.0]),
            ("global", "", "popular"): (catalogue.keys("Garden 1"), [1.0]),
        }
    )
    assert catalogue.names(reco.trending(limit=2).keys) == ["Toys 1", "Garden 1"]
    tune({"BLEND_WEIGHTS": {"trending": {"trending": 0.5, "popular": 1.0}}})
    assert catalogue.names(reco.trending(limit=2).keys) == ["Garden 1", "Toys 1"]
    tune({"BLEND_WEIGHTS": {"trending": {"trending": 1.0, "popular": 0}}})
    assert catalogue.names(reco.trending(limit=2).keys)[:1] == ["Toys 1"]
    assert "popular" not in {item.source for item in reco.trending(limit=2)}


@pytest.fixture
def experiment(db):
    experiment = Experiment.objects.create(key="similar-two", name="Similar two")
    ExperimentVariant.objects.create(experiment=experiment, key="control", is_control=True, weight=1)
    ExperimentVariant.objects.create(
        experiment=experiment, key="two", weight=1, overlay={"SLOTS": {"similar": {"limit": 2}}}
    )
    experiments.start(experiment)
    return experiment


def visitor_in(experiment, key: str) -> str:
    variants = list(experiment.variants.order_by("pk"))
    for number in range(1000):
        visitor = uuid.UUID(int=number + 1).hex
        if experiments.choose(experiment.key, visitor, [(v, v.weight) for v in variants]).key == key:
            return visitor
    raise AssertionError("no visitor found")


def shopper_request(rf, visitor: str):
    request = rf.get("/", HTTP_USER_AGENT="Mozilla/5.0")
    request.user = AnonymousUser()
    request.shop_reco_visitor = Visitor(visitor, tracking=True)
    return request


def test_a_requests_slots_follow_its_experiment_variant(catalogue, popular, experiment, rf):
    two, control = visitor_in(experiment, "two"), visitor_in(experiment, "control")
    request = shopper_request(rf, two)
    assert len(reco.similar_products(catalogue["Kitchen 1"], context=context_for(request))) == 2
    assert ExperimentAssignment.objects.get(visitor_id=two).variant.key == "two"  # the exposure
    request = shopper_request(rf, control)
    assert len(reco.similar_products(catalogue["Kitchen 1"], context=context_for(request))) == 6


def test_the_config_is_read_once_per_request(catalogue, popular, experiment, rf, monkeypatch):
    calls = []
    original = experiments.config_for_shopper

    def counting(**kwargs):
        calls.append(kwargs)
        return original(**kwargs)

    monkeypatch.setattr(experiments, "config_for_shopper", counting)
    request = shopper_request(rf, visitor_in(experiment, "two"))
    context = context_for(request)
    reco.similar_products(catalogue["Kitchen 1"], context=context)
    reco.bought_together(catalogue["Kitchen 1"], context=context)
    reco.trending(context=context_for(request))
    assert len(calls) == 1


def test_previews_and_opted_out_shoppers_are_not_enrolled(catalogue, popular, experiment, rf):
    two = visitor_in(experiment, "two")
    # A context for someone else (admin preview, tasks) shows the live configuration.
    assert len(reco.similar_products(catalogue["Kitchen 1"], context=context_for(visitor_id=two))) == 6
    request = rf.get("/", HTTP_USER_AGENT="Mozilla/5.0", HTTP_DNT="1")
    request.user = AnonymousUser()
    name, value = visitor_cookie(two)
    request.COOKIES[name] = value
    assert len(reco.similar_products(catalogue["Kitchen 1"], context=context_for(request))) == 6
    assert not ExperimentAssignment.objects.exists()


def test_a_broken_configuration_falls_back_to_the_settings(catalogue, popular, rf, monkeypatch, caplog):
    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(experiments, "config_for_shopper", broken)
    request = shopper_request(rf, "b" * 32)
    assert len(reco.similar_products(catalogue["Kitchen 1"], context=context_for(request))) == 6
    assert "tuned configuration" in caplog.text
