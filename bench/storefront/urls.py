"""The demo shop's URLs plus the benchmark's reference views.

The demo shop's patterns are this root's own, as in the demo shop (``demo_shop.urls`` is its root URLconf):
wrapped in ``include()`` they cost the recommendation endpoints a third resolver level (~25 us a request on
this benchmark's machine) that neither the demo shop nor the bare view pays.
"""

from django.urls import path

from bench.storefront import views
from demo_shop.urls import urlpatterns as demo_shop_urlpatterns

urlpatterns = [
    path("bench/bare/", views.bare, name="bench-bare"),
    path("bench/page/<int:pk>/", views.product_page, {"slots": True}, name="bench-page"),
    path("bench/plain/<int:pk>/", views.product_page, {"slots": False}, name="bench-plain"),
    *demo_shop_urlpatterns,
]
