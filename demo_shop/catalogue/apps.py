from django.apps import AppConfig


class CatalogueConfig(AppConfig):
    name = "demo_shop.catalogue"
    label = "catalogue"
