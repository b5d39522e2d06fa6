from django.apps import AppConfig


class BenchStorefrontConfig(AppConfig):
    name = "bench.storefront"
    label = "bench_storefront"
