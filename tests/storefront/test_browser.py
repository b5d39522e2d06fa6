"""Walk the demo shop in headless Chromium: slots show products, and a click is attributed to its slot."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from django.db import connections

from shop_reco.attribution import attribute, parse_token
from shop_reco.models import Event
from shop_reco.testing import publish_lists

CHROMIUM = "/usr/bin/chromium"
SHOPPER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="apt-get install -y chromium"),
]


@pytest.fixture
def browser_page(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM reads are still sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        # Headless Chromium says "HeadlessChrome", which the tracker takes for a bot: look like a shopper.
        page = browser.new_page(user_agent=SHOPPER_AGENT)
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            browser.close()
            # The test's ORM reads ran inside Playwright's event loop, whose context holds its own database
            # connection (Django's connections are context-local): close it here, in that context, or it
            # outlives the test and the test database cannot be dropped.
            connections.close_all()


def wait_for(condition, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    return condition()


def test_walk_the_shop_and_attribute_a_click(live_server, browser_page, catalogue):
    k = catalogue.key
    everything = [f"{c} {i}" for c in ("Kitchen", "Garden", "Toys") for i in range(1, 5)]
    publish_lists(
        {
            ("global", "", "popular"): catalogue.keys(*everything),
            ("global", "", "trending"): catalogue.keys(*reversed(everything)),
            **{("product", k(name), "similar"): catalogue.keys(*everything) for name in everything},
            **{
                ("product", k(name), "bought_together"): catalogue.keys("Toys 1", "Garden 2")
                for name in everything
            },
        }
    )
    page = browser_page
    assert os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] == "true"

    # Home: "for you" (popular for a new visitor) and trending, with different products.
    page.goto(live_server.url + "/")
    for_you = page.locator(".reco-slot--for_you .reco-item")
    trending = page.locator(".reco-slot--trending .reco-item")
    assert for_you.count() > 0 and trending.count() > 0
    home_keys = page.locator("[data-reco-product]").evaluate_all("els => els.map(e => e.dataset.recoProduct)")
    assert len(home_keys) == len(set(home_keys))

    # Click the first "for you" product: the beacon sends rec_click with the link's token.
    link = page.locator(".reco-slot--for_you a[data-reco-token]").first
    token = link.get_attribute("data-reco-token")
    clicked_key = link.get_attribute("data-reco-product")
    link.click()
    page.wait_for_url(f"**/product/{clicked_key}/")

    # Product page: similar and bought-together slots, never the product itself.
    similar = page.locator(".reco-slot--similar [data-reco-product]")
    assert similar.count() > 0
    assert clicked_key not in similar.evaluate_all("els => els.map(e => e.dataset.recoProduct)")
    assert page.locator(".reco-slot--bought_together .reco-item").count() > 0

    # Add to cart, see the cart slot, check out.
    page.locator("form.add-form button[type=submit]").click()
    page.goto(live_server.url + "/cart/")
    assert page.locator(".reco-slot--cart .reco-item").count() > 0
    page.goto(live_server.url + "/checkout/")
    page.fill("input[name=email]", "shopper@example.com")
    page.locator("form.stacked button[type=submit]").click()
    page.wait_for_url("**/checkout/done/**")

    click = wait_for(lambda: Event.objects.filter(event_type="rec_click", token=token).first())
    assert click is not None, "the beacon did not store the rec_click"
    parsed = parse_token(click.token)
    assert parsed is not None and parsed.slot == "for_you" and parsed.product_key == clicked_key
    assert Event.objects.filter(event_type="rec_impression", slot="for_you").exists()

    purchase = wait_for(lambda: Event.objects.filter(event_type="purchase", product_key=clicked_key).first())
    assert purchase is not None, "the order did not record a purchase event"
    credited = attribute([purchase])
    assert credited[purchase.pk].slot == "for_you"
