"""Tokens, and crediting add-to-carts and purchases to the slot, source and version whose link was clicked."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import AnonymousUser
from django.template import Context, Template
from django.utils import timezone

from shop_reco.attribution import (
    MAX_LENGTH,
    RecoToken,
    attribute,
    attributed_revenue,
    make_token,
    parse_token,
)
from shop_reco.models import Event
from shop_reco.testing import publish_lists

VISITOR = "c" * 32


def test_token_round_trip_and_length():
    token = make_token("bought_together", "bought_together", 123456, 7, "85123A")
    assert len(token) <= MAX_LENGTH and token.isascii() and " " not in token
    assert parse_token(token) == RecoToken("bought_together", "bought_together", 123456, 7, "85123A")
    # Live fallbacks have no version; long or odd keys are left out but the token stays valid.
    assert parse_token(make_token("for_you", "live_popular", None, 1, "k" * 40)) == RecoToken(
        "for_you", "live_popular", None, 1, ""
    )
    assert parse_token(make_token("my_slot", "my_source", 1, 2)).slot == "my_slot"


@pytest.mark.parametrize("bad", ["", "x", "s.sim.1.1.AAAAAAAAAAAA", None, "a" * 100])
def test_forged_or_malformed_tokens_are_rejected(bad):
    assert parse_token(bad) is None


def test_a_tampered_token_is_rejected():
    token = make_token("similar", "similar", 5, 1, "42")
    assert parse_token(token.replace(".5.", ".6.", 1)) is None


def test_tokens_depend_on_the_secret_key(settings):
    token = make_token("similar", "similar", 5, 1, "42")
    settings.SECRET_KEY = "another-secret-key-that-is-long-enough-0123456789abcdef"
    assert parse_token(token) is None


def event(event_type, key, minutes_ago, *, visitor=VISITOR, user=None, token="", price=None, quantity=1):
    return Event.objects.create(
        event_type=event_type,
        visitor_id=visitor,
        user=user,
        product_key=key,
        token=token,
        slot=parse_token(token).slot if token else "",
        unit_price=Decimal(price) if price else None,
        quantity=quantity,
        occurred_at=timezone.now() - timedelta(minutes=minutes_ago),
    )


def test_attribute_credits_the_latest_earlier_click_within_the_window(db):
    early = make_token("similar", "similar", 3, 2, "10")
    late = make_token("for_you", "for_you", 3, 1, "10")
    event("rec_click", "10", 120, token=early)
    event("rec_click", "10", 60, token=late)
    event("rec_click", "10", 10, token=early, visitor="d" * 32)  # someone else
    event("rec_click", "10", 1, token=early)  # after the purchase
    purchase = event("purchase", "10", 5, price="4.00")
    cart = event("add_to_cart", "10", 30)
    other_product = event("purchase", "11", 5, price="1.00")
    credited = attribute([purchase, cart, other_product])
    assert credited[purchase.pk].slot == "for_you" and credited[purchase.pk].version_id == 3
    assert credited[cart.pk].slot == "for_you"
    assert other_product.pk not in credited


def test_clicks_outside_the_window_do_not_count(db, settings):
    settings.SHOP_RECO = {**settings.SHOP_RECO, "ATTRIBUTION_WINDOW_DAYS": 1}
    event("rec_click", "10", 60 * 48, token=make_token("similar", "similar", 3, 2, "10"))
    assert attribute([event("purchase", "10", 5, price="4.00")]) == {}


def test_a_logged_in_purchase_matches_a_click_made_as_the_same_user(django_user_model):
    user = django_user_model.objects.create_user("cat", password="x")
    token = make_token("buy_again", "buy_again", 9, 1)  # no key inside: the event's key is used
    event("rec_click", "10", 30, user=user, visitor="e" * 32, token=token)
    purchase = event("purchase", "10", 5, user=user, visitor="f" * 32, price="2.00")
    assert attribute([purchase])[purchase.pk].source == "buy_again"


def test_impression_to_purchase_end_to_end(catalogue, rf):
    """Render a slot, click its first link (as the beacon would send it), buy: revenue lands on the slot."""
    k = catalogue.key
    version = publish_lists(
        {("product", k("Kitchen 1"), "similar"): catalogue.keys("Kitchen 2", "Kitchen 3")}
    )
    request = rf.get("/", HTTP_USER_AGENT="Mozilla/5.0")
    request.user = AnonymousUser()
    html = Template("{% load shop_reco %}{% reco_similar product limit=2 %}").render(
        Context({"request": request, "product": catalogue["Kitchen 1"]})
    )
    impression = Event.objects.get(event_type="rec_impression")
    visitor = impression.visitor_id
    assert impression.slot == "similar" and impression.context["keys"] == catalogue.keys(
        "Kitchen 2", "Kitchen 3"
    )

    token = html.split('data-reco-token="')[1].split('"')[0]
    clicked = parse_token(token)
    event("rec_click", clicked.product_key, 20, visitor=visitor, token=token)
    event("add_to_cart", k("Kitchen 2"), 15, visitor=visitor)
    event("purchase", k("Kitchen 2"), 10, visitor=visitor, price="2.50", quantity=2)
    event("purchase", k("Toys 1"), 10, visitor=visitor, price="9.00")  # not recommended: not credited

    now = timezone.now()
    rows = attributed_revenue(now - timedelta(days=1), now)
    assert len(rows) == 1
    row = rows[0]
    assert (row.slot, row.source, row.version_id) == ("similar", "similar", version.pk)
    assert (row.purchases, row.quantity, row.revenue) == (1, 2, Decimal("5.00"))
