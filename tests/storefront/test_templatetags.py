"""The tags render the slot templates, record one impression per slot, and never break a page."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth.models import AnonymousUser
from django.template import Context, Template

from shop_reco.attribution import parse_token
from shop_reco.models import Event
from shop_reco.testing import publish_lists


@pytest.fixture
def request_(rf):
    request = rf.get("/", HTTP_USER_AGENT="Mozilla/5.0")
    request.user = AnonymousUser()
    return request


def render(source: str, request, **context) -> str:
    return Template("{% load shop_reco %}" + source).render(Context({"request": request, **context}))


def test_similar_tag_renders_links_with_tokens_and_reasons(catalogue, request_):
    k = catalogue.key
    publish_lists({("product", k("Kitchen 1"), "similar"): catalogue.keys("Kitchen 2", "Kitchen 3")})
    html = render("{% reco_similar product limit=2 %}", request_, product=catalogue["Kitchen 1"])
    assert "Similar products" in html
    assert html.count('class="reco-item"') == 2
    assert "Similar to Kitchen 1" in html
    assert f'href="/product/{k("Kitchen 2")}/"' in html or 'data-reco-product="' + k("Kitchen 2") in html
    token = html.split('data-reco-token="')[1].split('"')[0]
    parsed = parse_token(token)
    assert parsed is not None and parsed.slot == "similar" and parsed.position == 1
    assert parsed.product_key == k("Kitchen 2") and parsed.source == "similar"


def test_each_rendered_slot_records_one_impression(catalogue, request_):
    publish_lists({("global", "", "popular"): catalogue.keys("Toys 1", "Toys 2", "Garden 1", "Garden 2")})
    html = render(
        "{% reco_trending limit=2 %}{% reco_for_you limit=2 %}{% reco_recently_viewed %}",
        request_,
    )
    impressions = list(Event.objects.filter(event_type="rec_impression").order_by("pk"))
    # Recently viewed is empty for a new visitor, so it renders nothing and records nothing.
    assert [event.slot for event in impressions] == ["trending", "for_you"]
    assert impressions[0].context["keys"] == catalogue.keys("Toys 1", "Toys 2")
    assert impressions[1].context["keys"] == catalogue.keys("Garden 1", "Garden 2")  # no repeats on a page
    assert "Recently viewed" not in html


def test_bought_together_tag_shows_the_bundle_price(catalogue, request_):
    k = catalogue.key
    publish_lists({("product", k("Kitchen 1"), "bought_together"): catalogue.keys("Toys 1")})
    html = render("{% reco_bought_together product %}", request_, product=catalogue["Kitchen 1"])
    assert "Frequently bought together" in html
    assert "All 2 together" in html and "3.00" in html


def test_cart_tag_takes_the_shops_cart_object(catalogue, request_):
    k = catalogue.key

    class Cart:
        lines = {k("Kitchen 1"): 1}

    publish_lists({("product", k("Kitchen 1"), "bought_together"): catalogue.keys("Kitchen 1", "Garden 3")})
    html = render("{% reco_cart cart limit=1 %}", request_, cart=Cart())
    assert "Goes with Kitchen 1 in your basket" in html and "Garden 3" in html


def test_trending_tag_per_category_and_template_override(catalogue, request_, rf, tmp_path, settings):
    publish_lists({("category", "Toys", "trending"): catalogue.keys("Toys 2")})
    html = render('{% reco_trending category="Toys" limit=1 %}', request_)
    assert "Trending in Toys" in html
    (tmp_path / "mine.html").write_text(
        "{% for item in items %}[{{ item.name }}|{{ item.reason }}]{% endfor %}"
    )
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path, *settings.TEMPLATES[0]["DIRS"]]}]
    other_page = rf.get("/")
    other_page.user = AnonymousUser()
    html = render('{% reco_trending category="Toys" limit=1 template="mine.html" %}', other_page)
    assert html == "[Toys 2|Trending in Toys]"


def test_a_failing_slot_renders_empty_and_logs_an_error(catalogue, request_, monkeypatch, caplog):
    from shop_reco.services import recommendations

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(recommendations, "recommended_for_you", broken)
    with caplog.at_level(logging.ERROR, logger="shop_reco"):
        html = render("before{% reco_for_you %}after", request_)
    assert html == "beforeafter"
    assert any(
        record.levelno == logging.ERROR and "for_you" in record.getMessage() for record in caplog.records
    )


def test_output_is_escaped(catalogue, request_):
    catalogue["Toys 1"].name = "<b>Bold</b>"
    catalogue["Toys 1"].save()
    publish_lists({("global", "", "popular"): catalogue.keys("Toys 1")})
    html = render("{% reco_trending limit=1 %}", request_)
    assert "<b>Bold</b>" not in html and "&lt;b&gt;Bold&lt;/b&gt;" in html


def test_impressions_can_be_switched_off(catalogue, request_, settings):
    settings.SHOP_RECO = {**settings.SHOP_RECO, "TRACK_IMPRESSIONS": False}
    publish_lists({("global", "", "popular"): catalogue.keys("Toys 1")})
    render("{% reco_trending limit=1 %}", request_)
    assert not Event.objects.filter(event_type="rec_impression").exists()
