"""Each misconfiguration an integrator can make is reported with its own check id."""

import pytest
from django.core import checks
from django.test import override_settings

from shop_reco.checks import check_installation, check_settings, check_urls

GOOD = {"PRODUCT_MODEL": "catalogue.Product"}


def ids(messages):
    return sorted({message.id for message in messages})


def test_demo_configuration_is_clean():
    assert [m for m in checks.run_checks() if m.id.startswith("shop_reco")] == []


@pytest.mark.parametrize(
    ("shop_reco", "expected"),
    [
        ({}, ["shop_reco.E001"]),
        ({"PRODUCT_MODEL": "Product"}, ["shop_reco.E001"]),
        ({"PRODUCT_MODEL": "catalogue.Nope"}, ["shop_reco.E001"]),
        ({**GOOD, "ADAPTER": "no.such.Adapter"}, ["shop_reco.E002"]),
        ({**GOOD, "ADAPTER": "collections.OrderedDict"}, ["shop_reco.E002"]),
        ({**GOOD, "EVENT_WEIGHTS": {"veiw": 1.0}}, ["shop_reco.E004"]),
        ({**GOOD, "EVENT_WEIGHTS": {"view": "high"}}, ["shop_reco.E004"]),
        ({**GOOD, "CUSTOM_EVENT_TYPES": "share"}, ["shop_reco.E004"]),
        ({**GOOD, "CONSENT_CHECK": "no.such.function"}, ["shop_reco.E008"]),
        ({**GOOD, "CONSENT_CHECK": "shop_reco.conf.DEFAULTS"}, ["shop_reco.E008"]),
        ({**GOOD, "DECAY_HALF_LIFE_DAYS": 0}, ["shop_reco.E009"]),
        ({**GOOD, "RETENTION_DAYS": "forever"}, ["shop_reco.E009"]),
        ({**GOOD, "BOT_USER_AGENT_PATTERNS": "bot"}, ["shop_reco.E009"]),
        ({**GOOD, "EVENT_BUFFER_URL": "localhost:6379"}, ["shop_reco.E009"]),
        ({**GOOD, "EVENT_SPOOL_SHIP_SECONDS": 0}, ["shop_reco.E009"]),
        ({**GOOD, "EVENT_SPOOL_SHIP_SECONDS": "often"}, ["shop_reco.E009"]),
        ({**GOOD, "PRODUCT_MODLE": "catalogue.Product"}, ["shop_reco.W001"]),
    ],
)
def test_settings_errors_have_ids(shop_reco, expected):
    with override_settings(SHOP_RECO=shop_reco):
        assert ids(check_settings(None)) == expected


def test_custom_event_type_may_be_weighted():
    with override_settings(
        SHOP_RECO={**GOOD, "CUSTOM_EVENT_TYPES": ["share"], "EVENT_WEIGHTS": {"share": 2}}
    ):
        assert check_settings(None) == []


def test_missing_settings_is_an_error():
    with override_settings():
        from django.conf import settings

        del settings.SHOP_RECO
        assert ids(check_settings(None)) == ["shop_reco.E001"]


def test_settings_must_be_a_dict():
    with override_settings(SHOP_RECO=["catalogue.Product"]):
        assert ids(check_settings(None)) == ["shop_reco.E003"]


def test_middleware_missing_and_misordered(settings):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "shop_reco" not in m]
    assert ids(check_installation(None)) == ["shop_reco.E005"]
    settings.MIDDLEWARE = ["shop_reco.middleware.TrackingMiddleware", *settings.MIDDLEWARE]
    assert ids(check_installation(None)) == ["shop_reco.E006"]


def test_rest_framework_required(settings):
    settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if app != "rest_framework"]
    assert "shop_reco.E007" in ids(check_installation(None))


def test_urls_not_included(settings):
    settings.ROOT_URLCONF = "tests.urls_without_reco"
    assert ids(check_urls(None)) == ["shop_reco.W002"]
