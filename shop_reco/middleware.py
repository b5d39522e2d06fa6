"""Tracking middleware: identifies the visitor and records product views, nothing heavier.

Put it after ``SessionMiddleware`` and ``AuthenticationMiddleware`` (system check ``shop_reco.E006``). It
works under WSGI and ASGI alike (the pattern of django-cors-headers). Per request it reads one signed cookie
and a few headers; for a 2xx ``GET`` of a URL named in ``PRODUCT_VIEW_URL_NAMES`` it records a ``view``
event once the response has been sent (one Redis append with the buffer; one INSERT without it). A tracking
failure is logged, never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponseBase

from shop_reco.conf import reco_settings
from shop_reco.tracking import DEFERRED_ATTR, record_deferred, track_later
from shop_reco.tracking.identity import get_visitor, set_visitor_cookie

logger = logging.getLogger("shop_reco.tracking")


class TrackingMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        get_visitor(request)
        setattr(request, DEFERRED_ATTR, [])  # events of this request (impressions), stored after it
        response = self.get_response(request)
        product_key = viewed_product(request, response)
        if product_key is not None or getattr(request, DEFERRED_ATTR, None):
            record_after_response(request, response, product_key)
        finish_response(request, response)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        if reco_settings.CONSENT_CHECK is not None:
            # The shop's hook may read the session, which is sync-only.
            await sync_to_async(get_visitor)(request)
        else:
            get_visitor(request)
        setattr(request, DEFERRED_ATTR, [])
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response  # type: ignore[assignment]
        response = await get_response(request)
        product_key = viewed_product(request, response)
        if product_key is not None or getattr(request, DEFERRED_ATTR, None):
            record_after_response(request, response, product_key)  # Django's ASGI handler closes in a thread
        finish_response(request, response)
        return response


def viewed_product(request: HttpRequest, response: HttpResponseBase) -> str | None:
    """The product key when this response showed a product page successfully, else None."""
    if not 200 <= response.status_code < 300 or request.method != "GET":
        return None
    visitor = getattr(request, "shop_reco_visitor", None)
    if visitor is None or not visitor.tracking:
        return None
    match = request.resolver_match
    if match is None:
        return None
    names = reco_settings.PRODUCT_VIEW_URL_NAMES
    if match.view_name not in names and match.url_name not in names:
        return None
    key = match.kwargs.get(reco_settings.PRODUCT_VIEW_URL_KWARG)
    return None if key is None else str(key)


def record_after_response(request: HttpRequest, response: HttpResponseBase, product_key: str | None) -> None:
    """Record the view, and the request's deferred events (impressions), when the server closes the response,
    i.e. after the shopper has the page: all of them in one write.

    WSGI servers and Django's ASGI handler call ``response.close()`` once the body is sent, so the write (one
    Redis append, or one INSERT) never delays the page. Django keeps no public hook for this; where the
    private ``_resource_closers`` list is missing, the events are recorded at once.
    """
    closers = getattr(response, "_resource_closers", None)
    if isinstance(closers, list):
        closers.append(partial(record_view, request, product_key))
    else:  # pragma: no cover - a future Django without the list
        record_view(request, product_key)


def record_view(request: HttpRequest, product_key: str | None) -> None:
    if product_key is not None:
        try:
            track_later("view", request=request, product=product_key)
        except Exception:  # a bad key in the URL, say: log it, show the page
            logger.exception("shop_reco could not record a view of product %r", product_key)
    try:
        record_deferred(request)
    except Exception:  # tracking must not fail the response
        logger.exception("shop_reco could not record this request's events")


def finish_response(request: HttpRequest, response: HttpResponseBase) -> None:
    """Set the visitor cookie when the id is new (first visit, or a logout in this request)."""
    visitor = getattr(request, "shop_reco_visitor", None)
    if visitor is not None and visitor.is_new and visitor.tracking:
        set_visitor_cookie(response, visitor)  # type: ignore[arg-type]
