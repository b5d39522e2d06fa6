"""Storefront pages: home, category listing, product page and search."""

from __future__ import annotations

from django.core.paginator import Page, Paginator
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from demo_shop.cart.cart import SessionCart
from demo_shop.catalogue.models import Category, Product
from shop_reco.signals import searched

PAGE_SIZE = 24
HOME_PRODUCTS = 12
MAX_QUERY_LENGTH = 100


def _active_products() -> QuerySet[Product]:
    return Product.objects.filter(is_active=True).select_related("category")


def _page(request: HttpRequest, queryset: QuerySet[Product]) -> Page:
    # get_page copes with a missing, non-numeric or out-of-range ?page= by falling back to a valid page.
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


def home(request: HttpRequest) -> HttpResponse:
    active = Q(products__is_active=True)
    categories = Category.objects.annotate(product_count=Count("products", filter=active))
    # Best sellers by number of order lines, in stock only, so the first grid is always buyable.
    products = (
        _active_products()
        .filter(stock__gt=0)
        .annotate(times_ordered=Count("order_lines"))
        .order_by("-times_ordered", "name")[:HOME_PRODUCTS]
    )
    return render(request, "catalogue/home.html", {"categories": categories, "products": products})


def category(request: HttpRequest, slug: str) -> HttpResponse:
    category = get_object_or_404(Category, slug=slug)
    page = _page(request, _active_products().filter(category=category).order_by("name", "pk"))
    return render(request, "catalogue/category.html", {"category": category, "page": page})


def product(request: HttpRequest, pk: int) -> HttpResponse:
    product = get_object_or_404(_active_products(), pk=pk)
    return render(
        request,
        "catalogue/product.html",
        {"product": product, "in_cart": SessionCart(request).quantity_of(product)},
    )


def search(request: HttpRequest) -> HttpResponse:
    query = " ".join(request.GET.get("q", "").split())[:MAX_QUERY_LENGTH]
    products = _active_products().none()
    if query:
        # Every word must match the name or the stock code, in any order.
        condition = Q()
        for word in query.split():
            condition &= Q(name__icontains=word) | Q(sku__iexact=word)
        products = _active_products().filter(condition).order_by("name", "pk")
    page = _page(request, products)
    # Only the first page is a new search; paging through results is not.
    if query and page.number == 1:
        searched.send(sender=Product, request=request, query=query, results=page.paginator.count)
    return render(request, "catalogue/search.html", {"query": query, "page": page})
