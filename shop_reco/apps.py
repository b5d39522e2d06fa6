from django.apps import AppConfig


class ShopRecoConfig(AppConfig):
    name = "shop_reco"
    verbose_name = "Recommendations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registration only: checks and signal receivers. No queries, no Celery calls.
        from shop_reco import checks, receivers  # noqa: F401
