"""Who is shopping and what this page already shows: the state every slot of one request shares."""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connections, models, router
from django.http import HttpRequest
from django.utils import timezone

from shop_reco.adapters import BaseShopAdapter, get_adapter
from shop_reco.conf import reco_settings
from shop_reco.models import Event
from shop_reco.services import row_refresh
from shop_reco.services.lists import _rows, live_version_id, rows_due
from shop_reco.tracking.history import HISTORY_EVENT_TYPES, cached_history

logger = logging.getLogger("shop_reco.recommendations")

REQUEST_ATTR = "_shop_reco_context"

# Share of PRODUCT_CACHE_SECONDS by which a cached product row's lifetime is shortened at random (per query).
ROW_LIFETIME_JITTER = 0.2


# (what, id of a shared read-only object) -> (that object, the value worked out from it)
_derived: dict[tuple[Any, int], tuple[Any, Any]] = {}


def derived_from(source: Any, what: Any, build: Any) -> Any:
    """``build()``, once per ``source`` object. The hot path's inputs are shared read-only objects that a
    reload replaces rather than edits (the tuning service's configuration dict, a cached history's rows), so
    values derived from them (a slot's options, its blend weights, a History) are shared and read-only too."""
    key = (what, id(source))
    hit = _derived.get(key)
    if hit is not None and hit[0] is source:  # the same object, not a new one at a reused address
        return hit[1]
    value = build()
    if len(_derived) > 8192:  # objects built per call (the settings-only fallback) come and go
        _derived.clear()
    _derived[key] = (source, value)
    return value


@dataclass(frozen=True)
class ProductRow:
    product: Any
    available: bool
    category: str
    # What slots show of the product (name, url, ...), filled on first use: a row shared through the
    # per-process cache is described once, not once per request.
    shown: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass
class History:
    """The shopper's latest views and purchases, newest first, from one indexed query.

    Read-only: the History of an unchanged cached history is shared by every request that reads it.
    """

    recent_views: list[str] = field(default_factory=list)
    purchase_counts: Counter[str] = field(default_factory=Counter)
    last_purchased: dict[str, datetime] = field(default_factory=dict)

    @property
    def purchased(self) -> set[str]:
        return set(self.purchase_counts)


