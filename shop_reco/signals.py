"""Signals a shop sends so shop_reco hears about carts, orders and searches.

Send them from cart and checkout code; shop_reco's receivers turn each into tracked events.
"""

from django.dispatch import Signal

# request: HttpRequest | None; product: a product instance or its key (str).
product_viewed = Signal()

# request: HttpRequest | None; product: instance or key; quantity: int, positive for additions and negative
# for removals; basket_ref: str, optional.
cart_changed = Signal()

# request: HttpRequest | None; order_ref: str; lines: iterable of (product or key, quantity, unit_price);
# user: the customer or None; placed_at: datetime, optional.
order_placed = Signal()

# request: HttpRequest | None; query: str; results: int, optional.
searched = Signal()
