"""Sign-up; login and logout are Django's own views with the shop's template."""

from __future__ import annotations

from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from demo_shop.accounts.forms import SignupForm


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("catalogue:home")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        # login() keeps the session's cart: only the session key rotates.
        login(request, form.save())
        return redirect("catalogue:home")
    return render(request, "accounts/signup.html", {"form": form})
