from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from demo_shop.catalogue.models import Category, Product
from shop_reco.models import RecommendationList, ScoreVersion
from shop_reco.services import experiments, lists, tuning


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Process-level memos would carry one test's configuration or live version into the next."""
    from django.core.cache import cache

    cache.clear()
    lists.clear_caches()
    experiments.clear_memo()
    with tuning._lock:
        tuning._local.clear()
    yield
    cache.clear()
    lists.clear_caches()
    experiments.clear_memo()


@pytest.fixture
def catalogue(db) -> dict[str, Product]:
    """Six products in two categories, keyed by their primary key as text (the product key)."""
    mugs = Category.objects.create(name="Mugs", slug="mugs")
    lamps = Category.objects.create(name="Lamps", slug="lamps")
    products = {}
    for index in range(6):
        product = Product.objects.create(
            sku=f"SKU{index}",
            name=f"{'Mug' if index < 3 else 'Lamp'} {index}",
            category=mugs if index < 3 else lamps,
            price=Decimal("10.00") + index,
            stock=5,
        )
        products[str(product.pk)] = product
    return products


@pytest.fixture
def published(catalogue) -> ScoreVersion:
    """A published version whose lists rank every other product for each product, the popular list too."""
    keys = list(catalogue)
    version = ScoreVersion.objects.create(
        family="full",
        status=ScoreVersion.Status.PUBLISHED,
        metrics={"precision_at_10": 0.12, "coverage": 0.5},
        timings={"matrix": 1.5, "similar": 2.5, "total": 4.0},
        input_counts={"events": 120, "products": 6},
        steps_done=4,
        steps_total=4,
    )
    for key in keys:
        others = [other for other in keys if other != key]
        for source in ("similar", "bought_together"):
            RecommendationList.objects.create(
                version=version,
                kind="product",
                subject=key,
                source=source,
                item_keys=others,
                scores=[1.0 - 0.1 * rank for rank in range(len(others))],
            )
    RecommendationList.objects.create(
        version=version,
        kind="global",
        subject="",
        source="popular",
        item_keys=keys,
        scores=[6, 5, 4, 3, 2, 1],
    )
    from django.utils import timezone

    ScoreVersion.objects.filter(pk=version.pk).update(published_at=timezone.now())
    version.refresh_from_db()
    return version


@pytest.fixture
def staff_with(django_user_model):
    """A staff user holding exactly the given permissions ("shop_reco.view_recoconfig", ...)."""

    def make(*perms: str, username: str = "merch"):
        user = django_user_model.objects.create_user(username=username, password="pw", is_staff=True)
        for perm in perms:
            app_label, codename = perm.split(".")
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        return django_user_model.objects.get(pk=user.pk)  # fresh: no stale permission cache

    return make
