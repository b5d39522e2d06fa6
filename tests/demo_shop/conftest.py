from __future__ import annotations

from decimal import Decimal

import pytest

from demo_shop.catalogue.models import Category, Product


@pytest.fixture
def category(db) -> Category:
    return Category.objects.create(name="Candles & lights", slug="candles-lights")


@pytest.fixture
def product(category: Category) -> Product:
    name = "WHITE HANGING HEART T-LIGHT HOLDER"
    return Product.objects.create(sku="85123A", name=name, category=category, price=Decimal("2.95"), stock=10)


@pytest.fixture
def other_product(category: Category) -> Product:
    return Product.objects.create(
        sku="71053", name="WHITE METAL LANTERN", category=category, price=Decimal("3.75"), stock=5
    )


@pytest.fixture
def sold_out(category: Category) -> Product:
    return Product.objects.create(
        sku="22423", name="REGENCY CAKESTAND 3 TIER", category=category, price=Decimal("12.75"), stock=0
    )
