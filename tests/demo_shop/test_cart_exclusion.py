"""The demo adapter reads the session cart, so every slot of every page leaves the cart's products out."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.urls import reverse

from shop_reco.adapters import BaseShopAdapter
from shop_reco.services.lists import clear_caches
from shop_reco.testing import publish_lists


@pytest.fixture(autouse=True)
def _fresh_caches():
    clear_caches()
    cache.clear()
    yield
    clear_caches()


def test_the_base_adapter_has_no_cart(rf):
    assert BaseShopAdapter().cart_product_keys(rf.get("/")) == []


def test_slots_leave_out_what_is_in_the_cart(client, product, other_product, sold_out):
    publish_lists({("global", "", "popular"): [str(product.pk), str(other_product.pk)]})
    trending = reverse("shop_reco:reco-trending")
    assert [item["key"] for item in client.get(trending).json()["items"]][:1] == [str(product.pk)]
    client.post(reverse("cart:add"), {"product_id": product.pk, "quantity": 1})
    keys = [item["key"] for item in client.get(trending).json()["items"]]
    assert str(product.pk) not in keys and str(other_product.pk) in keys
    page = client.get(reverse("catalogue:home")).content.decode()
    assert f'data-reco-product="{product.pk}"' not in page
    assert f'data-reco-product="{other_product.pk}"' in page
