"""Reference views: a bare JSON view, and one product page with and without three recommendation slots."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render

from demo_shop.catalogue.models import Product

_PAYLOAD = {"items": [{"key": str(n), "name": f"Product {n}", "price": "1.00"} for n in range(6)]}


def bare(request: HttpRequest) -> JsonResponse:
    """The baseline: Django with the same middleware, no database, a small JSON body."""
    return JsonResponse(_PAYLOAD)


def product_page(request: HttpRequest, pk: int, slots: bool) -> HttpResponse:
    product = get_object_or_404(Product.objects.select_related("category"), pk=pk)
    template = "bench_storefront/product.html" if slots else "bench_storefront/product_plain.html"
    return render(request, template, {"product": product})