class RecoContext:
    """One shopper on one page. Slots rendered with the same context never repeat a product."""

    def __init__(
        self,
        *,
        user_id: Any = None,
        visitor_id: str = "",
        cart_keys: Iterable[str] = (),
        shown: Iterable[str] = (),
        request: HttpRequest | None = None,
        now: datetime | None = None,
        adapter: BaseShopAdapter | None = None,
    ) -> None:
        self.user_id = user_id
        self.visitor_id = visitor_id or ""
        self.cart_keys: set[str] = {str(key) for key in cart_keys if key}
        # The page context: keys earlier slots showed on this page.
        self.shown: set[str] = {str(key) for key in shown if key}
        self.request = request
        self.now = now or timezone.now()
        self.adapter = adapter or get_adapter()
        self.products: dict[str, ProductRow | None] = {}
        self._history: History | None = None
        self._version_id: int | bool | None = False
        self._config: dict[str, Any] | None = None
        self._slot_options: dict[str, dict[str, Any]] = {}
        self.memo: dict[str, Any] = {}  # per-page lookups the slots share (translated reasons, ...)
        # While a slot is computed for the slot memo: the stored lists it read.
        self.lists_read: dict[Any, Any] | None = None
        # The slot memo the last slot came from or went into (a SlotMemo), for its rendered forms.
        self.slot_memo: Any = None

    @property
    def version_id(self) -> int | None:
        if self._version_id is False:
            self._version_id = live_version_id()
        return self._version_id  # type: ignore[return-value]

    @property
    def config(self) -> dict[str, Any]:
        """The shopper's effective configuration (``services.tuning``), read once per context; read-only.

        A request's own context asks the running experiment for the shopper's variant (which records the
        exposure); a context built for someone else (preview, tasks) reads the live configuration.
        """
        if self._config is None:
            self._config = shopper_config(self)
        return self._config

    def slot_options(self, slot: str) -> dict[str, Any]:
        """The slot's options: built-in, then ``SHOP_RECO["SLOTS"]``, then the effective configuration."""
        options = self._slot_options.get(slot)
        if options is None:
            config = self.config

            def build() -> dict[str, Any]:
                from shop_reco.services.recommendations import slot_options

                options = slot_options(slot)
                options.update((config.get("SLOTS") or {}).get(slot) or {})
                return options

            options = self._slot_options[slot] = derived_from(config, ("slot options", slot), build)
        return options

    def blend_weights(self, slot: str) -> Mapping[str, float]:
        """``BLEND_WEIGHTS`` of ``slot`` in the effective configuration: {source: weight}."""
        return (self.config.get("BLEND_WEIGHTS") or {}).get(slot) or {}

    @property
    def has_shopper(self) -> bool:
        return self.user_id is not None or bool(self.visitor_id)

    @property
    def history(self) -> History:
        if self._history is None:
            self._history = self._load_history()
        return self._history

    def _load_history(self) -> History:
        if not self.has_shopper:
            return History()
        limit = int(reco_settings.HISTORY_LENGTH)
        rows = cached_history(
            self.user_id, self.visitor_id, lambda: _history_rows(self.user_id, self.visitor_id, limit)
        )
        # The cache hands out the same rows object while a history is unchanged: build its History once.
        return derived_from(rows, "history", lambda: _history_of(rows))  # type: ignore[no-any-return]

    # --- products: one query per batch of keys, shared by every slot of the page ---

    def remember(self, product: Any, *, available: bool | None = None) -> str:
        """Add an already loaded product (the page's own, a catalogue row); returns its key."""
        key = self.adapter.product_key(product)
        if key not in self.products or self.products[key] is None:
            self.products[key] = ProductRow(product, bool(available), self.adapter.product_category(product))
        return key

    def fetch(self, keys: Iterable[str], *, anchors: Iterable[str] = ()) -> None:
        """Load every key not loaded yet in one query of available products.

        ``anchors`` (products a reason names, the page's own product) are needed even when unavailable: those
        not found among the available ones are read in a second query, which only an out-of-stock anchor
        costs.
        """
        anchors = [key for key in anchors if key and key not in self.products]
        missing = list(dict.fromkeys([key for key in keys if key and key not in self.products] + anchors))
        if not missing:
            return
        seconds = float(reco_settings.PRODUCT_CACHE_SECONDS)
        if seconds > 0:
            # Rows this process read a moment ago: no query for them (stock changes show within seconds).
            now = time.monotonic()
            row_refresh.note_read(now)
            wanted_anchors = set(anchors)
            still = []
            for key in missing:
                hit = _rows.get(key)
                # None means "not available": enough, except for an anchor, whose row is needed anyway.
                if hit is not None and hit[0] > now and (hit[1] is not None or key not in wanted_anchors):
                    self.products[key] = hit[1]
                else:
                    still.append(key)
            missing = still
            if not missing:
                return
            if not row_refresh.running():
                # This request queries anyway: rows due soon come along (see lists.rows_due).
                missing += rows_due(now, seconds, set(missing))
        self._load(missing, self.adapter.available_products(), available=True)
        unavailable_anchors = [key for key in anchors if self.products.get(key) is None]
        if unavailable_anchors:
            for key in unavailable_anchors:
                self.products.pop(key, None)
            self._load(unavailable_anchors, self.adapter.all_products(), available=False)
        if seconds > 0:
            self.keep_rows(missing, seconds)
            row_refresh.start()

    def keep_rows(self, keys: Iterable[str], seconds: float) -> None:
        """Put the rows of ``keys`` this context loaded into the process's row cache."""
        # Each query's rows lapse at their own point of the last fifth of the lifetime: the rows a burst of
        # first requests loaded (a restart, a new version) do not all lapse in the same second again, more
        # than the refresh ahead reloads at once, which left each slot querying its own lapsed rows.
        expires = time.monotonic() + seconds * (1 - ROW_LIFETIME_JITTER * random.random())
        for key in keys:
            if key in self.products:
                row = self.products[key]
                previous = _rows.peek(key)
                if previous is not None and _unchanged_row(previous[1], row):
                    # Keep the row every memo and page already holds: the reloaded copy is dropped at once
                    # instead of every cached product being replaced by new objects each expiry, which
                    # the garbage collector would then walk (and memos re-check) for nothing.
                    row = self.products[key] = previous[1]
                _rows.put(key, (expires, row))

    def reload(self, keys: list[str], seconds: float) -> None:
        """Read ``keys`` afresh (available products) into the row cache for ``seconds``, cached or not (the
        refresh thread, with a context of its own)."""
        self._load(keys, self.adapter.available_products(), available=True)
        self.keep_rows(keys, seconds)

    def _load(self, keys: list[str], queryset: models.QuerySet, *, available: bool) -> None:
        pk_field = self.adapter.product_model()._meta.pk
        assert pk_field is not None
        clean = []
        for key in keys:
            try:
                clean.append(pk_field.to_python(key))
            except Exception:  # a malformed key is simply not a product
                continue
        if clean:
            for product in queryset.filter(pk__in=clean).order_by():
                self.products[self.adapter.product_key(product)] = ProductRow(
                    product, available, self.adapter.product_category(product)
                )
        for key in keys:
            self.products.setdefault(key, None)

    def row(self, key: str) -> ProductRow | None:
        if key not in self.products:
            self.fetch([], anchors=[key])
        return self.products.get(key)

    def category_of(self, key: str) -> str:
        row = self.row(key)
        return row.category if row else ""


