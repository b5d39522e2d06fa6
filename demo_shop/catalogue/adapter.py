"""How shop_reco sees the demo catalogue."""

from django.db.models import QuerySet

from demo_shop.cart.cart import SessionCart
from shop_reco.adapters import DefaultShopAdapter


class DemoShopAdapter(DefaultShopAdapter):
    def all_products(self) -> QuerySet:
        return super().all_products().select_related("category")

    def product_category(self, product) -> str:
        return product.category.name

    def product_name(self, product) -> str:
        # Online Retail descriptions are upper case; the shop's own pages show those title-cased too.
        return product.name.title() if product.name.isupper() else product.name

    def product_attributes(self, product) -> dict[str, str]:
        return {"category": product.category.name}

    def cart_product_keys(self, request) -> list[str]:
        # The session cart's keys are product ids as text already: no query.
        if getattr(request, "session", None) is None:
            return []
        return list(request.session.get(SessionCart.session_key, {}))
