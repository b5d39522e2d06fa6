"""The preview page: each slot as a shopper sees it, with scores, sources, reasons and the rules' effects."""

from __future__ import annotations

import pytest
from django.urls import reverse

from shop_reco.admin_views import run_preview
from shop_reco.models import Event, MerchandisingRule

pytestmark = pytest.mark.django_db


def test_product_page_preview_lists_items_with_scores_and_sources(admin_client, published, catalogue):
    key = next(iter(catalogue))
    response = admin_client.get(reverse("admin:shop_reco_preview"), {"product": key, "slots": ["similar"]})
    assert response.status_code == 200
    (slot,) = response.context["results"]
    assert slot.slot == "similar"
    assert slot.items and all(entry.item.key != key for entry in slot.items)
    assert slot.items[0].item.source == "similar"
    body = response.content.decode()
    assert "Similar to" in body and 'class="sr-chart' in body


def test_rules_that_remove_items_are_named(published, catalogue):
    keys = list(catalogue)
    anchor, victim = keys[0], keys[1]  # keys[1] is the anchor's best similar product
    exclude = MerchandisingRule.objects.create(action="exclude", product_key=victim, slot="similar")
    lamps = MerchandisingRule.objects.create(action="exclude", category="Lamps")
    pin = MerchandisingRule.objects.create(action="pin", product_key=keys[2], strength=1)
    (slot,) = run_preview(user=None, visitor_id="", product=anchor, cart=[], slots=["similar"])
    shown = [entry.item.key for entry in slot.items]
    assert victim not in shown
    assert shown[0] == keys[2]
    assert slot.items[0].rules == [pin]
    removed = {gone.key: gone.rules for gone in slot.removed}
    assert removed[victim] == [exclude]
    lamp_keys = [key for key, product in catalogue.items() if product.category.name == "Lamps"]
    assert all(removed[key] == [lamps] for key in lamp_keys if key in removed)
    assert set(slot.rules) == {exclude, lamps, pin}


def test_rule_free_pass_does_not_leak_to_other_calls(published, catalogue):
    from shop_reco.services.recommendations import similar_products

    keys = list(catalogue)
    MerchandisingRule.objects.create(action="exclude", product_key=keys[1])
    run_preview(user=None, visitor_id="", product=keys[0], cart=[], slots=["similar"])
    assert keys[1] not in similar_products(keys[0]).keys


def test_shopper_and_cart_preview(admin_client, published, catalogue, django_user_model):
    keys = list(catalogue)
    shopper = django_user_model.objects.create_user(username="alice", email="alice@example.com")
    Event.objects.create(event_type="purchase", user=shopper, product_key=keys[3], unit_price=12, quantity=1)
    Event.objects.create(event_type="view", user=shopper, product_key=keys[4])
    response = admin_client.get(
        reverse("admin:shop_reco_preview"), {"user": "alice@example.com", "cart": f"{keys[0]}, {keys[1]}"}
    )
    assert response.status_code == 200, response.context["form"].errors
    slots = {slot.slot: slot for slot in response.context["results"]}
    assert {"cart", "for_you", "trending", "recently_viewed", "buy_again"} <= set(slots)
    assert "similar" not in slots  # needs a product
    cart_keys = [entry.item.key for entry in slots["cart"].items]
    assert keys[0] not in cart_keys and keys[1] not in cart_keys
    assert [entry.item.key for entry in slots["buy_again"].items][:1] == [keys[3]]
    assert keys[4] in [entry.item.key for entry in slots["recently_viewed"].items]


def test_form_errors(admin_client, catalogue):
    url = reverse("admin:shop_reco_preview")
    assert response_errors(admin_client.get(url, {"product": "nope"}))["product"]
    assert response_errors(admin_client.get(url, {"user": "nobody"}))["user"]
    assert response_errors(admin_client.get(url, {"cart": "nope"}))["cart"]
    assert response_errors(admin_client.get(url, {"visitor_id": ""}))["__all__"]


def response_errors(response):
    assert response.status_code == 200
    return response.context["form"].errors


def test_preview_needs_its_permission(client, staff_with, catalogue):
    url = reverse("admin:shop_reco_preview")
    client.force_login(staff_with("shop_reco.view_recoconfig"))
    assert client.get(url).status_code == 403
    client.force_login(staff_with("shop_reco.preview_recommendations", username="previewer"))
    assert client.get(url).status_code == 200
