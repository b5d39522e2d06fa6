from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from demo_shop.cart.cart import SessionCart
from demo_shop.catalogue.models import Product
from shop_reco.signals import cart_changed


@pytest.fixture
def cart_events() -> Iterator[list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []

    def receiver(sender: type, **kwargs: Any) -> None:
        events.append({"sender": sender, **kwargs})

    cart_changed.connect(receiver, weak=False)
    yield events
    cart_changed.disconnect(receiver)


def session_lines(client: Client) -> dict[str, int]:
    return client.session.get(SessionCart.session_key, {})


def add(client: Client, product_id: object, quantity: object = 1, **extra: str):
    return client.post(reverse("cart:add"), {"product_id": product_id, "quantity": quantity, **extra})


def test_add_update_remove(client: Client, product: Product, other_product: Product) -> None:
    response = add(client, product.pk, 2)
    assert response.status_code == 302 and response.url == reverse("cart:detail")
    add(client, product.pk, 1)
    add(client, other_product.pk)
    assert session_lines(client) == {str(product.pk): 3, str(other_product.pk): 1}

    client.post(reverse("cart:update"), {"product_id": product.pk, "quantity": 5})
    assert session_lines(client)[str(product.pk)] == 5
    client.post(reverse("cart:update"), {"product_id": other_product.pk, "quantity": 0})
    assert session_lines(client) == {str(product.pk): 5}
    client.post(reverse("cart:remove"), {"product_id": product.pk})
    assert session_lines(client) == {}


def test_cart_page_lists_lines_and_total(client: Client, product: Product, other_product: Product) -> None:
    add(client, product.pk, 2)
    add(client, other_product.pk, 1)
    response = client.get(reverse("cart:detail"))
    assert response.status_code == 200
    lines = list(response.context["cart"])
    assert [(line.product, line.quantity) for line in lines] == [(product, 2), (other_product, 1)]
    assert response.context["cart"].total == product.price * 2 + other_product.price
    assert "£9.65" in response.text


def test_quantity_is_capped_at_stock(client: Client, other_product: Product) -> None:
    response = add(client, other_product.pk, 50, next=reverse("cart:detail"))
    assert session_lines(client) == {str(other_product.pk): other_product.stock}
    assert "Only 5 of" in client.get(response.url).text


def test_out_of_stock_cannot_be_added(client: Client, sold_out: Product) -> None:
    response = add(client, sold_out.pk)
    assert response.status_code == 302
    assert session_lines(client) == {}
    assert "is out of stock" in client.get(response.url).text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"product_id": "abc", "quantity": 1}, "Enter a whole number"),
        ({"product_id": 999999, "quantity": 1}, "There is no such product"),
        ({"quantity": 1}, "This field is required"),
        ({"product_id": "PRODUCT", "quantity": "lots"}, "Enter a whole number"),
        ({"product_id": "PRODUCT", "quantity": -2}, "greater than or equal to 1"),
        ({"product_id": "PRODUCT", "quantity": 10**12}, "less than or equal to 999"),
    ],
)
def test_bad_input_is_a_400_with_a_message(client: Client, product: Product, data: dict, message: str):
    data = {key: product.pk if value == "PRODUCT" else value for key, value in data.items()}
    response = client.post(reverse("cart:add"), data)
    assert response.status_code == 400
    assert message in response.text
    assert session_lines(client) == {}


@pytest.mark.parametrize("name", ["cart:update", "cart:remove"])
def test_bad_input_on_update_and_remove(client: Client, db, name: str) -> None:
    assert client.post(reverse(name), {"product_id": "x", "quantity": "y"}).status_code == 400


def test_retired_product_cannot_be_added_but_can_be_removed(client: Client, product: Product) -> None:
    add(client, product.pk)
    Product.objects.filter(pk=product.pk).update(is_active=False)
    assert add(client, product.pk).status_code == 400
    assert list(client.get(reverse("cart:detail")).context["cart"]) == []
    client.post(reverse("cart:remove"), {"product_id": product.pk})
    assert session_lines(client) == {}


@pytest.mark.parametrize("name", ["cart:add", "cart:update", "cart:remove"])
def test_changes_need_post(client: Client, db, name: str) -> None:
    assert client.get(reverse(name)).status_code == 405


def test_next_is_followed_only_on_this_site(client: Client, product: Product) -> None:
    assert add(client, product.pk, next=product.get_absolute_url()).url == product.get_absolute_url()
    assert add(client, product.pk, next="https://evil.example/").url == reverse("cart:detail")


def test_cart_changes_send_signals(client: Client, product: Product, cart_events: list) -> None:
    add(client, product.pk, 2)
    client.post(reverse("cart:update"), {"product_id": product.pk, "quantity": 5})
    client.post(reverse("cart:update"), {"product_id": product.pk, "quantity": 5})  # no change, no signal
    client.post(reverse("cart:remove"), {"product_id": product.pk})

    assert [(e["sender"], e["product"], e["quantity"]) for e in cart_events] == [
        (SessionCart, product, 2),
        (SessionCart, product, 3),
        (SessionCart, product, -5),
    ]
    refs = {e["basket_ref"] for e in cart_events}
    assert len(refs) == 1 and refs != {""}
    assert all(e["request"] is not None for e in cart_events)
