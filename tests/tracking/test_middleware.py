"""The middleware: visitor cookie, views after a 2xx, opt-outs, login merge, logout, sync and async."""

from __future__ import annotations

import logging

import pytest
from asgiref.sync import async_to_sync, iscoroutinefunction
from django.contrib.auth.models import AnonymousUser
from django.core.signals import request_finished
from django.db import OperationalError, close_old_connections, connection
from django.test import RequestFactory

from shop_reco.models import Event
from shop_reco.tracking.identity import read_visitor_cookie
from tests.tracking.fixtures import BROWSER

pytestmark = pytest.mark.django_db
COOKIE = "shop_reco_vid"


def visitor_of(client) -> str:
    request = RequestFactory().get("/")
    request.COOKIES[COOKIE] = client.cookies[COOKIE].value
    return read_visitor_cookie(request)


def test_first_visit_sets_a_signed_random_visitor_cookie(browser):
    response = browser.get("/")
    cookie = response.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    visitor = visitor_of(browser)
    assert len(visitor) == 32
    # Known from now on: no new cookie, same id.
    assert COOKIE not in browser.get("/").cookies
    browser.get("/product/7/")
    assert Event.objects.get().visitor_id == visitor


def test_a_tampered_cookie_is_replaced(browser):
    browser.cookies[COOKIE] = "f" * 32 + ":forged"
    response = browser.get("/")
    assert response.cookies[COOKIE].value != "f" * 32 + ":forged"


def test_product_page_records_a_view_after_a_2xx(browser):
    assert browser.get("/product/7/").status_code == 200
    event = Event.objects.get()
    assert (event.event_type, event.product_key, event.user_id) == ("view", "7", None)


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/product/10000000/"), ("post", "/product/7/"), ("get", "/"), ("get", "/nowhere/")],
)
def test_no_view_for_errors_posts_or_other_pages(browser, method, path):
    getattr(browser, method)(path)
    assert not Event.objects.exists()


def test_url_names_come_from_settings(browser, reco):
    reco(PRODUCT_VIEW_URL_NAMES=("product",))  # a bare url_name matches too
    browser.get("/product/3/")
    reco(PRODUCT_VIEW_URL_NAMES=())
    browser.get("/product/4/")
    assert list(Event.objects.values_list("product_key", flat=True)) == ["3"]


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_DNT": "1"},
        {"HTTP_SEC_GPC": "1"},
        {"HTTP_USER_AGENT": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"},
        {"HTTP_USER_AGENT": "Mozilla/5.0 HeadlessChrome/126.0"},
    ],
)
def test_do_not_track_privacy_control_and_bots_are_not_tracked(browser, headers):
    response = browser.get("/product/7/", **headers)
    assert response.status_code == 200
    assert COOKIE not in response.cookies
    assert not Event.objects.exists()


def test_do_not_track_can_be_ignored_by_setting(browser, reco):
    reco(RESPECT_DO_NOT_TRACK=False)
    browser.get("/product/7/", HTTP_DNT="1")
    assert Event.objects.count() == 1


def consent_from_cookie(request) -> bool:
    return request.COOKIES.get("consent") == "yes"


def broken_consent(request) -> bool:
    raise RuntimeError("consent service down")


def test_consent_hook_switches_tracking_per_request(browser, reco):
    reco(CONSENT_CHECK="tests.tracking.test_middleware.consent_from_cookie")
    browser.get("/product/1/")
    browser.cookies["consent"] = "yes"
    browser.get("/product/2/")
    assert list(Event.objects.values_list("product_key", flat=True)) == ["2"]


def test_a_broken_consent_hook_means_no_tracking_and_a_log(browser, reco, caplog):
    reco(CONSENT_CHECK="tests.tracking.test_middleware.broken_consent")
    with caplog.at_level(logging.ERROR, logger="shop_reco.tracking"):
        assert browser.get("/product/1/").status_code == 200
    assert not Event.objects.exists()
    assert "CONSENT_CHECK raised" in caplog.text


def test_logged_in_views_carry_the_user(browser, customer):
    browser.force_login(customer)
    browser.get("/product/5/")
    assert Event.objects.get().user == customer


def test_login_merges_the_anonymous_history_and_logout_starts_a_new_visitor(browser, customer):
    browser.get("/product/1/")
    browser.get("/cart/add/1/")
    anonymous = visitor_of(browser)
    assert Event.objects.filter(user__isnull=True).count() == 2

    browser.get("/login/alice/")
    assert Event.objects.filter(user=customer, visitor_id=anonymous).count() == 2
    browser.get("/product/2/")
    assert Event.objects.filter(user=customer).count() == 3
    assert visitor_of(browser) == anonymous  # same browser, same visitor while logged in

    response = browser.get("/logout/")
    assert COOKIE in response.cookies
    assert visitor_of(browser) != anonymous
    browser.get("/product/3/")
    after = Event.objects.get(product_key="3")
    assert after.user is None and after.visitor_id == visitor_of(browser)


def test_another_visitors_events_are_not_merged(browser, client, customer):
    client.defaults["HTTP_USER_AGENT"] = BROWSER
    other = type(browser)(HTTP_USER_AGENT=BROWSER)
    other.get("/product/9/")
    browser.get("/login/alice/")
    assert Event.objects.get(product_key="9").user is None


def test_async_mode_identifies_and_records_after_the_response():
    """The middleware under ASGI: an async chain, the view recorded when the server closes the response."""
    from django.http import HttpResponse
    from django.urls import resolve

    from shop_reco.middleware import TrackingMiddleware

    async def view_chain(request):
        request.resolver_match = resolve(request.path)
        return HttpResponse("product")

    middleware = TrackingMiddleware(view_chain)
    assert iscoroutinefunction(middleware)
    request = RequestFactory().get("/product/11/", HTTP_USER_AGENT=BROWSER)
    request.user = AnonymousUser()
    response = async_to_sync(middleware)(request)
    assert COOKIE in response.cookies
    assert not Event.objects.exists()  # not yet: the page is still being sent
    request_finished.disconnect(close_old_connections)  # as the test client does: keep the test's connection
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)
    assert Event.objects.get().product_key == "11"


def test_database_down_does_not_turn_a_product_page_into_a_500(browser, caplog):
    """The tracking INSERT fails on the real PostgreSQL connection; the page still answers."""

    def refuse(execute, sql, params, many, context):
        if "shop_reco_event" in sql:
            raise OperationalError(
                'connection to server at "127.0.0.1", port 5432 failed: Connection refused'
            )
        return execute(sql, params, many, context)

    with caplog.at_level(logging.ERROR, logger="shop_reco.tracking"), connection.execute_wrapper(refuse):
        response = browser.get("/product/7/")
    assert response.status_code == 200
    assert response.content == b"product 7"
    assert "could not store 1 event" in caplog.text
    assert not Event.objects.exists()
