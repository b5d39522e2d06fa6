"""The recommendation endpoints: same service as the tags, own-data-only permissions, limits, schema."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from shop_reco.models import Event
from shop_reco.testing import publish_lists, visitor_cookie
from tests.storefront.conftest import Catalogue

VISITOR = "a" * 32


@pytest.fixture
def catalogue(db) -> Catalogue:
    return Catalogue()


@pytest.fixture(autouse=True)
def _fresh_caches():
    from django.core.cache import cache

    from shop_reco.services.lists import clear_caches

    clear_caches()
    cache.clear()


def as_visitor(client, visitor_id: str = VISITOR):
    name, value = visitor_cookie(visitor_id)
    client.cookies[name] = value
    return client


def url(name: str, *args) -> str:
    return reverse(f"shop_reco:reco-{name}", args=args)


def test_similar_endpoint(client, catalogue):
    k = catalogue.key
    version = publish_lists(
        {("product", k("Kitchen 1"), "similar"): catalogue.keys("Kitchen 2", "Kitchen 3")}
    )
    response = client.get(url("similar", k("Kitchen 1")), {"limit": 2})
    assert response.status_code == 200
    data = response.json()
    assert data["slot"] == "similar" and data["version"] == version.pk and data["count"] == 2
    first = data["items"][0]
    assert first["key"] == k("Kitchen 2") and first["source"] == "similar" and first["position"] == 1
    assert first["reason"] == "Similar to Kitchen 1" and first["token"]
    assert first["product"] == {
        "key": k("Kitchen 2"),
        "name": "Kitchen 2",
        "url": catalogue["Kitchen 2"].get_absolute_url(),
        "image": "",
        "price": "2.50",
        "category": "Kitchen",
    }
    assert data["anchor"]["key"] == k("Kitchen 1")
    # One impression per response, like a rendered slot.
    assert Event.objects.get(event_type="rec_impression").context["keys"] == catalogue.keys(
        "Kitchen 2", "Kitchen 3"
    )


def test_bought_together_endpoint_has_the_bundle_price(client, catalogue):
    k = catalogue.key
    publish_lists({("product", k("Kitchen 1"), "bought_together"): catalogue.keys("Toys 1")})
    data = client.get(url("bought-together", k("Kitchen 1"))).json()
    assert [item["key"] for item in data["items"]] == [k("Toys 1")]
    assert data["bundle_price"] == "3.00"


def test_unknown_product_is_404(client, catalogue):
    assert client.get(url("similar", "999999")).status_code == 404
    assert client.get(url("bought-together", "nope")).status_code == 404


def test_cart_endpoint_takes_the_cart_as_keys(client, catalogue):
    k = catalogue.key
    publish_lists({("product", k("Kitchen 1"), "bought_together"): catalogue.keys("Kitchen 1", "Garden 1")})
    data = client.get(url("cart"), {"cart": k("Kitchen 1"), "limit": 1}).json()
    assert [item["key"] for item in data["items"]] == [k("Garden 1")]


def test_trending_per_category_and_exclude(client, catalogue):
    publish_lists({("category", "Toys", "trending"): catalogue.keys("Toys 1", "Toys 2")})
    data = client.get(
        url("trending"), {"category": "Toys", "limit": 1, "exclude": catalogue.key("Toys 1")}
    ).json()
    assert [item["key"] for item in data["items"]] == [catalogue.key("Toys 2")]
    assert data["items"][0]["reason"] == "Trending in Toys"


def test_for_you_recently_viewed_and_buy_again_use_the_requests_own_shopper(client, catalogue):
    k = catalogue.key
    publish_lists({("visitor", VISITOR, "for_you"): catalogue.keys("Toys 4")})
    Event.objects.create(event_type="view", visitor_id=VISITOR, product_key=k("Garden 2"))
    Event.objects.create(event_type="purchase", visitor_id=VISITOR, product_key=k("Kitchen 4"))
    as_visitor(client)
    assert client.get(url("for-you"), {"limit": 1}).json()["items"][0]["key"] == k("Toys 4")
    assert [i["key"] for i in client.get(url("recently-viewed")).json()["items"]] == [k("Garden 2")]
    assert [i["key"] for i in client.get(url("buy-again")).json()["items"]] == [k("Kitchen 4")]


@pytest.mark.parametrize("value", ["0", "-1", "abc", "51", "1.5"])
def test_bad_limits_are_400_naming_the_field(client, catalogue, value):
    response = client.get(url("trending"), {"limit": value})
    assert response.status_code == 400
    assert "limit" in response.json()


def test_limit_cap_follows_the_setting(client, catalogue, settings):
    settings.SHOP_RECO = {**settings.SHOP_RECO, "API_MAX_LIMIT": 3}
    assert client.get(url("trending"), {"limit": 4}).status_code == 400
    assert client.get(url("trending"), {"limit": 3}).json()["count"] == 3


@pytest.mark.parametrize("name", ["for-you", "recently-viewed", "buy-again", "trending", "cart"])
def test_shoppers_cannot_read_someone_elses_recommendations(client, catalogue, django_user_model, name):
    me = django_user_model.objects.create_user("me", password="pw")
    other = django_user_model.objects.create_user("other", password="pw")
    assert client.get(url(name), {"user": other.pk}).status_code == 403  # anonymous
    client.force_login(me)
    assert client.get(url(name), {"user": other.pk}).status_code == 403
    assert client.get(url(name), {"visitor": "b" * 32}).status_code == 403
    assert client.get(url(name), {"user": me.pk}).status_code == 200  # naming yourself is fine


def test_staff_may_preview_any_shopper(client, catalogue, django_user_model):
    k = catalogue.key
    shopper = django_user_model.objects.create_user("shopper", password="pw")
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="preview_recommendations"))
    publish_lists(
        {
            ("user", str(shopper.pk), "for_you"): catalogue.keys("Garden 3"),
            ("visitor", "b" * 32, "for_you"): catalogue.keys("Toys 3"),
        }
    )
    client.force_login(staff)
    data = client.get(url("for-you"), {"user": shopper.pk, "limit": 1}).json()
    assert data["items"][0]["key"] == k("Garden 3")
    data = client.get(url("for-you"), {"visitor": "b" * 32, "limit": 1}).json()
    assert data["items"][0]["key"] == k("Toys 3")
    # A preview is not an impression.
    assert not Event.objects.filter(event_type="rec_impression").exists()


def test_a_failure_is_an_empty_degraded_answer_not_a_500(client, catalogue, monkeypatch, caplog):
    from shop_reco.services import recommendations

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(recommendations, "trending", broken)
    with caplog.at_level(logging.ERROR, logger="shop_reco"):
        response = client.get(url("trending"))
    assert response.status_code == 200
    assert response.json() == {"slot": "trending", "version": None, "count": 0, "items": [], "degraded": True}
    assert any(record.levelno == logging.ERROR for record in caplog.records)


def test_product_serializer_is_configurable(client, catalogue, settings):
    settings.SHOP_RECO = {
        **settings.SHOP_RECO,
        "PRODUCT_SERIALIZER": "tests.api.test_recommendations.NameOnlySerializer",
    }
    publish_lists({("global", "", "popular"): catalogue.keys("Toys 1")})
    data = client.get(url("trending"), {"limit": 1}).json()
    assert data["items"][0]["product"] == {"sku": "TOY1", "name": "Toys 1"}


def _name_only_serializer():
    from rest_framework import serializers

    from demo_shop.catalogue.models import Product

    class NameOnlySerializer(serializers.ModelSerializer):
        class Meta:
            model = Product
            fields = ["sku", "name"]

    return NameOnlySerializer


NameOnlySerializer = _name_only_serializer()


def test_openapi_schema_documents_the_endpoints(client, db):
    response = client.get(reverse("shop_reco:reco-schema"), {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    path = next(p for p in schema["paths"] if p.endswith("/api/similar/{product_key}/"))
    operation = schema["paths"][path]["get"]
    assert {parameter["name"] for parameter in operation["parameters"]} >= {
        "limit",
        "exclude",
        "user",
        "product_key",
    }
    assert "SlotResponse" in schema["components"]["schemas"]


def drf_only(monkeypatch):
    from shop_reco.api.recommendations import SlotView

    monkeypatch.setattr(SlotView, "_plain_get", lambda self, request: False)


@pytest.mark.parametrize(
    ("name", "params", "accept"),
    [
        ("trending", {}, "*/*"),
        ("trending", {"limit": 2, "exclude": "x"}, "application/json"),
        ("for-you", {"limit": 3}, None),
        ("recently-viewed", {}, "*/*"),
        ("buy-again", {}, "*/*"),
        ("cart", {"cart": "1"}, "*/*"),
        ("trending", {"limit": "abc"}, "*/*"),  # a 400
    ],
)
def test_the_plain_path_answers_exactly_as_drf(client, catalogue, monkeypatch, name, params, accept):
    k = catalogue.key
    publish_lists(
        {
            ("global", "", "popular"): catalogue.keys("Toys 1", "Garden 2", "Kitchen 3"),
            ("visitor", VISITOR, "for_you"): catalogue.keys("Toys 4", "Garden 1"),
        }
    )
    Event.objects.create(event_type="view", visitor_id=VISITOR, product_key=k("Garden 2"))
    Event.objects.create(event_type="purchase", visitor_id=VISITOR, product_key=k("Kitchen 4"))
    as_visitor(client)
    headers = {"HTTP_ACCEPT": accept} if accept else {}

    def answer():
        response = client.get(url(name), params, **headers)
        kept = ("Content-Type", "Allow", "Vary")
        return response.status_code, response.content, {h: response.get(h) for h in kept}

    plain = answer()
    drf_only(monkeypatch)
    assert answer() == plain


@pytest.mark.parametrize("product", ["Kitchen 1", None])
def test_product_slots_answer_alike_on_both_paths(client, catalogue, monkeypatch, product):
    k = catalogue.key
    publish_lists(
        {
            ("product", k("Kitchen 1"), "similar"): catalogue.keys("Kitchen 2", "Garden 1"),
            ("product", k("Kitchen 1"), "bought_together"): catalogue.keys("Toys 1"),
        }
    )
    key = k(product) if product else "999999"  # an unknown product: DRF's 404 on both paths
    answers = []
    for plain in (True, False):
        if not plain:
            drf_only(monkeypatch)
        answers.append(
            [
                (response.status_code, response.content, response["Content-Type"])
                for response in (client.get(url("similar", key)), client.get(url("bought-together", key)))
            ]
        )
    assert answers[0] == answers[1]
    assert answers[0][0][0] == (200 if product else 404)


def test_a_memoised_answer_is_rendered_once_and_follows_a_rename(client, catalogue, monkeypatch):
    import time

    from shop_reco.api import recommendations as api

    k = catalogue.key
    publish_lists({("product", k("Kitchen 1"), "similar"): catalogue.keys("Kitchen 2", "Garden 1")})
    first = client.get(url("similar", k("Kitchen 1")), {"limit": 2}).content
    rendered = []
    render = api.JSONRenderer.render
    monkeypatch.setattr(
        api.JSONRenderer,
        "render",
        lambda self, data, *a, **kw: rendered.append(data) or render(self, data, *a, **kw),
    )
    assert client.get(url("similar", k("Kitchen 1")), {"limit": 2}).content == first and rendered == []
    garden = catalogue["Garden 1"]
    garden.name, garden.price = "Garden 1 (new)", garden.price + 1
    garden.save()
    moment = time.monotonic() + 31  # PRODUCT_CACHE_SECONDS is 30
    monkeypatch.setattr(time, "monotonic", lambda: moment)
    renamed = client.get(url("similar", k("Kitchen 1")), {"limit": 2}).content
    assert b"Garden 1 (new)" in renamed and len(rendered) == 1
    drf_only(monkeypatch)
    assert client.get(url("similar", k("Kitchen 1")), {"limit": 2}).content == renamed


def test_each_warm_answer_records_its_own_impression_of_the_items_it_shows(client, catalogue):
    """A memoised slot's impression context is validated once and reused: every answer still records one
    impression, naming exactly the items that answer showed (a different limit is a different slot)."""
    k = catalogue.key
    publish_lists(
        {("product", k("Kitchen 1"), "similar"): catalogue.keys("Kitchen 2", "Kitchen 3", "Toys 1")}
    )
    answers = [client.get(url("similar", k("Kitchen 1")), {"limit": limit}).json() for limit in (2, 2, 3, 2)]
    impressions = list(Event.objects.filter(event_type="rec_impression").order_by("pk"))
    assert len(impressions) == 4 and len({event.client_event_id for event in impressions}) == 4
    for answer, event in zip(answers, impressions, strict=True):
        assert event.context["keys"] == [item["key"] for item in answer["items"]]
        assert event.context["sources"] == [item["source"] for item in answer["items"]]
        assert event.context["version"] == answer["version"]
    assert [len(event.context["keys"]) for event in impressions] == [2, 2, 3, 2]
