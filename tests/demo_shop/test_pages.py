from __future__ import annotations

from typing import Any

import pytest
from django.template.loader import get_template
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from demo_shop.catalogue.models import Category, Product
from demo_shop.orders.models import Order, OrderLine
from shop_reco.signals import searched


@pytest.mark.parametrize(
    ("name", "kwargs", "query"),
    [
        ("catalogue:home", {}, {}),
        ("catalogue:category", {"slug": "candles-lights"}, {}),
        ("catalogue:category", {"slug": "candles-lights"}, {"page": "999"}),
        ("catalogue:category", {"slug": "candles-lights"}, {"page": "x"}),
        ("catalogue:search", {}, {"q": "heart"}),
        ("catalogue:search", {}, {}),
        ("cart:detail", {}, {}),
        ("accounts:login", {}, {}),
        ("accounts:signup", {}, {}),
    ],
)
def test_pages_render(client: Client, product: Product, name: str, kwargs: dict, query: dict) -> None:
    assert client.get(reverse(name, kwargs=kwargs), query).status_code == 200


def test_product_page(client: Client, product: Product, sold_out: Product) -> None:
    response = client.get(reverse("catalogue:product", kwargs={"pk": product.pk}))
    assert response.status_code == 200 and "Add to cart" in response.text
    response = client.get(sold_out.get_absolute_url())
    assert response.status_code == 200 and "Out of stock" in response.text
    assert "Add to cart" not in response.text
    Product.objects.filter(pk=product.pk).update(is_active=False)
    assert client.get(product.get_absolute_url()).status_code == 404


def test_checkout_page_renders_with_a_cart(client: Client, product: Product) -> None:
    client.post(reverse("cart:add"), {"product_id": product.pk})
    assert client.get(reverse("orders:checkout")).status_code == 200


def test_home_shows_categories_and_products(client: Client, product: Product, category: Category) -> None:
    response = client.get(reverse("catalogue:home"))
    assert escape(category.name) in response.text
    assert list(response.context["products"]) == [product]


def test_category_pages_paginate(client: Client, category: Category) -> None:
    Product.objects.bulk_create(
        Product(sku=f"P{n:03d}", name=f"ITEM {n:03d}", category=category, price=1, stock=1) for n in range(30)
    )
    first = client.get(category.get_absolute_url())
    second = client.get(category.get_absolute_url(), {"page": 2})
    assert len(first.context["page"]) == 24 and len(second.context["page"]) == 6
    assert "?page=2" in first.text


def test_search_matches_all_words_and_sends_signal(client: Client, product: Product, other_product: Product):
    events: list[dict[str, Any]] = []

    def receiver(sender: type, **kwargs: Any) -> None:
        events.append(kwargs)

    searched.connect(receiver, weak=False)
    try:
        response = client.get(reverse("catalogue:search"), {"q": "  white   heart "})
        client.get(reverse("catalogue:search"), {"q": ""})
    finally:
        searched.disconnect(receiver)

    assert list(response.context["page"]) == [product]
    assert [(e["query"], e["results"]) for e in events] == [("white heart", 1)]
    assert events[0]["request"] is not None


def test_login_logout(client: Client, django_user_model, db) -> None:
    django_user_model.objects.create_user("carol", "", "pw-carol-123")
    response = client.post(reverse("accounts:login"), {"username": "carol", "password": "pw-carol-123"})
    assert response.status_code == 302
    assert client.get(reverse("catalogue:home")).context["user"].is_authenticated
    assert client.post(reverse("accounts:logout")).status_code == 302
    assert not client.get(reverse("catalogue:home")).context["user"].is_authenticated


def test_signup_logs_in(client: Client, db) -> None:
    response = client.post(
        reverse("accounts:signup"),
        {"username": "dave", "password1": "pw-dave-12345", "password2": "pw-dave-12345"},
    )
    assert response.status_code == 302
    assert client.get(reverse("catalogue:home")).context["user"].username == "dave"


def test_orders_appear_in_the_admin(admin_client: Client, product: Product) -> None:
    order = Order.objects.create(number="W1", email="x@example.com")
    OrderLine.objects.create(order=order, product=product, quantity=2, unit_price=product.price)
    changelist = admin_client.get(reverse("admin:orders_order_changelist"))
    assert changelist.status_code == 200 and "W1" in changelist.text and "5.90" in changelist.text
    assert admin_client.get(reverse("admin:orders_order_change", args=[order.pk])).status_code == 200
    url = reverse("admin:catalogue_product_changelist")
    products = admin_client.get(url, {"availability": "in", "q": "heart"})
    assert products.status_code == 200 and product.sku in products.text


@pytest.mark.parametrize(
    ("template", "blocks"),
    [
        ("catalogue/product.html", ["reco_similar", "reco_bought_together"]),
        ("catalogue/home.html", ["reco_for_you", "reco_trending"]),
        ("cart/detail.html", ["reco_cart"]),
        ("orders/history.html", ["reco_buy_again"]),
        ("base.html", ["reco_recently_viewed"]),
    ],
)
def test_recommendation_slots_exist(template: str, blocks: list[str]) -> None:
    source = get_template(template).template.source
    for block in blocks:
        assert f"{{% block {block} %}}" in source
