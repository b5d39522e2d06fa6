"""Validation of beacon batches: DRF coerces the JSON types, :func:`make_row` applies the event rules."""

from __future__ import annotations

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
    context = serializers.DictField(required=False, default=dict)

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
                visitor_id=self.context["visitor_id"],
                user_id=self.context["user_id"],
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
