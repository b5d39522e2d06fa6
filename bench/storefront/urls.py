"""The demo shop's URLs plus the benchmark's reference views."""

from django.urls import include, path

from bench.storefront import views

urlpatterns = [
    path("bench/bare/", views.bare, name="bench-bare"),
    path("bench/page/<int:pk>/", views.product_page, {"slots": True}, name="bench-page"),
    path("bench/plain/<int:pk>/", views.product_page, {"slots": False}, name="bench-plain"),
    path("", include("demo_shop.urls")),
]
