"""Fixtures of the reliability suite: a small published shop, two shoppers, fresh caches."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache

from shop_reco.services import experiments, lists
from shop_reco.tracking import buffer
from tests.storefront.conftest import Catalogue
from tests.tracking.fixtures import BROWSER

ALICE_VISITOR, BOB_VISITOR = "a" * 32, "b" * 32


@pytest.fixture(autouse=True)
def _fresh_state() -> Iterator[None]:
    """Memoised lists, versions, experiments and throttle counters would carry from test to test."""
    lists.clear_caches()
    experiments.clear_memo()
    buffer.reset_breaker()
    cache.clear()
    yield
    lists.clear_caches()
    experiments.clear_memo()
    cache.clear()


@pytest.fixture
def catalogue(db) -> Catalogue:
    return Catalogue()


def visitor_cookie(visitor_id: str) -> str:
    """The signed cookie value the middleware would have set for ``visitor_id``."""
    from shop_reco.testing import visitor_cookie as signed

    return signed(visitor_id)[1]


@pytest.fixture
def shopper_client():
    """A test client that is one browser: a visitor cookie, optionally logged in as ``user``."""
    from django.test import Client

    from shop_reco.conf import reco_settings

    def make(visitor_id: str, user=None, **options) -> Client:
        client = Client(HTTP_USER_AGENT=BROWSER, **options)
        client.cookies[reco_settings.VISITOR_COOKIE_NAME] = visitor_cookie(visitor_id)
        if user is not None:
            client.force_login(user)
        return client

    return make
