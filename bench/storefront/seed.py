"""Seed the bench database: a catalogue, a published score version with every list, shoppers' histories."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

CATEGORIES = 30
PRODUCTS = 3000
VISITORS = 300
LIST_LENGTH = 20


def visitor_id(n: int) -> str:
    return f"{n:032x}"


def seed(seed_value: int = 7) -> dict:
    from django.core.cache import cache
    from django.utils import timezone

    from demo_shop.catalogue.models import Category, Product
    from shop_reco.models import Event, MerchandisingRule, RecommendationList, ScoreVersion
    from shop_reco.testing import publish_lists

    rng = random.Random(seed_value)
    Event.objects.all().delete()
    RecommendationList.objects.all().delete()
    ScoreVersion.objects.all().delete()
    MerchandisingRule.objects.all().delete()
    Product.objects.all().delete()
    Category.objects.all().delete()

    categories = Category.objects.bulk_create(
        Category(name=f"Category {n}", slug=f"category-{n}") for n in range(CATEGORIES)
    )
    products = Product.objects.bulk_create(
        Product(
            sku=f"SKU{n:05d}",
            name=f"Product {n}",
            description="A fine product " * 5,
            category=categories[n % CATEGORIES],
            price=Decimal(rng.randint(100, 5000)) / 100,
            stock=0 if n % 50 == 0 else rng.randint(1, 100),  # 2% out of stock
        )
        for n in range(PRODUCTS)
    )
    keys = [str(p.pk) for p in products]
    names = {category.pk: category.name for category in categories}
    by_category: dict[str, list[str]] = {}
    for product in products:
        by_category.setdefault(names[product.category_id], []).append(str(product.pk))

    def sample(pool: list[str], n: int, exclude: str = "") -> tuple[list[str], list[float]]:
        chosen = [key for key in rng.sample(pool, min(len(pool), n + 1)) if key != exclude][:n]
        return chosen, sorted((rng.random() for _ in chosen), reverse=True)

    lists: dict = {}
    for product in products:
        key = str(product.pk)
        same = by_category[names[product.category_id]]
        lists[("product", key, "similar")] = sample(same, LIST_LENGTH, key)
        lists[("product", key, "similar_cf")] = sample(keys, LIST_LENGTH, key)
        lists[("product", key, "bought_together")] = sample(keys, 10, key)
    for name, members in by_category.items():
        lists[("category", name, "trending")] = sample(members, 30)
        lists[("category", name, "popular")] = sample(members, 30)
    lists[("global", "", "trending")] = sample(keys, 50)
    lists[("global", "", "popular")] = sample(keys, 50)
    now = timezone.now()
    events = []
    for n in range(VISITORS):
        visitor = visitor_id(n + 1)
        lists[("visitor", visitor, "for_you")] = sample(keys, 30)
        for minute, key in enumerate(rng.sample(keys, 12)):
            event_type = "purchase" if minute < 2 else "view"
            events.append(
                Event(
                    event_type=event_type,
                    visitor_id=visitor,
                    product_key=key,
                    occurred_at=now - timedelta(minutes=minute + 1),
                )
            )
    Event.objects.bulk_create(events, batch_size=5000)
    version = publish_lists(lists)
    MerchandisingRule.objects.create(action="exclude", product_key=keys[5])
    MerchandisingRule.objects.create(action="boost", category="Category 3", strength=1.5)
    cache.clear()
    return {"products": keys, "visitors": [visitor_id(n + 1) for n in range(VISITORS)], "version": version.pk}
