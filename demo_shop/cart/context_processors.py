from django.http import HttpRequest

from demo_shop.cart.cart import SessionCart


def cart(request: HttpRequest) -> dict[str, SessionCart]:
    """The visitor's cart on every page, for the header count and the reco_cart slot."""
    return {"cart": SessionCart(request)}
