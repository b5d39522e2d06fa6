from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from demo_shop.catalogue.models import Category, Product
from shop_reco.models import Event


@pytest.fixture
def shop(db):
    """A small shop: 12 products in two categories, 30 customers with baskets that repeat known pairs."""
    mugs = Category.objects.create(name="Mugs", slug="mugs")
    bags = Category.objects.create(name="Bags", slug="bags")
    products = [
        Product.objects.create(
            sku=f"P{n}",
            name=f"{'Mug' if n < 6 else 'Bag'} number {n}",
            description=("ceramic tea mug" if n < 6 else "cotton shopping bag") + f" style {n % 3}",
            category=mugs if n < 6 else bags,
            price=2 + n,
            stock=0 if n == 11 else 10,
        )
        for n in range(12)
    ]
    users = [get_user_model().objects.create(username=f"c{n}") for n in range(30)]
    start = timezone.now() - timedelta(days=20)
    events = []
    for n, user in enumerate(users):
        # Pairs (0,1), (2,3), (6,7) are bought together again and again; everyone also buys one extra item.
        pair = [(0, 1), (2, 3), (6, 7)][n % 3]
        basket = [*pair, 4 + n % 8]
        for position, index in enumerate(basket):
            events.append(
                Event(
                    event_type="purchase",
                    user=user,
                    visitor_id=f"vis{n}",
                    product_key=str(products[index].pk),
                    quantity=1,
                    basket_ref=f"order-{n}",
                    occurred_at=start + timedelta(hours=n, minutes=position),
                )
            )
        events.append(
            Event(
                event_type="view",
                visitor_id=f"anon{n}",
                product_key=str(products[pair[0]].pk),
                occurred_at=start + timedelta(hours=n, minutes=30),
            )
        )
    Event.objects.bulk_create(events)
    return {"products": products, "users": users}
