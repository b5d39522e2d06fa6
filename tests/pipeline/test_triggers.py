"""Incremental triggers: orders and cart changes refresh the shopper, a new product is indexed."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import RequestFactory, override_settings

from shop_reco import receivers, signals, sources
from shop_reco.models import Event, RecommendationList
from shop_reco.pipeline_tasks import recompute
from shop_reco.services import recompute as pipeline

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch):
    """The (task, argument) pairs the receivers queue, instead of running them."""
    calls: list[tuple[str, str]] = []

    def queue_task(name: str, argument: str) -> None:
        calls.append((name.rsplit(".", 1)[1], argument))

    monkeypatch.setattr(receivers, "queue_task", queue_task)
    return calls


def test_an_order_queues_a_refresh_of_its_customer_after_commit(
    shop, queued, django_capture_on_commit_callbacks
):
    customer = shop["users"][0]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        signals.order_placed.send(
            sender=None, order_ref="o-1", lines=[(shop["products"][2], 1, 5)], user=customer
        )
    assert queued == []  # nothing before the commit
    for callback in callbacks:
        callback()
    assert queued == [("update_shopper", f"u:{customer.pk}")]


def test_a_cart_change_queues_a_refresh_and_a_zero_change_does_not(
    shop, queued, django_capture_on_commit_callbacks
):
    request = RequestFactory().post("/cart/")
    request.user = shop["users"][1]
    with django_capture_on_commit_callbacks(execute=True):
        signals.cart_changed.send(sender=None, request=request, product=shop["products"][3], quantity=0)
        signals.cart_changed.send(sender=None, request=request, product=shop["products"][3], quantity=2)
    assert queued == [("update_shopper", f"u:{shop['users'][1].pk}")]


def test_a_new_product_is_indexed_and_an_edit_is_not(shop, queued, django_capture_on_commit_callbacks):
    from demo_shop.catalogue.models import Category, Product

    with django_capture_on_commit_callbacks(execute=True):
        mug = Product.objects.create(
            sku="NEW", name="Mug number 99", category=Category.objects.get(name="Mugs"), price=3, stock=5
        )
        mug.price = 4
        mug.save()
        get_user_model().objects.create(username="not-a-product")
    assert queued == [("index_new_product", str(mug.pk))]


def test_an_order_refreshes_the_live_for_you_list_end_to_end(shop, django_capture_on_commit_callbacks):
    version_id = recompute.delay().get()
    keys = [str(p.pk) for p in shop["products"]]
    newcomer = get_user_model().objects.create(username="newcomer")
    with django_capture_on_commit_callbacks(execute=True):
        signals.order_placed.send(sender=None, order_ref="o-new", lines=[(keys[6], 1, 8)], user=newcomer)
    stored = RecommendationList.objects.get(
        version_id=version_id, kind="user", subject=str(newcomer.pk), source=sources.FOR_SHOPPER
    )
    assert stored.item_keys[0] == keys[7]  # 6 and 7 are bought together


def test_update_shopper_flushes_the_event_buffer_first(shop, redis_url):
    from shop_reco.tracking import buffer, track

    version_id = recompute.delay().get()
    keys = [str(p.pk) for p in shop["products"]]
    with override_settings(SHOP_RECO={**_settings(), "EVENT_BUFFER_URL": redis_url}):
        buffer.reset_breaker()
        track("purchase", visitor_id="buffered", product=keys[2], basket_ref="b-1")
        assert not Event.objects.filter(visitor_id="buffered").exists()  # still in Redis
        assert pipeline.update_shopper("v:buffered")
    assert Event.objects.filter(visitor_id="buffered").exists()
    stored = RecommendationList.objects.get(
        version_id=version_id, kind="visitor", subject="buffered", source=sources.FOR_SHOPPER
    )
    assert stored.item_keys[0] == keys[3]


def _settings() -> dict:
    from django.conf import settings

    return dict(settings.SHOP_RECO)