def _history_of(rows: Any) -> History:
    history = History()
    seen: set[str] = set()
    for event_type, key, occurred_at in rows:
        if event_type == "view":
            if key not in seen:
                seen.add(key)
                history.recent_views.append(key)
        else:
            history.purchase_counts[key] += 1
            history.last_purchased.setdefault(key, occurred_at)
    return history


def _unchanged_row(old: ProductRow | None, new: ProductRow | None) -> bool:
    """Whether a reloaded row says exactly what the cached one does: same availability and category, and the
    product (with the related objects loaded along with it) has the same attribute values."""
    if old is None or new is None:
        return False
    return (
        old.available == new.available
        and old.category == new.category
        and _instance_values(old.product) == _instance_values(new.product)
    )


def _instance_values(instance: Any) -> tuple[type, dict[str, Any], dict[str, Any]]:
    state = getattr(instance, "_state", None)
    related = getattr(state, "fields_cache", None) or {}
    return (
        type(instance),
        {name: value for name, value in vars(instance).items() if name != "_state"},
        {
            name: _instance_values(value) if hasattr(value, "_state") else value
            for name, value in related.items()
        },
    )


def coerce_keys(value: Any, adapter: BaseShopAdapter | None = None) -> list[str]:
    """Product keys from what a template or caller has: keys, products, cart lines, or a mapping of them."""
    if value is None or value == "":
        return []
    adapter = adapter or get_adapter()
    if isinstance(value, str | int):
        return [str(value)]
    if isinstance(value, models.Model):
        return [adapter.product_key(value)]
    lines = getattr(value, "lines", None)
    if isinstance(lines, Mapping):  # a session cart object keyed by product id
        value = lines
    if isinstance(value, Mapping):
        return [str(key) for key in value]
    keys = []
    for element in value:
        if isinstance(element, models.Model):
            keys.append(adapter.product_key(element))
        elif hasattr(element, "product"):  # cart or order lines
            product = element.product
            keys.append(adapter.product_key(product) if isinstance(product, models.Model) else str(product))
        elif element not in (None, ""):
            keys.append(str(element))
    return keys


_HISTORY_SQL: dict[tuple[str, bool, bool], str] = {}


