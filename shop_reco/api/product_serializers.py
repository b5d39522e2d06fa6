"""Products in API responses: ``SHOP_RECO["PRODUCT_SERIALIZER"]`` names the class; default: the adapter's."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from rest_framework import serializers

from shop_reco.adapters import BaseShopAdapter, get_adapter
from shop_reco.conf import import_setting, reco_settings


class AdapterProductSerializer(serializers.Serializer):
    """key, name, url, image, price, category: everything from the shop's adapter, no extra query."""

    key = serializers.CharField(read_only=True)
    name = serializers.CharField(read_only=True)
    url = serializers.CharField(read_only=True, allow_blank=True)
    image = serializers.CharField(read_only=True, allow_blank=True)
    price = serializers.DecimalField(read_only=True, max_digits=12, decimal_places=2, allow_null=True)
    category = serializers.CharField(read_only=True, allow_blank=True)

    def to_representation(self, instance: Any) -> dict[str, Any]:
        # Built by hand: this runs for every item of every response, and field machinery costs more than
        # the rest of the read path together.
        adapter: BaseShopAdapter = self.context.get("adapter") or get_adapter()
        price = adapter.product_price(instance)
        return {
            "key": adapter.product_key(instance),
            "name": adapter.product_name(instance),
            "url": adapter.product_url(instance),
            "image": adapter.product_image_url(instance),
            "price": f"{price:.2f}" if price is not None else None,
            "category": adapter.product_category(instance),
        }


@lru_cache(maxsize=8)
def _import(path: str) -> type[serializers.BaseSerializer]:
    return import_setting("PRODUCT_SERIALIZER", path)


def product_serializer_class() -> type[serializers.BaseSerializer]:
    value = reco_settings.PRODUCT_SERIALIZER
    return _import(value) if isinstance(value, str) else value
