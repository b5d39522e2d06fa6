"""How shop_reco sees the demo catalogue."""

from django.db.models import QuerySet

from shop_reco.adapters import DefaultShopAdapter


class DemoShopAdapter(DefaultShopAdapter):
    def all_products(self) -> QuerySet:
        return super().all_products().select_related("category")

    def product_category(self, product) -> str:
        return product.category.name

    def product_attributes(self, product) -> dict[str, str]:
        return {"category": product.category.name}
