from django.apps import AppConfig


class CartConfig(AppConfig):
    name = "demo_shop.cart"
    label = "cart"
