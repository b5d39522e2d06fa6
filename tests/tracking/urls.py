"""A tiny shop for tracking tests: product and other pages, login and logout, and shop_reco's URLs."""

from django.contrib.auth import get_user_model, login, logout
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import include, path

from shop_reco.signals import cart_changed


def product(request: HttpRequest, pk: int) -> HttpResponse:
    if pk >= 10_000_000:
        raise Http404("No such product")
    return HttpResponse(f"product {pk}")


def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse("home")


def add_to_cart(request: HttpRequest, pk: int) -> HttpResponse:
    cart_changed.send(sender=None, request=request, product=str(pk), quantity=1)
    return HttpResponse("added")


def login_view(request: HttpRequest, username: str) -> HttpResponse:
    login(request, get_user_model().objects.get(username=username))
    return HttpResponse("in")


def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    return HttpResponse("out")


shop = (
    [
        path("", home, name="home"),
        path("product/<int:pk>/", product, name="product"),
        path("cart/add/<int:pk>/", add_to_cart, name="add"),
        path("login/<str:username>/", login_view, name="login"),
        path("logout/", logout_view, name="logout"),
    ],
    "shop",
)

urlpatterns = [
    path("reco/", include("shop_reco.urls")),
    path("", include(shop)),
]
