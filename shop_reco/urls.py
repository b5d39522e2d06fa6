"""Include with ``path("reco/", include("shop_reco.urls"))``."""

from django.urls import path

from shop_reco.api import views

app_name = "shop_reco"

urlpatterns = [
    path("events/", views.BeaconView.as_view(), name="beacon"),
]
