"""Signal handlers: shop signals and login/logout become tracked events and visitor merges.

Every handler logs instead of raising: a cart or a checkout must never fail because tracking did.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.http import HttpRequest

from shop_reco import signals
from shop_reco.queueing import INDEX_NEW_PRODUCT, UPDATE_SHOPPER, queue_task
from shop_reco.tracking import product_key_of, track
from shop_reco.tracking.events import order_event_id
from shop_reco.tracking.identity import get_visitor, start_new_visitor

logger = logging.getLogger("shop_reco.tracking")

SEARCH_QUERY_MAX = 200


@receiver(signals.product_viewed, dispatch_uid="shop_reco.product_viewed")
def on_product_viewed(
    sender: Any, request: HttpRequest | None = None, product: Any = None, **kwargs: Any
) -> None:
    try:
        track("view", request=request, product=product)
    except Exception:
        logger.exception("shop_reco could not record product_viewed")


@receiver(signals.cart_changed, dispatch_uid="shop_reco.cart_changed")
def on_cart_changed(
    sender: Any,
    request: HttpRequest | None = None,
    product: Any = None,
    quantity: int = 0,
    basket_ref: str = "",
    **kwargs: Any,
) -> None:
    if not quantity:
        return
    try:
        track(
            "add_to_cart" if quantity > 0 else "remove_from_cart",
            request=request,
            product=product,
            quantity=abs(quantity),
            basket_ref=basket_ref or "",
        )
    except Exception:
        logger.exception("shop_reco could not record cart_changed")


@receiver(signals.order_placed, dispatch_uid="shop_reco.order_placed")
def on_order_placed(
    sender: Any,
    request: HttpRequest | None = None,
    order_ref: str = "",
    lines: Iterable[tuple[Any, int, Any]] = (),
    user: Any = None,
    placed_at: Any = None,
    **kwargs: Any,
) -> None:
    """One purchase event per product of the order, with the id a later import of the order would give it."""
    try:
        merged: dict[str, list[Any]] = {}
        for product, quantity, unit_price in lines:
            key = product_key_of(product)
            if key in merged:
                merged[key][0] += quantity
            else:
                merged[key] = [quantity, unit_price]
        for key, (quantity, unit_price) in merged.items():
            track(
                "purchase",
                request=request,
                user=user,
                product=key,
                quantity=quantity,
                unit_price=unit_price,
                basket_ref=str(order_ref),
                client_event_id=order_event_id(str(order_ref), key),
                occurred_at=placed_at,
            )
    except Exception:
        logger.exception("shop_reco could not record order_placed for order %r", order_ref)


@receiver(signals.searched, dispatch_uid="shop_reco.searched")
def on_searched(
    sender: Any,
    request: HttpRequest | None = None,
    query: str = "",
    results: int | None = None,
    **kwargs: Any,
) -> None:
    try:
        context: dict[str, Any] = {"query": str(query)[:SEARCH_QUERY_MAX]}
        if results is not None:
            context["results"] = int(results)
        track("search", request=request, context=context)
    except Exception:
        logger.exception("shop_reco could not record searched")


@receiver(user_logged_in, dispatch_uid="shop_reco.user_logged_in")
def on_login(sender: Any, request: HttpRequest | None = None, user: Any = None, **kwargs: Any) -> None:
    """The anonymous history of this browser becomes the customer's."""
    if request is None or user is None:
        return
    from shop_reco.services.tracking import merge_visitor

    try:
        visitor = get_visitor(request)
        if visitor.tracking and visitor.id:
            merge_visitor(visitor.id, user)
    except Exception:
        logger.exception(
            "shop_reco could not merge the visitor's events into user %s", getattr(user, "pk", None)
        )


@receiver(user_logged_out, dispatch_uid="shop_reco.user_logged_out")
def on_logout(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """A new visitor id: whoever uses this browser next is not linked to the customer who left."""
    if request is not None:
        start_new_visitor(request)


# --- Incremental recompute triggers -------------------------------------------------------------------------
# Owned by the recompute pipeline (shop_reco.pipeline_tasks), kept apart from the tracking handlers above: a
# purchase or a cart change refreshes that shopper's lists in the live version, a new product gets content
# neighbours at once. The task is queued after the transaction commits, so the worker sees the new rows, and
# a broker outage is logged, never raised into the checkout.

refresh_logger = logging.getLogger("shop_reco.pipeline")


def _enqueue_after_commit(task_name: str, argument: str) -> None:
    from django.db import transaction

    def send() -> None:
        try:
            queue_task(task_name, argument)
        except Exception:
            refresh_logger.exception("shop_reco could not queue %s(%r)", task_name, argument)

    transaction.on_commit(send)


def _shopper_of(request: HttpRequest | None, user: Any = None) -> str | None:
    if user is None and request is not None:
        from shop_reco.adapters import get_adapter

        user = get_adapter().get_user(request)
    if user is not None and getattr(user, "pk", None) is not None:
        return f"u:{user.pk}"
    if request is not None:
        visitor = get_visitor(request)
        if visitor.tracking and visitor.id:
            return f"v:{visitor.id}"
    return None


@receiver(signals.order_placed, dispatch_uid="shop_reco.refresh_after_order")
def refresh_shopper_after_order(
    sender: Any, request: HttpRequest | None = None, user: Any = None, **kwargs: Any
) -> None:
    try:
        shopper = _shopper_of(request, user)
        if shopper:
            _enqueue_after_commit(UPDATE_SHOPPER, shopper)
    except Exception:
        refresh_logger.exception("shop_reco could not schedule a refresh after order_placed")


@receiver(signals.cart_changed, dispatch_uid="shop_reco.refresh_after_cart")
def refresh_shopper_after_cart(
    sender: Any, request: HttpRequest | None = None, quantity: int = 0, **kwargs: Any
) -> None:
    if not quantity:
        return
    try:
        shopper = _shopper_of(request)
        if shopper:
            _enqueue_after_commit(UPDATE_SHOPPER, shopper)
    except Exception:
        refresh_logger.exception("shop_reco could not schedule a refresh after cart_changed")


@receiver(post_save, dispatch_uid="shop_reco.index_new_product")
def index_created_product(
    sender: Any, instance: Any = None, created: bool = False, raw: bool = False, **kwargs: Any
) -> None:
    """Every model's post_save comes here; only a newly created product of the shop's product model counts."""
    if not created or raw:
        return
    from shop_reco.conf import reco_settings

    if sender._meta.label_lower != str(reco_settings.PRODUCT_MODEL).lower():
        return
    try:
        from shop_reco.adapters import get_adapter

        _enqueue_after_commit(INDEX_NEW_PRODUCT, get_adapter().product_key(instance))
    except Exception:
        refresh_logger.exception("shop_reco could not schedule indexing of a new product")
