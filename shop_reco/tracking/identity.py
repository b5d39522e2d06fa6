"""Who the visitor is, and whether this request may be tracked at all.

The visitor id is random (``uuid4().hex``) in a signed cookie: it names a browser, not a person, and carries
no personal data. It is kept when the shopper logs in (their anonymous history is merged into the account) and
replaced when they log out, so the next person at the same browser starts fresh.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponse

from shop_reco.conf import reco_settings

logger = logging.getLogger("shop_reco.tracking")

COOKIE_SALT = "shop_reco.visitor"
_VISITOR_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(slots=True)
class Visitor:
    """Set on each request as ``request.shop_reco_visitor`` by the middleware."""

    id: str
    # False when the request must not be tracked; ``reason`` then says why ("dnt", "gpc", "bot", "consent").
    tracking: bool
    # True when the id was minted in this request and the cookie still has to be set.
    is_new: bool = False
    reason: str = ""


def new_visitor_id() -> str:
    return uuid.uuid4().hex


def opt_out_reason(request: HttpRequest) -> str:
    """Why this request is not tracked, or "" when it may be. Cheap checks first, the shop's hook last."""
    meta = request.META
    if reco_settings.RESPECT_DO_NOT_TRACK:
        if meta.get("HTTP_DNT") == "1":
            return "dnt"
        if meta.get("HTTP_SEC_GPC") == "1":
            return "gpc"
    user_agent = meta.get("HTTP_USER_AGENT", "").lower()
    if user_agent:
        for pattern in _lowercase_bot_patterns():
            if pattern in user_agent:
                return "bot"
    consent = reco_settings.CONSENT_CHECK
    if consent is not None:
        try:
            allowed = bool(consent(request))
        except Exception:  # a broken hook must not break the page; without an answer there is no consent
            logger.exception("SHOP_RECO CONSENT_CHECK raised; not tracking this request")
            allowed = False
        if not allowed:
            return "consent"
    return ""


# BOT_USER_AGENT_PATTERNS lowercased once, not on every request; the setting's own object says when it changed.
_bot_patterns: tuple[object, tuple[str, ...]] = (None, ())


def _lowercase_bot_patterns() -> tuple[str, ...]:
    global _bot_patterns
    patterns = reco_settings.BOT_USER_AGENT_PATTERNS
    if _bot_patterns[0] is not patterns:
        _bot_patterns = (patterns, tuple(pattern.lower() for pattern in patterns))
    return _bot_patterns[1]


# Cookies this process verified lately: raw value -> (visitor id, when it was signed). A returning visitor's
# cookie then costs a dict lookup and the age check instead of the HMACs (tens of microseconds a request).
# Only verified values get in, so a forged cookie always meets the full check.
VERIFIED_COOKIES_MAX = 10_000
_verified_cookies: dict[str, tuple[str, int]] = {}
_verified_cookies_lock = threading.Lock()


def read_visitor_cookie(request: HttpRequest) -> str:
    """The visitor id from a validly signed cookie no older than the cookie age, or ""."""
    name = reco_settings.VISITOR_COOKIE_NAME
    raw = request.COOKIES.get(name)
    if not raw:
        return ""
    max_age = reco_settings.VISITOR_COOKIE_AGE_DAYS * 86400
    verified = _verified_cookies.get(raw)
    if verified is not None:
        visitor_id, signed_at = verified
        if time.time() - signed_at <= max_age:  # the same test as TimestampSigner's
            return visitor_id
        with _verified_cookies_lock:  # writers hold the lock, so eviction never iterates a changing dict
            _verified_cookies.pop(raw, None)
    value = request.get_signed_cookie(name, default=None, salt=COOKIE_SALT, max_age=max_age)
    if not value or not _VISITOR_ID.match(value):
        return ""
    stamp = _signed_at(raw)
    if stamp is not None:
        with _verified_cookies_lock:
            if len(_verified_cookies) >= VERIFIED_COOKIES_MAX:
                del _verified_cookies[next(iter(_verified_cookies))]  # the oldest
            _verified_cookies[raw] = (value, stamp)
    return value


def _signed_at(cookie: str) -> int | None:
    """When Django's TimestampSigner signed this ("value:timestamp:signature") cookie; None for another signer."""
    if settings.SIGNING_BACKEND != "django.core.signing.TimestampSigner":
        return None
    try:
        return int(signing.b62_decode(cookie.rsplit(":", 2)[1]))
    except (IndexError, ValueError):
        return None


def forget_verified_cookies(**kwargs: Any) -> None:
    """A setting changed (the secret key, the cookie's name, ...): verify every cookie afresh.

    In production such a change comes with a restart, which empties the memo anyway; tests override them.
    """
    with _verified_cookies_lock:
        _verified_cookies.clear()


setting_changed.connect(forget_verified_cookies)


def identify(request: HttpRequest) -> Visitor:
    reason = opt_out_reason(request)
    visitor_id = read_visitor_cookie(request)
    if reason:
        # No new id and no cookie for a shopper who opted out or for a bot.
        return Visitor(visitor_id, tracking=False, reason=reason)
    if visitor_id:
        return Visitor(visitor_id, tracking=True)
    return Visitor(new_visitor_id(), tracking=True, is_new=True)


def get_visitor(request: HttpRequest) -> Visitor:
    """The request's visitor, identified once (by the middleware, or here when it is not installed)."""
    visitor = getattr(request, "shop_reco_visitor", None)
    if visitor is None:
        visitor = identify(request)
        request.shop_reco_visitor = visitor  # type: ignore[attr-defined]
    return visitor


def start_new_visitor(request: HttpRequest) -> Visitor:
    """After logout: a fresh id, so the next shopper at this browser is not linked to the last one."""
    current = get_visitor(request)
    visitor = Visitor(
        new_visitor_id(), tracking=current.tracking, is_new=current.tracking, reason=current.reason
    )
    request.shop_reco_visitor = visitor  # type: ignore[attr-defined]
    return visitor


def set_visitor_cookie(response: HttpResponse, visitor: Visitor) -> None:
    response.set_signed_cookie(
        reco_settings.VISITOR_COOKIE_NAME,
        visitor.id,
        salt=COOKIE_SALT,
        max_age=reco_settings.VISITOR_COOKIE_AGE_DAYS * 86400,
        secure=reco_settings.VISITOR_COOKIE_SECURE,
        httponly=True,  # the beacon never reads it; the server does
        samesite="Lax",  # not sent on cross-site POSTs: another site cannot post events as this shopper
    )
