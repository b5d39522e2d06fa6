"""Validation of beacon batches: DRF coerces the JSON types, :func:`make_row` applies the event rules."""

from __future__ import annotations

import uuid
from typing import Any

from rest_framework import serializers

from shop_reco.conf import reco_settings
from shop_reco.tracking.events import InvalidEvent, make_row

# Purchases come from the server (order_placed, import_orders): a browser can claim anything.
SERVER_ONLY_EVENT_TYPES = frozenset({"purchase"})
# Event types that are about one product and so must name one.
PRODUCT_EVENT_TYPES = frozenset(
    {"view", "add_to_cart", "remove_from_cart", "purchase", "wishlist", "rec_click"}
)


class BeaconEventSerializer(serializers.Serializer):
    """One event from the browser. The shopper is never in the payload: it is the request's visitor/user."""

    event_type = serializers.CharField(max_length=32)
    product_key = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    quantity = serializers.IntegerField(required=False, default=1, min_value=-1000, max_value=1000)
    unit_price = serializers.DecimalField(
        max_digits=12, decimal_places=2, required=False, allow_null=True, default=None
    )
    basket_ref = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    slot = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    token = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    # A UUID, so a browser cannot pre-empt the deterministic ids of server events (e.g. "order:...").
    client_event_id = serializers.UUIDField(required=False, allow_null=True, default=None)
    # DRF's metaclass moves declared fields out of the class, so self.context stays the serializer context.
    context = serializers.DictField(required=False, default=dict)  # type: ignore[assignment]

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {
                        name: ["Unknown field; the shopper and the time are taken from the request."]
                        for name in unknown
                    }
                )
        return super().to_internal_value(data)

    def validate_event_type(self, value: str) -> str:
        if value in SERVER_ONLY_EVENT_TYPES:
            raise serializers.ValidationError(f"Event type {value!r} cannot be sent from the browser.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["event_type"] in PRODUCT_EVENT_TYPES and not attrs["product_key"]:
            raise serializers.ValidationError({"product_key": ["This event type needs a product_key."]})
        client_id = attrs["client_event_id"]
        try:
            return make_row(
                attrs["event_type"],
                visitor_id=self.context["visitor_id"],  # type: ignore[index]
                user_id=self.context["user_id"],  # type: ignore[index]
                product_key=attrs["product_key"],
                quantity=attrs["quantity"],
                unit_price=attrs["unit_price"],
                basket_ref=attrs["basket_ref"],
                slot=attrs["slot"],
                token=attrs["token"],
                client_event_id=str(client_id) if client_id is not None else None,
                context=attrs["context"],
            )
        except InvalidEvent as exc:
            raise serializers.ValidationError(exc.errors) from exc


class BeaconBatchSerializer(serializers.Serializer):
    """The beacon's request body, for the OpenAPI schema (the view validates each event on its own)."""

    def get_fields(self) -> dict[str, serializers.Field]:
        # The bound is read when the schema is generated, so it follows the settings.
        return {
            "events": BeaconEventSerializer(  # type: ignore[call-arg]  # ListSerializer's arguments
                many=True,
                min_length=1,
                max_length=int(reco_settings.BEACON_MAX_EVENTS),
                help_text="1 to BEACON_MAX_EVENTS events.",
            )
        }


class BeaconAcceptedSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Events stored (or buffered) from this batch.")


_FIELD_NAMES = frozenset(BeaconEventSerializer._declared_fields)
# Text fields and the max_length their serializer field declares.
_TEXT_FIELDS = (("product_key", 64), ("basket_ref", 64), ("slot", 64), ("token", 64))


def validate_beacon_event(
    data: Any, *, visitor_id: str, user_id: Any
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """One beacon event as ``(row, None)``, or ``(None, errors)`` in the serializer's error format.

    Well-formed events (the browser script's own output) take a plain-Python path that yields exactly the row
    the serializer would; anything it is not sure of goes through :class:`BeaconEventSerializer`, which
    then also words the errors. A DRF serializer per event was most of the endpoint's CPU time.
    """
    row = _plain_row(data, visitor_id, user_id)
    if row is not None:
        return row, None
    serializer = BeaconEventSerializer(data=data, context={"visitor_id": visitor_id, "user_id": user_id})
    if serializer.is_valid():
        return serializer.validated_data, None
    return None, serializer.errors


def _plain_row(data: Any, visitor_id: str, user_id: Any) -> dict[str, Any] | None:
    """The serializer's result for a plainly valid event, or None to let the serializer decide."""
    if type(data) is not dict or not _FIELD_NAMES.issuperset(data):
        return None
    event_type = data.get("event_type")
    if type(event_type) is not str:
        return None
    event_type = event_type.strip()  # CharField trims
    if not event_type or len(event_type) > 32 or event_type in SERVER_ONLY_EVENT_TYPES:
        return None
    text: dict[str, Any] = {}
    for name, max_length in _TEXT_FIELDS:
        value = data.get(name, "")
        if type(value) is not str:
            return None
        value = value.strip()
        # Non-ASCII could hold surrogates, which CharField refuses; NUL too: let the serializer word it.
        if len(value) > max_length or not value.isascii() or "\x00" in value:
            return None
        text[name] = value
    quantity = data.get("quantity", 1)
    if type(quantity) is not int or not -1000 <= quantity <= 1000:
        return None
    if data.get("unit_price") is not None:
        return None  # DecimalField's rounding and messages: the serializer's job
    client_id = data.get("client_event_id")
    if client_id is not None:
        if type(client_id) is not str:
            return None
        try:
            client_id = str(uuid.UUID(hex=client_id))
        except ValueError:
            return None
    context = data.get("context", {})
    if type(context) is not dict:
        return None
    if event_type in PRODUCT_EVENT_TYPES and not text["product_key"]:
        return None
    try:
        return make_row(
            event_type,
            visitor_id=visitor_id,
            user_id=user_id,
            quantity=quantity,
            client_event_id=client_id,
            context=dict(context),
            **text,
        )
    except InvalidEvent:
        return None
