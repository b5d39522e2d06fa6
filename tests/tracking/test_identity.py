"""The visitor cookie: verified once per process, yet a tampered, expired or re-keyed cookie is still refused."""

from __future__ import annotations

import time

import pytest
from django.http import HttpResponse
from django.test import RequestFactory, override_settings

from shop_reco.tracking import identity
from shop_reco.tracking.identity import Visitor, read_visitor_cookie, set_visitor_cookie

COOKIE = "shop_reco_vid"
YEAR_AND_A_DAY = 366 * 86400


@pytest.fixture(autouse=True)
def _empty_memo():
    identity.forget_verified_cookies()
    yield
    identity.forget_verified_cookies()


def signed_cookie(visitor_id: str) -> str:
    response = HttpResponse()
    set_visitor_cookie(response, Visitor(visitor_id, tracking=True))
    return response.cookies[COOKIE].value


def read(cookie: str) -> str:
    request = RequestFactory().get("/")
    request.COOKIES[COOKIE] = cookie
    return read_visitor_cookie(request)


def test_a_verified_cookie_is_read_again_without_its_signature_check(monkeypatch):
    cookie = signed_cookie("a" * 32)
    assert read(cookie) == "a" * 32

    def no_check(*args, **kwargs):
        raise AssertionError("the signature was checked again")

    monkeypatch.setattr("django.http.HttpRequest.get_signed_cookie", no_check)
    assert read(cookie) == "a" * 32


def test_a_tampered_cookie_is_refused_even_after_the_genuine_one_was_memoised():
    cookie = signed_cookie("a" * 32)
    assert read(cookie) == "a" * 32
    value, stamp, signature = cookie.split(":")
    assert read(f"{'b' * 32}:{stamp}:{signature}") == ""
    assert read(f"{value}:{stamp}:{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}") == ""


def test_an_expired_cookie_is_refused_even_when_memoised(monkeypatch):
    cookie = signed_cookie("a" * 32)
    assert read(cookie) == "a" * 32
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + YEAR_AND_A_DAY)  # VISITOR_COOKIE_AGE_DAYS is 365
    assert read(cookie) == ""
    assert cookie not in identity._verified_cookies


def test_a_new_secret_key_refuses_cookies_signed_with_the_old_one():
    cookie = signed_cookie("a" * 32)
    assert read(cookie) == "a" * 32
    with override_settings(SECRET_KEY="another secret key, long enough to be taken for a real one"):
        assert read(cookie) == ""


def test_the_memo_is_bounded_and_drops_the_oldest_first(monkeypatch):
    monkeypatch.setattr(identity, "VERIFIED_COOKIES_MAX", 3)
    cookies = [signed_cookie(f"{n:032x}") for n in range(5)]
    for n, cookie in enumerate(cookies):
        assert read(cookie) == f"{n:032x}"
    assert list(identity._verified_cookies) == cookies[2:]
    assert read(cookies[0]) == f"{0:032x}"  # verified afresh, and memoised again
    assert list(identity._verified_cookies) == [*cookies[3:], cookies[0]]
