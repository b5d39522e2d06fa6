from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("reco/", include("shop_reco.urls")),
    path("cart/", include("demo_shop.cart.urls")),
    path("checkout/", include("demo_shop.orders.urls")),
    path("accounts/", include("demo_shop.accounts.urls")),
    path("", include("demo_shop.catalogue.urls")),
]
