"""DRF endpoints."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.db import DatabaseError
from rest_framework import status
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from shop_reco.adapters import get_adapter
from shop_reco.api.serializers import (
    BeaconAcceptedSerializer,
    BeaconBatchSerializer,
    validate_beacon_event,
)
from shop_reco.api.throttling import VisitorRateThrottle
from shop_reco.conf import reco_settings
from shop_reco.tracking import record
from shop_reco.tracking.identity import get_visitor

try:
    from drf_spectacular.authentication import SessionScheme
    from drf_spectacular.types import OpenApiTypes
    from drf_spectacular.utils import OpenApiResponse, extend_schema
except ImportError:  # the schema is optional: without drf-spectacular the views work the same
    SessionScheme = None  # type: ignore[assignment,misc]

    def extend_schema(*args: Any, **kwargs: Any) -> Any:  # type: ignore[no-redef,misc]
        return lambda view: view


logger = logging.getLogger("shop_reco.tracking")

# sendBeacon sends a string body as text/plain; fetch sends application/json.
ACCEPTED_CONTENT_TYPES = frozenset({"application/json", "text/plain"})


class SessionUserWithoutCSRF(BaseAuthentication):
    """The user Django's session middleware found, without DRF's CSRF check (see :class:`BeaconView`)."""

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        user = getattr(request._request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        return user, None


def _beacon_responses() -> dict[int, Any]:
    if SessionScheme is None:
        return {}

    def error(text: str) -> Any:
        return OpenApiResponse(OpenApiTypes.OBJECT, description=text)

    return {
        202: BeaconAcceptedSerializer,
        204: OpenApiResponse(
            description="Not tracked (Do-Not-Track, Global Privacy Control, no consent, bot)."
        ),
        400: error('Each bad field named, e.g. {"events": {"3": {"event_type": ["..."]}}}.'),
        413: error("The body is larger than BEACON_MAX_BYTES."),
        415: error("Neither application/json nor text/plain."),
        429: error("Throttled: BEACON_THROTTLE_RATE per visitor."),
        503: error("Neither the buffer nor the database could take the batch; send it again later."),
    }


if SessionScheme is not None:

    class SessionUserScheme(SessionScheme):  # type: ignore[misc,valid-type]
        """Documents :class:`SessionUserWithoutCSRF` as Django's session cookie in the OpenAPI schema."""

        target_class = SessionUserWithoutCSRF  # type: ignore[assignment]
        name = "shopperSession"


@extend_schema(
    summary="Record a batch of shopper events",
    request=BeaconBatchSerializer,
    responses=_beacon_responses(),
    tags=["events"],
)
class BeaconView(APIView):
    """Batch event intake for ``beacon.js``: ``POST {"events": [...]}``, all events stored or none.

    CSRF: the endpoint is exempt, because ``navigator.sendBeacon`` cannot send the CSRF header. That is
    safe because the endpoint cannot act for anyone but the browser that calls it: the shopper is always the
    visitor of the signed cookie and the session's user, never an id in the payload (unknown fields are
    rejected); the visitor cookie is ``SameSite=Lax`` (and Django's session cookie is by default), so a
    cross-site POST arrives without them and can only feed a fresh anonymous visitor, which any script could
    do anyway and which the throttle bounds. Only JSON bodies are read (``application/json`` or
    ``text/plain``); urlencoded and multipart forms are refused.
    Purchases cannot be sent from the browser, and ``client_event_id`` must be a UUID, so a client cannot
    pre-empt the ids of server-side events.

    Responses: 202 ``{"accepted": n}``; 204 when the request is not tracked (Do-Not-Track, no consent, bot);
    400 naming each bad field, e.g. ``{"events": {"3": {"event_type": ["Unknown event type 'foo'."]}}}``;
    413 for a body over ``BEACON_MAX_BYTES``; 415 for other content types; 429 when throttled; 503 when
    neither the buffer nor the database could take the batch.
    """

    authentication_classes = (SessionUserWithoutCSRF,)
    permission_classes = ()
    throttle_classes = (VisitorRateThrottle,)

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, DatabaseError):
            # The database is unreachable (a restart, say): a 503 tells the browser to send the batch again.
            logger.warning("shop_reco beacon: the database is unreachable; answering 503", exc_info=True)
            return Response(
                {"detail": "The events could not be stored; send them again later."},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
                headers={"Retry-After": "5"},
            )
        return super().handle_exception(exc)

    def post(self, request: Request) -> Response:
        django_request = request._request
        if django_request.content_type not in ACCEPTED_CONTENT_TYPES:
            return Response(
                {
                    "body": [
                        f"Send JSON as application/json or text/plain, not {django_request.content_type!r}."
                    ]
                },
                status=status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            )
        limit = reco_settings.BEACON_MAX_BYTES
        declared = django_request.META.get("CONTENT_LENGTH") or "0"
        if not declared.isdigit() or int(declared) > limit:
            return _too_large(limit)
        body = django_request.body
        if len(body) > limit:
            return _too_large(limit)
        visitor = get_visitor(django_request)
        if not visitor.tracking:
            return Response(status=status.HTTP_204_NO_CONTENT)
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # nesting deeper than Python parses
            return _bad({"body": [f"Malformed JSON: {exc}."]})
        if not isinstance(payload, dict):
            return _bad({"body": ['Expected a JSON object: {"events": [...]}.']})
        events = payload.get("events")
        if events is None:
            return _bad({"events": ["This field is required."]})
        if not isinstance(events, list):
            return _bad({"events": ["Expected a list of events."]})
        if not events:
            return _bad({"events": ["This list may not be empty."]})
        if len(events) > reco_settings.BEACON_MAX_EVENTS:
            return _bad(
                {
                    "events": [
                        f"At most {reco_settings.BEACON_MAX_EVENTS} events per batch, got {len(events)}."
                    ]
                }
            )

        user = get_adapter().get_user(django_request)  # DRF set it from SessionUserWithoutCSRF
        visitor_id, user_id = visitor.id, (user.pk if user is not None else None)
        errors: dict[str, Any] = {}
        rows: list[tuple[int, dict[str, Any]]] = []
        for index, item in enumerate(events):
            row, problems = validate_beacon_event(item, visitor_id=visitor_id, user_id=user_id)
            if row is not None:
                rows.append((index, row))
            else:
                errors[str(index)] = problems
        # One query for the whole batch.
        keys = {row["product_key"] for _, row in rows if row["product_key"]}
        known = get_adapter().known_product_keys(keys) if keys else set()
        for index, row in rows:
            if row["product_key"] and row["product_key"] not in known:
                errors[str(index)] = {"product_key": [f"Unknown product {row['product_key']!r}."]}
        if errors:
            return _bad({"events": dict(sorted(errors.items(), key=lambda item: int(item[0])))})

        if not record([row for _, row in rows], verify_users=False):
            return Response(
                {"detail": "The events could not be stored; send them again later."},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
        return Response({"accepted": len(rows)}, status=status.HTTP_202_ACCEPTED)


def _bad(errors: dict[str, Any]) -> Response:
    return Response(errors, status=status.HTTP_400_BAD_REQUEST)


def _too_large(limit: int) -> Response:
    return Response(
        {"body": [f"The batch is larger than {limit} bytes; send fewer events per request."]},
        status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    )