def _history_rows(user_id: Any, visitor_id: str, limit: int) -> list[tuple[str, str, datetime]]:
    """(event type, product key, time) of the shopper's latest views and purchases, newest first.

    The ORM's query, written once per shape and reused: compiling it cost more than running it.
    """
    using = router.db_for_read(Event)
    shape = (using, user_id is not None, bool(visitor_id))
    sql = _HISTORY_SQL.get(shape)
    if sql is None:
        qn = connections[using].ops.quote_name
        column = {
            name: qn(Event._meta.get_field(name).column)  # type: ignore[union-attr,arg-type]
            for name in ("user", "visitor_id", "event_type", "product_key", "occurred_at")
        }
        who = []
        if user_id is not None:
            who.append(f"{column['user']} = %s")
        if visitor_id:
            who.append(f"{column['visitor_id']} = %s")
        sql = _HISTORY_SQL[shape] = (
            f"SELECT {column['event_type']}, {column['product_key']}, {column['occurred_at']} "
            f"FROM {qn(Event._meta.db_table)} WHERE ({' OR '.join(who)}) "
            f"AND {column['event_type']} IN ({', '.join(['%s'] * len(HISTORY_EVENT_TYPES))}) "
            f"AND NOT ({column['product_key']} = %s) "
            f"ORDER BY {column['occurred_at']} DESC LIMIT %s"
        )
    params: list[Any] = [user_id] if user_id is not None else []
    if visitor_id:
        params.append(visitor_id)
    params += [*HISTORY_EVENT_TYPES, "", limit]
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    connection = connections[using]
    if not connection.features.supports_timezones or not settings.USE_TZ:
        # SQLite gives naive times (and may give strings): the ORM's conversion, by hand.
        field = Event._meta.get_field("occurred_at")
        converters = connection.ops.get_db_converters(field.get_col(Event._meta.db_table))
        converted = []
        for event_type, key, occurred_at in rows:
            for converter in converters:
                occurred_at = converter(occurred_at, field.get_col(Event._meta.db_table), connection)
            converted.append((event_type, key, occurred_at))
        rows = converted
    return rows


def shopper_config(context: RecoContext) -> dict[str, Any]:
    """``config_for_shopper`` for a request's shopper (exposure logged), else ``current_config()``."""
    from shop_reco.services import experiments, tuning

    request = context.request
    try:
        if request is not None:
            from shop_reco.tracking.identity import get_visitor

            visitor = get_visitor(request)
            if visitor.tracking:  # an opted-out shopper or a bot is never enrolled
                return experiments.config_for_shopper(
                    visitor_id=visitor.id, user=context.user_id, shared=True
                )
        return tuning.current_config(shared=True)
    except Exception:  # a broken configuration must not break a page: the settings alone
        logger.exception("shop_reco could not read the tuned configuration; using the settings")
        return tuning.settings_config()


def request_visitor_id(request: HttpRequest) -> str:
    """The visitor id of this request, or "" for a visitor minted just now (who has no history yet)."""
    from shop_reco.tracking.identity import get_visitor

    visitor = get_visitor(request)
    return "" if visitor.is_new else visitor.id


def request_cart_keys(request: HttpRequest, adapter: BaseShopAdapter) -> list[str]:
    """The shop's cart, through the adapter's ``cart_product_keys(request)``."""
    method = getattr(adapter, "cart_product_keys", None)
    if method is None:
        return []
    try:
        return coerce_keys(method(request), adapter)
    except Exception:  # a broken cart hook costs the cart exclusion, never the page
        logger.exception("shop_reco could not read the cart from the adapter")
        return []


def context_for(
    request: HttpRequest | None = None,
    *,
    user: Any = None,
    visitor_id: str | None = None,
    cart: Any = None,
    shown: Iterable[str] = (),
) -> RecoContext:
    """The context of ``request`` (created once and kept on it), or one built for a given shopper.

    ``user``/``visitor_id`` build a context for someone else (staff preview, admin, tasks); such a context is
    never stored on the request, so a preview cannot leak into the page's own slots.
    """
    adapter = get_adapter()
    if request is not None and user is None and visitor_id is None:
        existing = getattr(request, REQUEST_ATTR, None)
        if existing is not None:
            if cart is not None:
                existing.cart_keys |= set(coerce_keys(cart, adapter))
            existing.shown |= {str(key) for key in shown}
            return existing
        shopper = adapter.get_user(request)
        cart_keys = coerce_keys(cart, adapter) if cart is not None else request_cart_keys(request, adapter)
        context = RecoContext(
            user_id=shopper.pk if shopper is not None else None,
            visitor_id=request_visitor_id(request),
            cart_keys=cart_keys,
            shown=shown,
            request=request,
            adapter=adapter,
        )
        setattr(request, REQUEST_ATTR, context)
        return context
    user_id = getattr(user, "pk", user)
    return RecoContext(
        user_id=user_id,
        visitor_id=visitor_id or "",
        cart_keys=coerce_keys(cart, adapter),
        shown=shown,
        request=None,
        adapter=adapter,
    )
