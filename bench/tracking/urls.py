from django.http import HttpRequest, HttpResponse
from django.urls import include, path


def product(request: HttpRequest, pk: int) -> HttpResponse:
    return HttpResponse(f"<html><body>product {pk}</body></html>")


shop = ([path("product/<int:pk>/", product, name="product")], "bench")
urlpatterns = [path("reco/", include("shop_reco.urls")), path("", include(shop))]
