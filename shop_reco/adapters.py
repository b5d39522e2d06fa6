"""The one place where shop_reco asks the shop about its own data.

A shop subclasses :class:`DefaultShopAdapter` (or :class:`BaseShopAdapter`) and names it in
``SHOP_RECO["ADAPTER"]``. Product keys are always strings (the product's primary key as text), so events and
scores work with any primary-key type.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import models
from django.http import HttpRequest

from shop_reco.conf import reco_settings


@dataclass(frozen=True)
class CatalogueRow:
    """What the content model learns from one product."""

    key: str
    text: str
    attributes: dict[str, str] = field(default_factory=dict)
    category: str = ""
    price: float | None = None


def get_product_model() -> type[models.Model]:
    label = reco_settings.PRODUCT_MODEL
    if not isinstance(label, str) or label.count(".") != 1:
        raise ImproperlyConfigured('SHOP_RECO["PRODUCT_MODEL"] must be "app_label.ModelName".')
    try:
        return apps.get_model(label, require_ready=False)
    except LookupError as exc:
        raise ImproperlyConfigured(
            f'SHOP_RECO["PRODUCT_MODEL"] = {label!r} is not an installed model.'
        ) from exc


class BaseShopAdapter:
    """Everything shop-specific. Override what your catalogue does differently."""

    def product_model(self) -> type[models.Model]:
        return get_product_model()

    def product_key(self, product: models.Model) -> str:
        return str(product.pk)

    def all_products(self) -> models.QuerySet:
        return self.product_model()._default_manager.all()

    def available_products(self) -> models.QuerySet:
        """Products that may be recommended right now (in stock, published)."""
        return self.all_products()

    def products_by_key(self, keys: Iterable[str], *, available_only: bool = False) -> dict[str, Any]:
        keys = [key for key in keys if key]
        if not keys:
            return {}
        queryset = self.available_products() if available_only else self.all_products()
        pk_field = self.product_model()._meta.pk
        assert pk_field is not None
        clean_keys = []
        for key in keys:
            try:
                clean_keys.append(pk_field.to_python(key))
            except Exception:  # a malformed key is simply not a product
                continue
        return {self.product_key(p): p for p in queryset.filter(pk__in=clean_keys)}

    def product_exists(self, key: str) -> bool:
        return bool(self.products_by_key([key]))

    def known_product_keys(self, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` name a product (the beacon's check): the keys of :meth:`products_by_key`.

        While keys are primary keys (neither method overridden) it reads only the keys, not whole rows.
        """
        cls = type(self)
        if cls.products_by_key is not BaseShopAdapter.products_by_key or (
            cls.product_key is not BaseShopAdapter.product_key
        ):
            return set(self.products_by_key(keys))
        pk_field = self.product_model()._meta.pk
        assert pk_field is not None
        clean_keys = []
        for key in keys:
            if key:
                try:
                    clean_keys.append(pk_field.to_python(key))
                except Exception:  # a malformed key is simply not a product
                    continue
        if not clean_keys:
            return set()
        found = self.all_products().filter(pk__in=clean_keys).values_list("pk", flat=True)
        return {str(pk) for pk in found}

    def product_text(self, product: models.Model) -> str:
        raise NotImplementedError

    def product_attributes(self, product: models.Model) -> dict[str, str]:
        return {}

    def product_category(self, product: models.Model) -> str:
        return ""

    def product_price(self, product: models.Model) -> Decimal | None:
        return None

    def product_url(self, product: models.Model) -> str:
        get_url = getattr(product, "get_absolute_url", None)
        return get_url() if callable(get_url) else ""

    def product_image_url(self, product: models.Model) -> str:
        return ""

    def product_name(self, product: models.Model) -> str:
        return str(product)

    def catalogue_rows(self) -> Iterator[CatalogueRow]:
        """The whole catalogue for the content model, streamed."""
        for product in self.all_products().iterator(chunk_size=2000):
            price = self.product_price(product)
            yield CatalogueRow(
                key=self.product_key(product),
                text=self.product_text(product),
                attributes=self.product_attributes(product),
                category=self.product_category(product),
                price=float(price) if price is not None else None,
            )

    def category_keys(self, category: str) -> models.QuerySet:
        """Products of one category, for per-category rules."""
        return self.all_products().none()

    def get_user(self, request: HttpRequest) -> Any | None:
        user = getattr(request, "user", None)
        return user if user is not None and user.is_authenticated else None

    def cart_product_keys(self, request: HttpRequest) -> list[str]:
        """Keys of the products in this request's cart: every slot of the page leaves them out.

        Cheap, please: it runs once per page that shows a slot. Default: no cart.
        """
        return []


class DefaultShopAdapter(BaseShopAdapter):
    """Works from plain model fields, by their usual names; override the names in a subclass."""

    name_fields = ("name", "title")
    text_fields = ("name", "title", "description")
    category_field = "category"
    price_field = "price"
    stock_field = "stock"
    active_field = "is_active"
    image_field = "image_url"

    def _has_field(self, name: str) -> bool:
        try:
            self.product_model()._meta.get_field(name)
        except FieldDoesNotExist:
            return False
        return True

    def available_products(self) -> models.QuerySet:
        queryset = self.all_products()
        if self._has_field(self.stock_field):
            queryset = queryset.filter(**{f"{self.stock_field}__gt": 0})
        if self._has_field(self.active_field):
            queryset = queryset.filter(**{self.active_field: True})
        return queryset

    def product_name(self, product: models.Model) -> str:
        for name in self.name_fields:
            value = getattr(product, name, None)
            if value:
                return str(value)
        return str(product)

    def product_text(self, product: models.Model) -> str:
        parts = (getattr(product, name, "") for name in self.text_fields)
        return " ".join(str(part) for part in parts if part)

    def product_category(self, product: models.Model) -> str:
        value = getattr(product, self.category_field, None)
        return str(value) if value is not None else ""

    def product_attributes(self, product: models.Model) -> dict[str, str]:
        category = self.product_category(product)
        return {"category": category} if category else {}

    def product_price(self, product: models.Model) -> Decimal | None:
        value = getattr(product, self.price_field, None)
        return Decimal(str(value)) if value is not None else None

    def product_image_url(self, product: models.Model) -> str:
        value: Any = getattr(product, self.image_field, "")
        if hasattr(value, "url"):  # an ImageField/FileField
            return value.url if value else ""
        return str(value or "")

    def category_keys(self, category: str) -> models.QuerySet:
        if not self._has_field(self.category_field):
            return self.all_products().none()
        field_obj = self.product_model()._meta.get_field(self.category_field)
        lookup = f"{self.category_field}__name" if field_obj.is_relation else self.category_field
        related = field_obj.related_model
        if field_obj.is_relation and related is not None and not _has_name(related):
            lookup = f"{self.category_field}__pk"
        return self.all_products().filter(**{lookup: category})


def _has_name(model: type[models.Model]) -> bool:
    try:
        model._meta.get_field("name")
    except FieldDoesNotExist:
        return False
    return True


def get_adapter() -> BaseShopAdapter:
    adapter_class = reco_settings.ADAPTER
    return adapter_class()
