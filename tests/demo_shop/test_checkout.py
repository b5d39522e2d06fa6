from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from demo_shop.cart.cart import SessionCart
from demo_shop.catalogue.models import Product
from demo_shop.orders.models import Order
from shop_reco.signals import order_placed


@pytest.fixture
def placed() -> Iterator[list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []

    def receiver(sender: type, **kwargs: Any) -> None:
        events.append({"sender": sender, **kwargs})

    order_placed.connect(receiver, weak=False)
    yield events
    order_placed.disconnect(receiver)


def fill_cart(client: Client, *items: tuple[Product, int]) -> None:
    for product, quantity in items:
        client.post(reverse("cart:add"), {"product_id": product.pk, "quantity": quantity})


def checkout(client: Client, email: str = "guest@example.com"):
    return client.post(reverse("orders:checkout"), {"email": email})


def test_guest_checkout_places_the_order(
    client: Client, product: Product, other_product: Product, django_capture_on_commit_callbacks
) -> None:
    fill_cart(client, (product, 3), (other_product, 1))
    assert client.get(reverse("orders:checkout")).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        response = checkout(client)

    order = Order.objects.get()
    assert response.status_code == 302 and response.url == reverse("orders:done", args=[order.number])
    assert order.number == f"W{order.pk}"
    assert (order.user, order.email) == (None, "guest@example.com")
    assert sorted((line.product.sku, line.quantity, line.unit_price) for line in order.lines.all()) == [
        (other_product.sku, 1, other_product.price),
        (product.sku, 3, product.price),
    ]
    product.refresh_from_db()
    other_product.refresh_from_db()
    assert (product.stock, other_product.stock) == (7, 4)
    assert client.session[SessionCart.session_key] == {}
    done = client.get(response.url)
    assert done.status_code == 200 and order.number in done.text
    # Another visitor cannot read the confirmation.
    assert Client().get(response.url).status_code == 404


def test_logged_in_checkout_and_history(
    client: Client, django_user_model, product: Product, django_capture_on_commit_callbacks
) -> None:
    user = django_user_model.objects.create_user("alice", "alice@example.com", "pw-alice-123")
    client.force_login(user)
    fill_cart(client, (product, 1))

    response = client.post(reverse("orders:checkout"), {"email": ""})

    order = Order.objects.get()
    assert response.status_code == 302
    assert (order.user, order.email) == (user, "alice@example.com")
    history = client.get(reverse("orders:history"))
    assert history.status_code == 200 and order.number in history.text


def test_guest_needs_an_email(client: Client, product: Product) -> None:
    fill_cart(client, (product, 1))
    response = checkout(client, email="not-an-email")
    assert response.status_code == 200
    assert response.context["form"].errors
    assert not Order.objects.exists()


def test_stock_shortage_at_checkout_places_nothing(client: Client, product: Product, placed: list) -> None:
    fill_cart(client, (product, 4))
    Product.objects.filter(pk=product.pk).update(stock=2)  # someone else bought some meanwhile

    response = checkout(client)

    assert response.status_code == 302 and response.url == reverse("cart:detail")
    assert not Order.objects.exists()
    product.refresh_from_db()
    assert product.stock == 2
    assert client.session[SessionCart.session_key] == {str(product.pk): 4}
    assert "Not enough stock" in client.get(response.url).text
    assert placed == []


def test_empty_cart_goes_back_to_the_cart(client: Client, db) -> None:
    response = client.get(reverse("orders:checkout"))
    assert response.status_code == 302 and response.url == reverse("cart:detail")


def test_history_needs_login(client: Client, db) -> None:
    response = client.get(reverse("orders:history"))
    assert response.status_code == 302 and response.url.startswith(reverse("accounts:login"))


def test_order_placed_is_sent_after_commit(
    client: Client, django_user_model, product: Product, placed: list, django_capture_on_commit_callbacks
) -> None:
    user = django_user_model.objects.create_user("bob", "bob@example.com", "pw-bob-12345")
    client.force_login(user)
    fill_cart(client, (product, 2))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        checkout(client)
    assert placed == []  # nothing is announced before the transaction commits

    for callback in callbacks:
        callback()
    order = Order.objects.get()
    [event] = placed
    assert event["sender"] is Order
    assert event["order_ref"] == order.number
    assert event["lines"] == [(product, 2, product.price)]
    assert event["user"] == user
    assert event["placed_at"] == order.placed_at
    assert event["request"] is not None
