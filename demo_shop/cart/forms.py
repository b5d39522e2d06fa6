"""Validation of cart posts, so bad input becomes a 400 with a message rather than a server error."""

from __future__ import annotations

from django import forms

from demo_shop.cart.cart import MAX_QUANTITY
from demo_shop.catalogue.models import Product


class CartProductForm(forms.Form):
    product_id = forms.IntegerField(min_value=1)
    product: Product  # set by clean_product_id
    # Retired products may still be removed from a cart, but not added.
    active_only = False

    def clean_product_id(self) -> int:
        pk = self.cleaned_data["product_id"]
        products = Product.objects.filter(is_active=True) if self.active_only else Product.objects.all()
        product = products.filter(pk=pk).first()
        if product is None:
            raise forms.ValidationError("There is no such product.")
        self.product = product
        return pk


class CartAddForm(CartProductForm):
    quantity = forms.IntegerField(min_value=1, max_value=MAX_QUANTITY, required=False)
    active_only = True

    def clean_quantity(self) -> int:
        return self.cleaned_data["quantity"] or 1


class CartUpdateForm(CartProductForm):
    # 0 removes the line.
    quantity = forms.IntegerField(min_value=0, max_value=MAX_QUANTITY)
