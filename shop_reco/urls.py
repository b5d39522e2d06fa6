"""Include with ``path("reco/", include("shop_reco.urls"))``."""

from django.urls import path

from shop_reco.api import views

app_name = "shop_reco"

urlpatterns = [
    path("events/", views.BeaconView.as_view(), name="beacon"),
]

# Recommendation slot endpoints (and the OpenAPI schema when drf-spectacular is installed).
from shop_reco.api.recommendations import urlpatterns as _recommendation_urls  # noqa: E402

urlpatterns += _recommendation_urls
