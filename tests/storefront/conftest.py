from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.cache import cache

from shop_reco.services.lists import clear_caches


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Lists, versions and rules are memoised per process: every test starts cold."""
    clear_caches()
    cache.clear()
    yield
    clear_caches()
    cache.clear()


class Catalogue:
    """Three categories of four products each; keys are the primary keys as text."""

    def __init__(self) -> None:
        from demo_shop.catalogue.models import Category, Product

        self.categories = {
            name: Category.objects.create(name=name, slug=name.lower())
            for name in ("Kitchen", "Garden", "Toys")
        }
        self.products = {}
        for category in self.categories.values():
            for index in range(1, 5):
                name = f"{category.name} {index}"
                self.products[name] = Product.objects.create(
                    sku=f"{category.slug[:3].upper()}{index}",
                    name=name,
                    category=category,
                    price=Decimal(f"{index}.50"),
                    stock=10,
                )

    def __getitem__(self, name: str):
        return self.products[name]

    def key(self, name: str) -> str:
        return str(self.products[name].pk)

    def keys(self, *names: str) -> list[str]:
        return [self.key(name) for name in names]

    def name_of(self, key: str) -> str:
        return next(name for name, product in self.products.items() if str(product.pk) == key)

    def names(self, keys) -> list[str]:
        return [self.name_of(key) for key in keys]


@pytest.fixture
def catalogue(db) -> Catalogue:
    return Catalogue()
