"""The one way events get in: :func:`track` for one event, :func:`record` for validated rows.

The middleware, the signal receivers, the beacon endpoint and the import commands all end here, so opt-outs,
validation, buffering and the fallbacks behave the same whichever way an event arrives.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import DatabaseError, models
from django.http import HttpRequest

from shop_reco.adapters import get_adapter
from shop_reco.tracking import buffer, spool, store
from shop_reco.tracking.events import InvalidEvent, make_row, order_event_id
from shop_reco.tracking.identity import Visitor, get_visitor

__all__ = [
    "InvalidEvent",
    "Visitor",
    "get_visitor",
    "order_event_id",
    "product_key_of",
    "record",
    "record_deferred",
    "track",
    "track_later",
]

logger = logging.getLogger("shop_reco.tracking")


def product_key_of(product: Any) -> str:
    """A product instance or key, as the key string events store."""
    if product is None:
        return ""
    if isinstance(product, models.Model):
        return get_adapter().product_key(product)
    return str(product)


def track(
    event_type: str,
    *,
    request: HttpRequest | None = None,
    product: Any = None,
    visitor_id: str | None = None,
    user: Any = None,
    quantity: int = 1,
    unit_price: Decimal | float | str | None = None,
    basket_ref: str = "",
    slot: str = "",
    token: str = "",
    client_event_id: str | None = None,
    context: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> str | None:
    """Record one shopper event; returns its ``client_event_id``, or None when it was not recorded.

    With ``request`` the visitor, the logged-in user and the shopper's choices (Do-Not-Track, Global Privacy
    Control, the consent hook, bot user agents) come from the request; an opted-out request records nothing.
    Without one, pass ``visitor_id`` and/or ``user`` (imports, background jobs). ``product`` is a product
    instance or its key. Invalid arguments raise :class:`InvalidEvent` (a ``ValueError``); a storage failure
    is logged and returns None, never raises: tracking must not break a page.
    """
    row = _request_row(
        event_type,
        request=request,
        product=product,
        visitor_id=visitor_id,
        user=user,
        quantity=quantity,
        unit_price=unit_price,
        basket_ref=basket_ref,
        slot=slot,
        token=token,
        client_event_id=client_event_id,
        context=context,
        occurred_at=occurred_at,
    )
    if row is None:
        return None
    return row["client_event_id"] if record([row], verify_users=False) else None


# Set on a request by the middleware: rows queued by track_later(), stored once the response is sent.
DEFERRED_ATTR = "_shop_reco_deferred_events"


def track_later(event_type: str, *, request: HttpRequest, **fields: Any) -> str | None:
    """:func:`track`, but stored after the response, with the request's other events in one buffer append.

    Validation and the opt-out checks happen now (an invalid event still raises). Without the middleware
    (nothing collects the request's events) the event is stored at once, as :func:`track` does.
    """
    pending = getattr(request, DEFERRED_ATTR, None)
    if pending is None:
        return track(event_type, request=request, **fields)
    row = _request_row(event_type, request=request, **fields)
    if row is None:
        return None
    pending.append(row)
    return row["client_event_id"]


def record_deferred(request: HttpRequest) -> bool:
    """Store the rows :func:`track_later` queued on ``request`` (one append); the middleware calls it."""
    rows = getattr(request, DEFERRED_ATTR, None)
    if not rows:
        return True
    setattr(request, DEFERRED_ATTR, [])
    return spool.append(rows) or record(rows, verify_users=False)


def _request_row(
    event_type: str,
    *,
    request: HttpRequest | None = None,
    product: Any = None,
    visitor_id: str | None = None,
    user: Any = None,
    **fields: Any,
) -> dict[str, Any] | None:
    """The validated row, with the shopper taken from the request; None when the request opted out."""
    if request is not None:
        visitor = get_visitor(request)
        if not visitor.tracking:
            return None
        if visitor_id is None:
            visitor_id = visitor.id
        if user is None:
            user = get_adapter().get_user(request)
    return make_row(
        event_type,
        visitor_id=visitor_id or "",
        user_id=user.pk if user is not None else None,
        product_key=product_key_of(product),
        **fields,
    )


def record(rows: Sequence[dict[str, Any]], *, verify_users: bool = True) -> bool:
    """Store validated rows all-or-nothing: into the buffer, else straight into the database.

    Returns False (and logs) only when neither could take them.
    """
    if not rows:
        return True
    if buffer.push(rows):
        return True
    try:
        store.write_rows(rows, verify_users=verify_users, exact=False)
    except DatabaseError:
        logger.exception(
            "shop_reco could not store %d event(s): the database refused or is unreachable", len(rows)
        )
        return False
    return True
