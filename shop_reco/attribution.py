"""Attribution: which slot, source and score version earned a click, an add to cart or a purchase.

Every recommended link carries a token::

    s.sim.1c.3.85123A.Q2x9fPb1c0aK
    |  |   |  | |      `- 72-bit HMAC (SECRET_KEY, salt "shop_reco.rt"), so tokens cannot be forged cheaply
    |  |   |  | `- product key (omitted when long or unusual)
    |  |   |  `- position in the slot, 1-based, base 36
    |  |   `- score version id, base 36 ("0" for live fallbacks)
    |  `- source code
    `- slot code

It fits ``Event.token`` (64 characters) and a query string unescaped. It is built on
``django.utils.crypto.salted_hmac``, the primitive under ``django.core.signing``, truncated to stay compact:
a forged token only misattributes one click, so 72 bits are plenty.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Q
from django.utils.crypto import constant_time_compare, salted_hmac

from shop_reco import sources
from shop_reco.conf import reco_settings
from shop_reco.models import Event

SALT = "shop_reco.rt"
QUERY_PARAM = "rt"  # ?rt=<token> on recommended links, for clicks the beacon cannot see
MAX_LENGTH = 64

SLOT_CODES = {
    "similar": "s",
    "bought_together": "b",
    "cart": "c",
    "for_you": "f",
    "trending": "t",
    "recently_viewed": "r",
    "buy_again": "a",
}
SOURCE_CODES = {
    sources.SIMILAR_HYBRID: "sim",
    sources.SIMILAR_CF: "scf",
    sources.SIMILAR_CONTENT: "sct",
    sources.BOUGHT_TOGETHER: "bt",
    sources.FOR_SHOPPER: "fy",
    sources.BUY_AGAIN: "ba",
    sources.POPULAR: "pop",
    sources.TRENDING: "tr",
    "live_popular": "lp",
    "catalogue": "cat",
    "pinned": "pin",
    "recently_viewed": "rv",
    "purchase_history": "ph",
}
_SLOT_NAMES = {code: name for name, code in SLOT_CODES.items()}
_SOURCE_NAMES = {code: name for name, code in SOURCE_CODES.items()}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,23}$")
_KEY = re.compile(r"^[A-Za-z0-9_\-.]{1,20}$")
_MAC_CHARS = 12


@dataclass(frozen=True)
class RecoToken:
    slot: str
    source: str
    version_id: int | None
    position: int
    product_key: str = ""


def _b36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    if number <= 0:
        return "0"
    out = ""
    while number:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
    return out


def _mac(payload: str) -> str:
    digest = salted_hmac(SALT, payload, algorithm="sha256").digest()[:9]
    return base64.urlsafe_b64encode(digest).decode()


def _code(name: str, codes: dict[str, str]) -> str:
    if name in codes:
        return codes[name]
    # Custom slots and sources travel by name; a code never contains a dot.
    return name if _NAME.match(name) else "x"


def make_token(slot: str, source: str, version_id: int | None, position: int, product_key: str = "") -> str:
    """A compact signed token for one recommended link."""
    payload = ".".join(
        (_code(slot, SLOT_CODES), _code(source, SOURCE_CODES), _b36(version_id or 0), _b36(max(position, 0)))
    )
    if product_key and _KEY.match(product_key):
        payload += "." + product_key
    return f"{payload}.{_mac(payload)}"


def parse_token(token: str | None) -> RecoToken | None:
    """The decoded token, or None when it is malformed or its signature does not match."""
    if not token or not isinstance(token, str) or len(token) > MAX_LENGTH:
        return None
    payload, _, mac = token.rpartition(".")
    if len(mac) != _MAC_CHARS or not payload or not constant_time_compare(mac, _mac(payload)):
        return None
    parts = payload.split(".", 4)
    if len(parts) < 4:
        return None
    slot_code, source_code, version, position = parts[:4]
    try:
        version_id = int(version, 36)
        position_number = int(position, 36)
    except ValueError:
        return None
    return RecoToken(
        slot=_SLOT_NAMES.get(slot_code, slot_code),
        source=_SOURCE_NAMES.get(source_code, source_code),
        version_id=version_id or None,
        position=position_number,
        product_key=parts[4] if len(parts) == 5 else "",
    )


# --- joining outcomes to clicks ---


@dataclass(frozen=True)
class Attribution:
    """The rec_click an event is credited to (last click wins)."""

    event_id: int
    click_id: int
    clicked_at: datetime
    token: RecoToken

    @property
    def slot(self) -> str:
        return self.token.slot

    @property
    def source(self) -> str:
        return self.token.source

    @property
    def version_id(self) -> int | None:
        return self.token.version_id


def _window(window: timedelta | None) -> timedelta:
    return window if window is not None else timedelta(days=float(reco_settings.ATTRIBUTION_WINDOW_DAYS))


def attribute(events: Iterable[Event], *, window: timedelta | None = None) -> dict[int, Attribution]:
    """Credit each event (add_to_cart, purchase, ...) to the shopper's latest earlier rec_click on the same
    product within the attribution window. Returns {event id: Attribution}; unattributed events are absent.

    One query for the candidate clicks of all the given events.
    """
    events = [event for event in events if event.product_key and (event.user_id or event.visitor_id)]
    if not events:
        return {}
    window = _window(window)
    users = {event.user_id for event in events if event.user_id}
    visitors = {event.visitor_id for event in events if event.visitor_id}
    keys = {event.product_key for event in events}
    earliest = min(event.occurred_at for event in events) - window
    latest = max(event.occurred_at for event in events)
    who = Q()
    if users:
        who |= Q(user_id__in=users)
    if visitors:
        who |= Q(visitor_id__in=visitors)
    clicks = (
        Event.objects.filter(who, event_type="rec_click", occurred_at__gte=earliest, occurred_at__lte=latest)
        .exclude(token="")
        # A click without a product key is matched through the key inside its token.
        .filter(Q(product_key__in=keys) | Q(product_key=""))
        .order_by("occurred_at")
        .values_list("pk", "user_id", "visitor_id", "product_key", "token", "occurred_at")
    )
    by_key: dict[str, list[tuple[int, Any, str, datetime, RecoToken]]] = {}
    for pk, user_id, visitor_id, product_key, raw_token, occurred_at in clicks:
        token = parse_token(raw_token)
        if token is None:
            continue
        key = product_key or token.product_key
        if key in keys:
            by_key.setdefault(key, []).append((pk, user_id, visitor_id, occurred_at, token))
    result = {}
    for event in events:
        best = None
        for pk, user_id, visitor_id, occurred_at, token in by_key.get(event.product_key, ()):
            if occurred_at > event.occurred_at:
                break
            if occurred_at < event.occurred_at - window:
                continue
            same_user = event.user_id is not None and user_id == event.user_id
            same_visitor = bool(event.visitor_id) and visitor_id == event.visitor_id
            if same_user or same_visitor:
                best = Attribution(event.pk, pk, occurred_at, token)
        if best is not None:
            result[event.pk] = best
    return result


@dataclass
class SlotRevenue:
    slot: str
    source: str
    version_id: int | None
    purchases: int = 0
    quantity: int = 0
    revenue: Decimal = Decimal("0")


def attributed_revenue(
    since: datetime, until: datetime, *, window: timedelta | None = None, chunk_size: int = 2000
) -> list[SlotRevenue]:
    """Revenue of purchases in [since, until) credited to (slot, source, version), largest first."""
    totals: dict[tuple[str, str, int | None], SlotRevenue] = {}
    purchases = (
        Event.objects.filter(event_type="purchase", occurred_at__gte=since, occurred_at__lt=until)
        .exclude(product_key="")
        .order_by("pk")
    )
    batch: list[Event] = []

    def flush() -> None:
        credited = attribute(batch, window=window)
        for event in batch:
            credit = credited.get(event.pk)
            if credit is None:
                continue
            group = (credit.slot, credit.source, credit.version_id)
            row = totals.setdefault(group, SlotRevenue(*group))
            row.purchases += 1
            row.quantity += event.quantity
            row.revenue += (event.unit_price or Decimal("0")) * event.quantity
        batch.clear()

    for event in purchases.iterator(chunk_size=chunk_size):
        batch.append(event)
        if len(batch) >= chunk_size:
            flush()
    flush()
    return sorted(totals.values(), key=lambda row: (-row.revenue, row.slot, row.source))
