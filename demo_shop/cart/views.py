"""Cart pages: show the cart, add, update and remove lines (POST only)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from demo_shop.cart.cart import SessionCart
from demo_shop.cart.forms import CartAddForm, CartProductForm, CartUpdateForm
from demo_shop.catalogue.models import Product


def detail(request: HttpRequest) -> HttpResponse:
    return render(request, "cart/detail.html", {"cart": SessionCart(request)})


def _back(request: HttpRequest) -> HttpResponseRedirect:
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return HttpResponseRedirect(target)
    return redirect("cart:detail")


def _invalid(request: HttpRequest, form: CartProductForm) -> HttpResponse:
    return render(request, "cart/invalid.html", {"form": form}, status=400)


def _within_stock(request: HttpRequest, product: Product, quantity: int) -> int:
    """Cap a wanted quantity at the stock, telling the shopper why."""
    if quantity > product.stock:
        if product.stock:
            messages.warning(
                request, f"Only {product.stock} of {product.name.title()} left: quantity lowered."
            )
        else:
            messages.error(request, f"{product.name.title()} is out of stock.")
        return product.stock
    return quantity


@require_POST
def add(request: HttpRequest) -> HttpResponse:
    form = CartAddForm(request.POST)
    if not form.is_valid():
        return _invalid(request, form)
    cart, product = SessionCart(request), form.product
    wanted = _within_stock(request, product, cart.quantity_of(product) + form.cleaned_data["quantity"])
    if cart.set_quantity(product, wanted) > 0:
        messages.success(request, f"Added {product.name.title()} to your cart.")
    return _back(request)


@require_POST
def update(request: HttpRequest) -> HttpResponse:
    form = CartUpdateForm(request.POST)
    if not form.is_valid():
        return _invalid(request, form)
    product = form.product
    quantity = form.cleaned_data["quantity"]
    # A retired product can only leave the cart.
    quantity = _within_stock(request, product, quantity) if product.is_active else 0
    SessionCart(request).set_quantity(product, quantity)
    return _back(request)


@require_POST
def remove(request: HttpRequest) -> HttpResponse:
    form = CartProductForm(request.POST)
    if not form.is_valid():
        return _invalid(request, form)
    if SessionCart(request).remove(form.product):
        messages.info(request, f"Removed {form.product.name.title()} from your cart.")
    return _back(request)
