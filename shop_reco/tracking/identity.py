"""Who the visitor is, and whether this request may be tracked at all.

The visitor id is random (``uuid4().hex``) in a signed cookie: it names a browser, not a person, and carries
no personal data. It is kept when the shopper logs in (their anonymous history is merged into the account) and
replaced when they log out, so the next person at the same browser starts fresh.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass

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
        for pattern in reco_settings.BOT_USER_AGENT_PATTERNS:
            if pattern.lower() in user_agent:
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


def read_visitor_cookie(request: HttpRequest) -> str:
    """The visitor id from a validly signed cookie, or ""."""
    value = request.get_signed_cookie(
        reco_settings.VISITOR_COOKIE_NAME,
        default=None,
        salt=COOKIE_SALT,
        max_age=reco_settings.VISITOR_COOKIE_AGE_DAYS * 86400,
    )
    return value if value and _VISITOR_ID.match(value) else ""


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
