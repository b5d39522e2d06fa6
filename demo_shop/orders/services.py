"""Placing an order from a cart: one transaction, and shop_reco hears of it only once it is committed."""

from __future__ import annotations

import uuid

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest

from demo_shop.cart.cart import SessionCart
from demo_shop.catalogue.models import Product
from demo_shop.orders.models import Order, OrderLine
from shop_reco.signals import order_placed


class CheckoutError(Exception):
    """The cart cannot be bought as it is; the message is for the shopper."""


def place_order(request: HttpRequest, cart: SessionCart, *, email: str) -> Order:
    """Turn the cart into an order, decrement stock and empty the cart; all or nothing."""
    user = request.user if isinstance(request.user, get_user_model()) else None
    wanted = {line.product.pk: line.quantity for line in cart}
    if not wanted:
        raise CheckoutError("Your cart is empty.")
    with transaction.atomic():
        # Lock the rows so two checkouts cannot both take the last item.
        products = Product.objects.select_for_update().filter(pk__in=wanted, is_active=True).order_by("pk")
        by_pk = {product.pk: product for product in products}
        short = [
            by_pk[pk].name.title() if pk in by_pk else f"product #{pk}"
            for pk, qty in wanted.items()
            if pk not in by_pk or by_pk[pk].stock < qty
        ]
        if short:
            raise CheckoutError(f"Not enough stock for: {', '.join(short)}. Please adjust your cart.")
        # Demo orders are numbered "W<id>", apart from the imported invoice numbers; the id comes first.
        order = Order.objects.create(number=f"tmp-{uuid.uuid4().hex[:28]}", user=user, email=email)
        order.number = f"W{order.pk}"
        order.save(update_fields=["number"])
        lines = [
            OrderLine(order=order, product=by_pk[pk], quantity=qty, unit_price=by_pk[pk].price)
            for pk, qty in wanted.items()
        ]
        OrderLine.objects.bulk_create(lines)
        for pk, qty in wanted.items():
            Product.objects.filter(pk=pk).update(stock=F("stock") - qty)
        transaction.on_commit(
            lambda: order_placed.send(
                sender=Order,
                request=request,
                order_ref=order.number,
                lines=[(line.product, line.quantity, line.unit_price) for line in lines],
                user=order.user,
                placed_at=order.placed_at,
            )
        )
    cart.clear()
    return order
