"""A session cart: product id -> quantity, with shop_reco's cart_changed signal on every change."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from django.http import HttpRequest

from demo_shop.catalogue.models import Product
from shop_reco.signals import cart_changed

MAX_QUANTITY = 999


@dataclass(frozen=True)
class CartLine:
    product: Product
    quantity: int

    @property
    def unit_price(self) -> Decimal:
        return self.product.price

    @property
    def total(self) -> Decimal:
        return self.product.price * self.quantity


class SessionCart:
    session_key = "cart"
    # A random id per basket, so shop_reco can group one visit's cart events; renewed after checkout.
    ref_key = "cart_ref"

    def __init__(self, request: HttpRequest) -> None:
        self.request = request
        self.session = request.session
        self.lines: dict[str, int] = dict(self.session.get(self.session_key, {}))
        self._products: dict[str, Product] | None = None

    def __len__(self) -> int:
        return sum(self.lines.values())

    def __bool__(self) -> bool:
        return bool(self.lines)

    def __contains__(self, product: Product) -> bool:
        return str(product.pk) in self.lines

    def __iter__(self) -> Iterator[CartLine]:
        products = self._load_products()
        for key, quantity in self.lines.items():
            if key in products:
                yield CartLine(products[key], quantity)

    @property
    def basket_ref(self) -> str:
        if self.ref_key not in self.session:
            self.session[self.ref_key] = uuid.uuid4().hex
        return self.session[self.ref_key]

    @property
    def total(self) -> Decimal:
        return sum((line.total for line in self), Decimal("0"))

    def quantity_of(self, product: Product) -> int:
        return self.lines.get(str(product.pk), 0)

    def add(self, product: Product, quantity: int = 1) -> int:
        """Add to the line, capped at MAX_QUANTITY; returns the quantity actually added."""
        return self.set_quantity(product, self.quantity_of(product) + quantity)

    def remove(self, product: Product) -> int:
        """Drop the line; returns the quantity removed."""
        return -self.set_quantity(product, 0)

    def set_quantity(self, product: Product, quantity: int) -> int:
        """Set the line's quantity (0 removes it); returns the change, signalled when non-zero."""
        quantity = max(0, min(quantity, MAX_QUANTITY))
        key = str(product.pk)
        change = quantity - self.lines.get(key, 0)
        if not change:
            return 0
        if quantity:
            self.lines[key] = quantity
        else:
            del self.lines[key]
        self._save()
        cart_changed.send(
            sender=SessionCart,
            request=self.request,
            product=product,
            quantity=change,
            basket_ref=self.basket_ref,
        )
        return change

    def clear(self) -> None:
        """Empty the cart after an order; not a removal, so nothing is signalled."""
        self.lines = {}
        self.session.pop(self.ref_key, None)
        self._save()

    def _save(self) -> None:
        self.session[self.session_key] = self.lines
        self._products = None

    def _load_products(self) -> dict[str, Product]:
        # One query per request however often the cart is iterated; vanished or retired products drop out.
        if self._products is None:
            products = Product.objects.filter(pk__in=[int(k) for k in self.lines], is_active=True)
            self._products = {str(p.pk): p for p in products.select_related("category")}
        return self._products
