"""Checkout, the order confirmation and a customer's order history."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from demo_shop.cart.cart import SessionCart
from demo_shop.orders.forms import CheckoutForm
from demo_shop.orders.models import Order
from demo_shop.orders.services import CheckoutError, place_order

# Order numbers this session placed, so a guest can see their own confirmation page and no other.
SESSION_ORDERS = "placed_orders"
HISTORY_PAGE_SIZE = 10


def checkout(request: HttpRequest) -> HttpResponse:
    cart = SessionCart(request)
    if not cart:
        messages.info(request, "Your cart is empty.")
        return redirect("cart:detail")
    signed_in = request.user.is_authenticated
    # A signed-in customer may leave the email out: the account's own is used.
    account_email = getattr(request.user, "email", "")
    if request.method == "POST":
        form = CheckoutForm(request.POST, signed_in=signed_in)
        if form.is_valid():
            email = form.cleaned_data["email"] or account_email
            try:
                order = place_order(request, cart, email=email)
            except CheckoutError as exc:
                messages.error(request, str(exc))
                return redirect("cart:detail")
            request.session[SESSION_ORDERS] = [*request.session.get(SESSION_ORDERS, [])[-9:], order.number]
            return redirect("orders:done", number=order.number)
    else:
        form = CheckoutForm(initial={"email": account_email}, signed_in=signed_in)
    return render(request, "orders/checkout.html", {"form": form, "cart": cart})


def done(request: HttpRequest, number: str) -> HttpResponse:
    order = get_object_or_404(Order.objects.select_related("user"), number=number)
    own = request.user.is_authenticated and order.user_id == request.user.pk
    if not own and number not in request.session.get(SESSION_ORDERS, []):
        raise Http404("No such order.")
    lines = order.lines.select_related("product")
    return render(request, "orders/done.html", {"order": order, "lines": lines})


@login_required
def history(request: HttpRequest) -> HttpResponse:
    orders = (
        Order.objects.filter(user=request.user)  # type: ignore[misc]  # login_required: never anonymous
        .prefetch_related("lines__product")
        .order_by("-placed_at", "-pk")
    )
    page = Paginator(orders, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "orders/history.html", {"page": page})
