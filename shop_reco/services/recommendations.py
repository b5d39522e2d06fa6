"""Recommendation slots: one public function per slot, shared by template tags, API views and admin preview.

Every slot reads the stored lists of the live score version, walks a fallback chain until it has enough
candidates, and applies the business rules at read time:

- only available products (``adapter.available_products()``), never the page's own product, the cart, or
  (per slot) what the shopper bought;
- merchandising rules (pin, boost, bury, exclude; by product or category; optional dates);
- a per-slot diversity cap (at most N per category);
- no product repeated across the slots of one page (the :class:`RecoContext` kept on the request).

Each item says which source produced it and carries a short reason and an attribution token.

Slot options and blend weights come from the shopper's effective configuration (``RecoContext.config``:
``SHOP_RECO`` settings, the admin's tuning, the shopper's experiment variant). A slot reads its own sources
first, then the generic fallback stages in the configured order (``SLOTS[slot]["fallback"]``, a list of
``"category"``, ``"popular"``, ``"live_popular"``, ``"catalogue"``; an empty list: no fallback). A stored list
named in ``BLEND_WEIGHTS[slot]`` gets that weight instead of the built-in one; 0 leaves it out.
"""

from __future__ import annotations

import functools
import html
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from django.utils.formats import localize
from django.utils.safestring import SafeData, SafeString, mark_safe
from django.utils.translation import get_language, gettext

from shop_reco import sources
from shop_reco.attribution import QUERY_PARAM, make_token
from shop_reco.conf import reco_settings
from shop_reco.models import MerchandisingRule
from shop_reco.services import row_refresh
from shop_reco.services.context import ProductRow, RecoContext, context_for, derived_from
from shop_reco.services.fallbacks import (
    Candidate,
    catalogue_stage,
    category_catalogue_stage,
    category_stage,
    global_stage,
    list_stage,
    live_popular_stage,
)
from shop_reco.services.lists import (
    CATALOGUE,
    LIVE_POPULAR,
    ListSpec,
    StoredList,
    _slots,
    cached_row_expiry,
    lists_still_held,
    load_lists,
    row_is_cached,
)
from shop_reco.services.rules import Rule, active_rules, rules_for_slot_now
from shop_reco.tracking.events import CheckedContext, checked_context

logger = logging.getLogger("shop_reco.recommendations")

SIMILAR = "similar"
BOUGHT_TOGETHER = "bought_together"
CART = "cart"
FOR_YOU = "for_you"
TRENDING = "trending"
RECENTLY_VIEWED = "recently_viewed"
BUY_AGAIN = "buy_again"
SLOTS = (SIMILAR, BOUGHT_TOGETHER, CART, FOR_YOU, TRENDING, RECENTLY_VIEWED, BUY_AGAIN)

# Options per slot; SHOP_RECO["SLOTS"] overrides them key by key.
#   limit: items shown; max_per_category: diversity cap (None: no cap); exclude_purchased: hide what the
#   shopper bought; fallback: use the generic chain (popular, any product) when the slot's own sources
#   give nothing; top_up: also fill a short slot from it. Recently viewed and buy again show only the
#   shopper's own history by default (a "recently viewed" row of bestsellers would mislead), and a bundle
#   is never padded with unrelated products.
SLOT_DEFAULTS: dict[str, dict[str, Any]] = {
    SIMILAR: {
        "limit": 6,
        "max_per_category": None,
        "exclude_purchased": True,
        "fallback": True,
        "top_up": True,
    },
    BOUGHT_TOGETHER: {
        "limit": 3,
        "max_per_category": None,
        "exclude_purchased": True,
        "fallback": True,
        "top_up": False,
    },
    CART: {"limit": 6, "max_per_category": 3, "exclude_purchased": True, "fallback": True, "top_up": True},
    FOR_YOU: {"limit": 8, "max_per_category": 3, "exclude_purchased": True, "fallback": True, "top_up": True},
    TRENDING: {
        "limit": 8,
        "max_per_category": 3,
        "exclude_purchased": False,
        "fallback": True,
        "top_up": True,
    },
    RECENTLY_VIEWED: {
        "limit": 8,
        "max_per_category": None,
        "exclude_purchased": False,
        "fallback": False,
        "top_up": False,
    },
    BUY_AGAIN: {
        "limit": 8,
        "max_per_category": None,
        "exclude_purchased": False,
        "fallback": False,
        "top_up": False,
    },
}
OPTION_NAMES = frozenset(SLOT_DEFAULTS[SIMILAR])

# Sources that come from a stored list of the live version (the others are live or rule-made).
STORED_SOURCES = frozenset(sources.ALL_SOURCES)
PINNED = "pinned"
RECENT = "recently_viewed"
PURCHASE_HISTORY = "purchase_history"

_REASONS: dict[str, Callable[[], str]] = {
    # Built lazily so the active language at render time is used.
    "similar_to": lambda: gettext("Similar to %(anchor)s"),
    "viewed": lambda: gettext("Because you viewed %(anchor)s"),
    "often_with": lambda: gettext("Often bought with %(anchor)s"),
    "bought_with": lambda: gettext("Customers who bought %(anchor)s also bought"),
    "in_cart": lambda: gettext("Goes with %(anchor)s in your basket"),
    "for_you": lambda: gettext("Recommended for you"),
    "trending_in": lambda: gettext("Trending in %(category)s"),
    "popular_in": lambda: gettext("Popular in %(category)s"),
    "trending": lambda: gettext("Trending now"),
    "popular": lambda: gettext("Popular right now"),
    "recently_viewed": lambda: gettext("You viewed this recently"),
    "bought_before": lambda: gettext("You bought this before"),
    "bought_times": lambda: gettext("You bought this %(count)s times"),
    "catalogue": lambda: gettext("From our range"),
    "more_in": lambda: gettext("More in %(category)s"),
    "pinned": lambda: gettext("Featured"),
}
_GENERIC_REASON = {
    "similar_to": "for_you",
    "viewed": "for_you",
    "often_with": "popular",
    "bought_with": "popular",
}


# The generic fallback stages, in their default order (the names of services.tuning.FALLBACK_STAGES).
FALLBACK_ORDER = ("category", "popular", "live_popular", "catalogue")


def slot_options(slot: str) -> dict[str, Any]:
    """The built-in options of ``slot`` with the shop's overrides (the base layer of the tuned options)."""
    base = dict(SLOT_DEFAULTS.get(slot, SLOT_DEFAULTS[FOR_YOU]))
    overrides = reco_settings.SLOTS or {}
    base.update(overrides.get(slot, {}) if isinstance(overrides, dict) else {})
    return base


def fallback_order(options: Mapping[str, Any]) -> list[str]:
    """The fallback stages of a slot's options: a list of stage names, or True (all) / False (none)."""
    value = options.get("fallback", True)
    if value is True:
        return list(FALLBACK_ORDER)
    if not value:
        return []
    return [str(name) for name in value]


@dataclass
class RecoItem:
    """One recommended product as shown: what, why, and how to attribute a click."""

    key: str
    product: Any
    source: str
    reason: str
    reason_code: str
    score: float
    position: int
    token: str
    version_id: int | None
    name: str
    url: str
    image_url: str
    price: Decimal | None
    category: str
    anchor_key: str = ""
    slot: str = ""
    # The product's escaped name, URL, image and price markup, shared by every item of a cached product row.
    markup: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def html(self) -> SafeString:
        """The built-in slot templates' markup of this item (``{% block item %}``), built without the template
        engine: a dozen variable lookups per item were most of a slot's rendering time.
        """
        product = self.markup or _product_markup(self.name, self.url, self.image_url, self.price)
        return mark_safe(
            f'\n    <li class="reco-item" data-reco-source="{_esc(self.source)}">\n'
            f'      <a class="reco-item__link" href="{product["url"]}" data-reco-token="{_esc(self.token)}" '
            f'data-reco-slot="{_esc(self.slot)}" data-reco-product="{_esc(self.key)}">\n'
            f"        {product['image']}\n"
            f'        <span class="reco-item__name">{product["name"]}</span>\n'
            "      </a>\n"
            f"      {product['price']}\n"
            f'      <span class="reco-item__reason">{_esc(self.reason)}</span>\n'
            "    </li>"
        )

    @property
    def tracked_url(self) -> str:
        """The product URL with ``?rt=`` for places the beacon cannot see (emails, other hosts)."""
        if not self.url:
            return ""
        joiner = "&" if "?" in self.url else "?"
        return f"{self.url}{joiner}{QUERY_PARAM}={self.token}"


@dataclass(frozen=True)
class RuleHit:
    """What one merchandising rule did to one candidate (``explain=True``)."""

    key: str
    action: str  # "exclude", "boost", "bury", "pin"
    rule: Rule


@dataclass
class SlotResult:
    slot: str
    items: list[RecoItem]
    version_id: int | None
    anchor: Any = None  # the product the slot is about (product-page slots)
    bundle_price: Decimal | None = None  # bought together: the page's product plus every item shown
    extra: dict[str, Any] = field(default_factory=dict)
    # With explain=True: every rule effect on the candidates considered, in the order applied.
    explain: list[RuleHit] = field(default_factory=list)
    # The slot memo these items came from (or were stored in): the API keeps its rendered answer there.
    memo: SlotMemo | None = field(default=None, compare=False, repr=False)

    @property
    def keys(self) -> list[str]:
        return [item.key for item in self.items]

    def __iter__(self) -> Iterator[RecoItem]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)


Stage = Callable[[RecoContext], list[Candidate]]


# --- assembly: the fallback chain, the rules, the page context ---


def _assemble(
    slot: str,
    context: RecoContext,
    own: Iterable[Stage],
    *,
    limit: int | None,
    fallbacks: Mapping[str, Stage] | None = None,
    exclude: Iterable[str] = (),
    anchors: Iterable[str] = (),
    cap: int | bool | None = True,
    apply_rules: bool = True,
    explain: list[RuleHit] | None = None,
    memo_key: tuple[Any, ...] | None = None,
    page_exclude: Iterable[str] = (),
) -> list[RecoItem]:
    """Rank the slot's candidates; ``memo_key`` names what the slot's own stages read (see :class:`SlotMemo`).

    ``exclude`` is part of the slot's identity (the anchor); ``page_exclude`` is left out like the page's
    other keys, which keeps one memo entry per shopper rather than per shopper and page.
    """
    options = context.slot_options(slot)
    limit = int(limit if limit is not None else options["limit"])
    if limit <= 0:
        return []
    max_per_category = options["max_per_category"] if cap is True else (cap or None)
    rules, rules_signature = (
        rules_for_slot_now(active_rules(context.version_id, context.now), slot, context.now)
        if apply_rules
        else ([], ())
    )
    blocked = set(exclude)
    if explain is None:
        # Excluded products drop out before ranking (when explaining, _apply_rules names the rule instead).
        blocked |= {rule.product_key for rule in rules if rule.action == "exclude" and rule.product_key}
    shoppers = context.shown | context.cart_keys | set(page_exclude)
    if options["exclude_purchased"] and context.has_shopper:
        shoppers |= context.history.purchased

    full_key = None
    context.slot_memo = None
    if memo_key is not None and explain is None and apply_rules and _slot_memo_enabled():
        full_key = (
            slot,
            context.version_id,
            memo_key,
            limit,
            max_per_category,
            *_frozen_configuration(context, slot, options),
            rules_signature,
            tuple(sorted(blocked)),
            _language(context),
        )
        memo = _slots.peek(full_key)
        if memo is not None:
            current = memo.serving(context, shoppers)
            if current is not None:
                if current is not memo:
                    _slots.put(full_key, current)
                context.slot_memo = current
                return current.items_for(context)
    blocked |= shoppers

    pins = [rule for rule in rules if rule.action == MerchandisingRule.Action.PIN]
    # Anchors (named by reasons) load with the first batch, even when out of stock.
    prefetch = list(anchors)
    anchor_keys = list(prefetch)

    candidates: dict[str, Candidate] = {}
    ordered: list[str] = []
    stage_list = list(own)
    if fallbacks:
        stage_list += [fallbacks[name] for name in fallback_order(options) if name in fallbacks]
    ranked: list[str] = []
    offered: set[str] = {pin.product_key for pin in pins if pin.product_key}
    volatile = False
    if full_key is not None:
        context.lists_read = {}
    try:
        for index, stage in enumerate(stage_list):
            produced = stage(context)
            if full_key is not None:
                offered.update(cand.key for cand in produced)
                volatile = volatile or any(cand.source in _VOLATILE_SOURCES for cand in produced)
            if produced:
                _merge(candidates, produced, index, blocked)
                ordered = sorted(candidates, key=lambda key: -candidates[key].score)
            ranked = _rank_window(
                context, ordered, candidates, rules, pins, blocked, limit, max_per_category, prefetch, explain
            )
            prefetch = []
            if len(ranked) >= limit or (ranked and not options.get("top_up", True)):
                break
        lists_read = context.lists_read
    finally:
        context.lists_read = None
    items = _items(slot, context, ranked[:limit], candidates)
    if full_key is not None and not volatile and offered.isdisjoint(shoppers):
        # Nothing the shopper excludes was among the candidates: this is the slot of anyone else too.
        context.slot_memo = _remember_slot(full_key, context, items, offered, anchor_keys, lists_read or {})
    return items


# --- the slot memo: a warm slot is a few dictionary lookups instead of blending, ranking and describing ---

# Stages that read the database or live data directly (not stored lists through the caches): not memoised.
_VOLATILE_SOURCES = frozenset({CATALOGUE, LIVE_POPULAR})


@dataclass(frozen=True)
class SlotMemo:
    """One slot as ranked for a shopper who excludes none of its candidates (per process, bounded).

    The memo key holds what the ranking reads besides the shopper's exclusions: score version, the slot's
    own inputs (anchor, shopper, history), limit, effective options and blend weights (tuning, experiment
    variant), the rules in force, the language. It is used only while the stored lists it read are the ones
    the list cache holds now (a rewritten list recomputes it), while every product row it read, as the row
    cache reloads them (PRODUCT_CACHE_SECONDS), still shows the same availability, category, name, URL,
    image and price, and only for a shopper who excludes (bought, has in the cart, saw higher on the page)
    none of the candidates it saw: then the full computation would give the very same items.
    """

    items: tuple[RecoItem, ...]
    offered: frozenset[str]
    specs: tuple[ListSpec, ...]
    lists: tuple[StoredList, ...]
    rows: dict[str, ProductRow | None]  # the product rows it read, as the row cache held them
    anchors: tuple[str, ...]
    # Until the first of those rows expires in the row cache they are fresh enough: no need to look again.
    fresh_until: float
    # What the API answered from this memo, by slot: the same items give the same bytes (see ``renders``).
    rendered: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)
    # The impression's event context, by slot, validated once (the same items give the same context).
    impressions: dict[str, CheckedContext] = field(default_factory=dict, compare=False, repr=False)

    @property
    def renders(self) -> bool:
        """Whether an answer is a function of this memo alone: every anchor's row (named by reasons, shown
        as the page's product and in the bundle price) is one the memo holds, in stock."""
        return all(self.rows.get(key) is not None for key in self.anchors)

    def serving(self, context: RecoContext, shoppers: set[str]) -> SlotMemo | None:
        """This memo (its date renewed in place while the row cache keeps its very rows), a copy holding
        reloaded rows that describe the same products, or None when it is stale."""
        if not self.offered.isdisjoint(shoppers):
            return None
        if self.specs and not lists_still_held(context.version_id, self.specs, self.lists):
            current = load_lists(context.version_id, self.specs)
            if any(
                current.get(spec) is not stored for spec, stored in zip(self.specs, self.lists, strict=True)
            ):
                return None
        now = time.monotonic()
        row_refresh.note_read(now)
        if now < self.fresh_until:
            return self
        lapsed = [key for key, row in self.rows.items() if not cached_row_expiry(key, row) > now]
        if not lapsed:
            # The row cache renewed these very rows: only the date moves (in place, so nothing new is kept).
            object.__setattr__(self, "fresh_until", _fresh_until(self.rows))
            return self
        # Rows the row cache has reloaded since: read them as the slot would. Unchanged rows renew the memo
        # rather than a full ranking of every slot every PRODUCT_CACHE_SECONDS.
        context.fetch([key for key in lapsed if key not in self.anchors], anchors=self.anchors)
        rows = dict(self.rows)
        for key in lapsed:
            row = context.products.get(key)
            if row is not self.rows[key] and not _same_row(context, self.rows[key], row):
                return None
            rows[key] = row
        if all(rows[key] is self.rows[key] for key in lapsed):
            object.__setattr__(self, "fresh_until", _fresh_until(self.rows))
            return self
        return replace(self, rows=rows, fresh_until=_fresh_until(rows))

    def items_for(self, context: RecoContext) -> list[RecoItem]:
        products = context.products
        if not products:  # the page's first slot: nothing to keep
            products.update(self.rows)
        else:
            for key, row in self.rows.items():
                if key not in products:
                    products[key] = row
        context.shown.update(self.item_keys)
        return list(self.items)

    @functools.cached_property
    def item_keys(self) -> tuple[str, ...]:
        return tuple(item.key for item in self.items)


def _same_row(context: RecoContext, old: ProductRow | None, new: ProductRow | None) -> bool:
    if old is None or new is None:
        return old is new
    return (
        old.available == new.available
        and old.category == new.category
        and _described(context, old) == _described(context, new)
    )


def _described(context: RecoContext, row: ProductRow) -> tuple[Any, ...]:
    shown = describe(context, row)  # which also caches rendered markup: compare the described fields only
    return shown["name"], shown["url"], shown["image_url"], shown["price"]


def _fresh_until(rows: Mapping[str, ProductRow | None]) -> float:
    return min((cached_row_expiry(key, row) for key, row in rows.items()), default=float("inf"))


def _slot_memo_enabled() -> bool:
    # Without the product row cache every request reads availability afresh: so must the slot.
    return float(reco_settings.PRODUCT_CACHE_SECONDS) > 0


def _remember_slot(
    key: tuple[Any, ...],
    context: RecoContext,
    items: list[RecoItem],
    offered: set[str],
    anchors: list[str],
    lists_read: dict[ListSpec, StoredList],
) -> SlotMemo:
    rows: dict[str, ProductRow | None] = {}
    for product_key in (*offered, *anchors):
        if product_key in context.products:
            row = context.products[product_key]
            # A row the page passed in (context.remember) is not the cache's; the next page passes its own.
            if row_is_cached(product_key, row):
                rows[product_key] = row
    specs = tuple(lists_read)
    memo = SlotMemo(
        tuple(items),
        frozenset(offered),
        specs,
        tuple(lists_read[spec] for spec in specs),
        rows,
        tuple(anchors),
        _fresh_until(rows),
    )
    _slots.put(key, memo)
    return memo


def _frozen(value: Any) -> Any:
    """A hashable copy of a configuration value (dicts and lists nest in options and weights)."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _frozen(v)) for k, v in value.items()))
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(_frozen(v) for v in value)
    return value


def _frozen_configuration(context: RecoContext, slot: str, options: Mapping[str, Any]) -> tuple[Any, Any]:
    """The slot's options and blend weights as hashable values, worked out once per configuration object
    (the tuning service shares one read-only dict until it reloads) rather than on every request."""
    return derived_from(  # type: ignore[no-any-return]
        context.config,
        ("frozen", slot),
        lambda: (_frozen(options), _frozen(context.blend_weights(slot))),
    )


def _language(context: RecoContext) -> str:
    language = context.memo.get("language")
    if language is None:
        language = context.memo["language"] = get_language() or ""
    return language


def _merge(
    candidates: dict[str, Candidate], produced: list[Candidate], index: int, blocked: set[str]
) -> None:
    fresh = [cand for cand in produced if cand.key not in candidates and cand.key not in blocked]
    if not fresh:
        return
    # Scores of one stage map to [0.5, 1] and stage i is weighted 0.4**i: without rules every item of a
    # stage ranks above the next stage, and a boost of 2 or more can lift an item about one stage.
    top = max(cand.score for cand in fresh)
    low = min(cand.score for cand in fresh)
    spread = (top - low) or 1.0
    weight = 0.4**index
    for cand in fresh:
        normalised = 0.5 + 0.5 * (cand.score - low) / spread if top != low else 1.0
        candidates[cand.key] = Candidate(
            cand.key, normalised * weight, cand.source, cand.reason, cand.anchor, cand.extra
        )


def _rank_window(
    context: RecoContext,
    ordered: list[str],
    candidates: dict[str, Candidate],
    rules: list[Rule],
    pins: list[Rule],
    blocked: set[str],
    limit: int,
    cap: int | None,
    prefetch: list[str],
    explain: list[RuleHit] | None = None,
) -> list[str]:
    """Rank the best candidates, loading products in batches only as far down the list as needed."""
    # Only the top of the list is loaded: twice the slot (for unavailable items and the diversity cap),
    # four times when a category pin or boost may lift items from further down (their category needs the row).
    wide = any(rule.category and rule.action in ("pin", "boost") for rule in rules)
    wanted = limit * 4 + 2 if wide else limit * 2 + 2
    position = 0
    while True:
        # Load enough of the list to fill the slot twice over (unavailable items, diversity cap).
        window: list[str] = []
        usable = 0
        for key in ordered[position:]:
            row = context.products.get(key, False)
            if row is False:
                window.append(key)
                usable += 1
            elif row is not None and row.available:  # type: ignore[union-attr]  # False was handled above
                usable += 1
            position += 1
            if usable >= wanted:
                break
        # Pinned products, and boosted ones further down the list, load in the same query.
        ruled = [rule.product_key for rule in rules if rule.product_key and rule.action in ("pin", "boost")]
        ruled = [key for key in ruled if rule_keys_wanted(key, candidates, pins)]
        context.fetch(window + ruled, anchors=prefetch)
        prefetch = []
        considered = ordered[:position]
        seen = set(considered)
        considered += [key for key in ruled if key in candidates and key not in seen]
        hits: list[RuleHit] | None = [] if explain is not None else None
        ranked = _apply_rules(context, considered, candidates, rules, pins, blocked, cap, hits)
        if len(ranked) >= limit or position >= len(ordered):
            if explain is not None and hits:
                explain[:] = hits  # the last pass saw every candidate the earlier ones did
            return ranked


def rule_keys_wanted(key: str, candidates: dict[str, Candidate], pins: list[Rule]) -> bool:
    return key in candidates or any(pin.product_key == key for pin in pins)


def _apply_rules(
    context: RecoContext,
    keys: list[str],
    candidates: dict[str, Candidate],
    rules: list[Rule],
    pins: list[Rule],
    blocked: set[str],
    cap: int | None,
    hits: list[RuleHit] | None = None,
) -> list[str]:
    excludes = [rule for rule in rules if rule.action == "exclude"]
    weights = [rule for rule in rules if rule.action in ("boost", "bury")]
    scored = []
    for key in keys:
        row = context.products.get(key)
        if row is None or not row.available or key in blocked:
            continue
        excluded_by = next((rule for rule in excludes if rule.matches(key, row.category)), None)
        if excluded_by is not None:
            if hits is not None:
                hits.append(RuleHit(key, "exclude", excluded_by))
            continue
        score = candidates[key].score
        for rule in weights:
            if rule.matches(key, row.category):
                score *= rule.multiplier
                if hits is not None:
                    hits.append(RuleHit(key, rule.action, rule))
        scored.append((-score, key))
    scored.sort()
    ranked = [key for _, key in scored]
    pinned: set[str] = set()
    for pin in sorted(pins, key=lambda rule: rule.position):
        if pin.product_key:
            row = context.products.get(pin.product_key)
            if row is None or not row.available or pin.product_key in blocked:
                continue
            if any(rule.matches(pin.product_key, row.category) for rule in excludes):
                continue
            if pin.product_key in ranked:
                ranked.remove(pin.product_key)
            if pin.product_key not in candidates:
                candidates[pin.product_key] = Candidate(pin.product_key, 0.0, PINNED, "pinned")
            ranked.insert(pin.position - 1, pin.product_key)
            pinned.add(pin.product_key)
            if hits is not None:
                hits.append(RuleHit(pin.product_key, "pin", pin))
        else:
            members = [key for key in ranked if context.products[key].category == pin.category]  # type: ignore[union-attr]
            rest = [key for key in ranked if key not in members]
            ranked = rest[: pin.position - 1] + members + rest[pin.position - 1 :]
            pinned.update(members)
            if hits is not None:
                hits += [RuleHit(key, "pin", pin) for key in members]
    if not cap:
        return ranked
    counts: dict[str, int] = {}
    diverse = []
    for key in ranked:
        category = context.products[key].category  # type: ignore[union-attr]
        if category and counts.get(category, 0) >= cap and key not in pinned:
            continue
        counts[category] = counts.get(category, 0) + 1
        diverse.append(key)
    return diverse


def _items(
    slot: str, context: RecoContext, keys: list[str], candidates: dict[str, Candidate]
) -> list[RecoItem]:
    version_id = context.version_id
    items = []
    for position, key in enumerate(keys, start=1):
        row = context.products[key]
        assert row is not None
        cand = candidates[key]
        shown = describe(context, row)
        item_version = version_id if cand.source in STORED_SOURCES else None
        items.append(
            RecoItem(
                key=key,
                product=row.product,
                source=cand.source,
                reason=_reason(context, cand, row.category),
                reason_code=cand.reason,
                score=round(cand.score, 6),
                position=position,
                token=_token(slot, cand.source, item_version, position, key),
                version_id=item_version,
                name=shown["name"],
                url=shown["url"],
                image_url=shown["image_url"],
                price=shown["price"],
                category=row.category,
                anchor_key=cand.anchor,
                slot=slot,
                markup=_markup(context, row, shown),
            )
        )
    # The page context: later slots of this page skip what this one shows.
    context.shown.update(keys)
    return items


def _esc(value: Any) -> str:
    """``conditional_escape`` without its lazy-string wrapper (it runs for every attribute of every item)."""
    return str(value) if isinstance(value, SafeData) else html.escape(str(value))


def _product_markup(name: str, url: str, image_url: str, price: Decimal | None) -> dict[str, str]:
    image = (
        f'<img class="reco-item__image" src="{_esc(image_url)}" alt="" loading="lazy" width="160" height="160">'
        if image_url
        else ""
    )
    price_html = f'<span class="reco-item__price">{_esc(localize(price))}</span>' if price is not None else ""
    return {"name": _esc(name), "url": _esc(url), "image": image, "price": price_html}


def _markup(context: RecoContext, row: ProductRow, shown: dict[Any, Any]) -> dict[str, str]:
    """The product's markup, per language (prices are localised), kept on the (cached) row."""
    key = ("markup", _language(context))
    markup = shown.get(key)
    if markup is None:
        markup = shown[key] = _product_markup(shown["name"], shown["url"], shown["image_url"], shown["price"])
    return markup


_tokens: dict[tuple[str, str, int | None, int, str], str] = {}
_TOKENS_MAX = 50_000


def _token(slot: str, source: str, version_id: int | None, position: int, key: str) -> str:
    """``make_token``, memoised: a token depends only on its parts, and an HMAC per item adds up."""
    parts = (slot, source, version_id, position, key)
    token = _tokens.get(parts)
    if token is None:
        if len(_tokens) >= _TOKENS_MAX:
            _tokens.clear()
        token = _tokens[parts] = make_token(slot, source, version_id, position, key)
    return token


def describe(context: RecoContext, row: ProductRow) -> dict[str, Any]:
    """Name, URL, image and price of a product row, asked of the adapter once per cached row."""
    shown = row.shown
    if not shown:
        adapter, product = context.adapter, row.product
        shown.update(
            name=adapter.product_name(product),
            url=adapter.product_url(product),
            image_url=adapter.product_image_url(product),
            price=adapter.product_price(product),
        )
    return shown


def _text(context: RecoContext, code: str) -> str:
    """The translated reason template, looked up once per code per page (gettext per item adds up)."""
    texts = context.memo.setdefault("reasons", {})
    text = texts.get(code)
    if text is None:
        text = texts[code] = _REASONS[code]()
    return text


def _reason(context: RecoContext, cand: Candidate, category: str) -> str:
    code = cand.reason
    if code == "bought_before" and cand.extra.get("count", 1) > 1:
        return _text(context, "bought_times") % {"count": cand.extra["count"]}
    if code in ("trending_in", "popular_in", "more_in"):
        name = cand.extra.get("category") or category
        if not name:
            code = {"trending_in": "trending", "popular_in": "popular"}.get(code, "catalogue")
        return _text(context, code) % {"category": name}
    template = _text(context, code if code in _REASONS else "for_you")
    if "%(anchor)s" in template:
        row = context.products.get(cand.anchor) if cand.anchor else None
        if row is None:
            return _text(context, _GENERIC_REASON.get(code, "for_you"))
        return template % {"anchor": describe(context, row)["name"]}
    return template


# --- stages shared by several slots ---

# The storefront's own weights of the stored lists each slot blends; BLEND_WEIGHTS[slot] overrides them.
BUILTIN_BLEND: dict[str, dict[str, float]] = {
    SIMILAR: {sources.SIMILAR_HYBRID: 1.0, sources.SIMILAR_CF: 0.6, sources.SIMILAR_CONTENT: 0.6},
    BOUGHT_TOGETHER: {sources.BOUGHT_TOGETHER: 1.0},
    CART: {
        sources.BOUGHT_TOGETHER: 1.0,
        sources.SIMILAR_HYBRID: 0.6,
        sources.SIMILAR_CF: 0.36,
        sources.SIMILAR_CONTENT: 0.36,
    },
    FOR_YOU: {
        sources.FOR_SHOPPER: 1.0,
        sources.BOUGHT_TOGETHER: 1.0,
        sources.SIMILAR_HYBRID: 1.0,
        sources.SIMILAR_CF: 0.6,
        sources.SIMILAR_CONTENT: 0.6,
    },
    BUY_AGAIN: {sources.BUY_AGAIN: 1.0},
}


def _blend(context: RecoContext, slot: str) -> Mapping[str, float]:
    """{source: weight} for ``slot``: the built-in weights under the effective BLEND_WEIGHTS (read-only, shared
    by every request under the same configuration)."""

    def build() -> dict[str, float]:
        weights = dict(BUILTIN_BLEND.get(slot, {}))
        for source, weight in context.blend_weights(slot).items():
            try:
                weights[source] = float(weight)
            except (TypeError, ValueError):  # validated when saved; a hand-edited value is ignored
                continue
        return weights

    return derived_from(context.config, ("blend", slot), build)  # type: ignore[no-any-return]


def _fallbacks(
    context: RecoContext, weights: Mapping[str, float], *, category_of: Callable[[], str] | None = None
) -> dict[str, Stage]:
    """The generic fallback stages by name: trending in the category, popular overall, live popular, any."""
    stages: dict[str, Stage] = {
        "popular": lambda ctx: global_stage(ctx, weights),
        "live_popular": live_popular_stage,
        "catalogue": catalogue_stage,
    }
    if category_of is not None:
        stages["category"] = lambda ctx: category_stage(ctx, category_of(), weights)
    return stages


def _personal_stage(context: RecoContext, weights: Mapping[str, float]) -> list[Candidate]:
    weight = weights.get(sources.FOR_SHOPPER, 1.0)
    specs = []
    if context.user_id is not None:
        specs.append((ListSpec("user", str(context.user_id), sources.FOR_SHOPPER), weight, "for_you", ""))
    if context.visitor_id:
        # A signed-in shopper's own list leads; the browser's anonymous list only tops it up.
        share = 0.4 if context.user_id is not None else 1.0
        specs.append(
            (ListSpec("visitor", context.visitor_id, sources.FOR_SHOPPER), weight * share, "for_you", "")
        )
    return list_stage(context, specs)


def _session_stage(context: RecoContext, weights: Mapping[str, float]) -> list[Candidate]:
    """Products bought with the session's recent views, the most recent weighing most."""
    views = context.history.recent_views[:5] if context.has_shopper else []
    weight = weights.get(sources.BOUGHT_TOGETHER, 1.0)
    specs = [
        (ListSpec("product", key, sources.BOUGHT_TOGETHER), weight * (1.0 - 0.15 * rank), "viewed", key)
        for rank, key in enumerate(views)
    ]
    return list_stage(context, specs)


def _similar_specs(
    key: str, weights: Mapping[str, float], factor: float = 1.0, reason: str = "similar_to"
) -> list[tuple[ListSpec, float, str, str]]:
    return [
        (ListSpec("product", key, source), factor * weights.get(source, default), reason, key)
        for source, default in (
            (sources.SIMILAR_HYBRID, 1.0),
            (sources.SIMILAR_CF, 0.6),
            (sources.SIMILAR_CONTENT, 0.6),
        )
    ]


def _last_viewed(context: RecoContext) -> str:
    views = context.history.recent_views if context.has_shopper else []
    return views[0] if views else ""


# --- the slots ---
#
# Every slot function takes ``context`` (default: a context of its own), ``limit`` (default: the slot's
# option), ``apply_rules`` (False: the merchandising rules are ignored, for the admin preview's comparison)
# and ``explain`` (True: ``SlotResult.explain`` lists what each rule did to which product).


def _product_key(context: RecoContext, product: Any) -> str:
    if product is None or product == "":
        return ""
    if isinstance(product, str | int):
        return str(product)
    return context.remember(product)


def _result(
    slot: str, context: RecoContext, items: list[RecoItem], hits: list[RuleHit] | None, **kw: Any
) -> SlotResult:
    memo, context.slot_memo = context.slot_memo, None
    return SlotResult(slot, items, context.version_id, explain=hits or [], memo=memo, **kw)


def similar_products(
    product: Any,
    *,
    context: RecoContext | None = None,
    limit: int | None = None,
    apply_rules: bool = True,
    explain: bool = False,
) -> SlotResult:
    """Products like ``product`` (an instance or key), for the product page."""
    context = context or context_for()
    key = _product_key(context, product)
    weights = _blend(context, SIMILAR)
    own: list[Stage] = [lambda ctx: list_stage(ctx, _similar_specs(key, weights))]
    hits: list[RuleHit] | None = [] if explain else None
    items = _assemble(
        SIMILAR,
        context,
        own,
        limit=limit,
        fallbacks=_fallbacks(context, weights, category_of=lambda: context.category_of(key)),
        exclude=[key],
        anchors=[key],
        apply_rules=apply_rules,
        explain=hits,
        memo_key=(key,),
    )
    return _result(SIMILAR, context, items, hits, anchor=_anchor(context, key))


def bought_together(
    product: Any,
    *,
    context: RecoContext | None = None,
    limit: int | None = None,
    apply_rules: bool = True,
    explain: bool = False,
) -> SlotResult:
    """Products often bought with ``product``, with the price of the whole bundle."""
    context = context or context_for()
    key = _product_key(context, product)
    weights = _blend(context, BOUGHT_TOGETHER)
    weight = weights.get(sources.BOUGHT_TOGETHER, 1.0)
    own: list[Stage] = [
        lambda ctx: list_stage(
            ctx, [(ListSpec("product", key, sources.BOUGHT_TOGETHER), weight, "often_with", key)]
        )
    ]
    hits: list[RuleHit] | None = [] if explain else None
    items = _assemble(
        BOUGHT_TOGETHER,
        context,
        own,
        limit=limit,
        fallbacks=_fallbacks(context, weights, category_of=lambda: context.category_of(key)),
        exclude=[key],
        anchors=[key],
        apply_rules=apply_rules,
        explain=hits,
        memo_key=(key,),
    )
    anchor = _anchor(context, key)
    bundle_price = None
    if anchor is not None and items:
        anchor_row = context.products.get(key)
        anchor_price = (
            describe(context, anchor_row)["price"]
            if anchor_row is not None
            else context.adapter.product_price(anchor)
        )
        prices = [anchor_price] + [item.price for item in items]
        if all(price is not None for price in prices):
            bundle_price = sum(prices, Decimal("0"))  # type: ignore[arg-type,type-var]
    return _result(BOUGHT_TOGETHER, context, items, hits, anchor=anchor, bundle_price=bundle_price)


def cart_recommendations(
    cart: Any = None,
    *,
    context: RecoContext | None = None,
    limit: int | None = None,
    apply_rules: bool = True,
    explain: bool = False,
) -> SlotResult:
    """Products that go with everything in the cart (``cart``: keys, products or lines; default: the shop's).

    The bought-together and similar lists of every cart item are blended.
    """
    context = context or context_for(cart=cart)
    if cart is not None:
        from shop_reco.services.context import coerce_keys

        context.cart_keys |= set(coerce_keys(cart, context.adapter))
    cart_keys = sorted(context.cart_keys)
    weights = _blend(context, CART)

    def cart_stage(ctx: RecoContext) -> list[Candidate]:
        specs = []
        for key in cart_keys:
            specs.append(
                (
                    ListSpec("product", key, sources.BOUGHT_TOGETHER),
                    weights.get(sources.BOUGHT_TOGETHER, 1.0),
                    "in_cart",
                    key,
                )
            )
            specs += _similar_specs(key, weights, 1.0, "in_cart")
        return list_stage(ctx, specs)

    def cart_category() -> str:
        ctx_rows = [context.row(key) for key in cart_keys]
        categories = [row.category for row in ctx_rows if row is not None and row.category]
        return max(set(categories), key=categories.count) if categories else ""

    own: list[Stage] = [cart_stage, lambda ctx: _personal_stage(ctx, _blend(ctx, FOR_YOU))]
    hits: list[RuleHit] | None = [] if explain else None
    items = _assemble(
        CART,
        context,
        own,
        limit=limit,
        fallbacks=_fallbacks(context, weights, category_of=cart_category if cart_keys else None),
        anchors=cart_keys,
        apply_rules=apply_rules,
        explain=hits,
    )
    return _result(CART, context, items, hits)


def recommended_for_you(
    *,
    context: RecoContext | None = None,
    limit: int | None = None,
    apply_rules: bool = True,
    explain: bool = False,
) -> SlotResult:
    """The home-page slot: personal, then from the session's views, then generic, never empty."""
    context = context or context_for()
    last = _last_viewed(context)
    weights = _blend(context, FOR_YOU)
    own: list[Stage] = [
        lambda ctx: _personal_stage(ctx, weights),
        lambda ctx: _session_stage(ctx, weights),
    ]
    if last:
        own.append(lambda ctx: list_stage(ctx, _similar_specs(last, weights)))
    anchors = context.history.recent_views[:5] if context.has_shopper else []
    hits: list[RuleHit] | None = [] if explain else None
    items = _assemble(
        FOR_YOU,
        context,
        own,
        limit=limit,
        fallbacks=_fallbacks(
            context, weights, category_of=(lambda: context.category_of(last)) if last else None
        ),
        anchors=anchors,
        apply_rules=apply_rules,
        explain=hits,
        # Whose personal lists, and which recent views feed the session and similar stages.
        memo_key=(context.user_id, context.visitor_id, tuple(anchors)),
    )
    return _result(FOR_YOU, context, items, hits)


def trending(
    category: str | None = None,
    *,
    context: RecoContext | None = None,
    limit: int | None = None,
    apply_rules: bool = True,
    explain: bool = False,
) -> SlotResult:
    """Trending overall, or in one category (a category slot is not capped by the diversity rule)."""
    context = context or context_for()
    weights = _blend(context, TRENDING)
    fallbacks = _fallbacks(context, weights)
    own: list[Stage]
    if category:
        own = [lambda ctx: category_stage(ctx, category, weights)]
        fallbacks["category"] = lambda ctx: category_catalogue_stage(ctx, category)
    else:
        own = [fallbacks.pop("popular")]  # the slot's own source is the shop-wide popularity
    hits: list[RuleHit] | None = [] if explain else None
    items = _assemble(
        TRENDING,
        context,
        own,
        limit=limit,
        fallbacks=fallbacks,
        cap=None if category else True,
        apply_rules=apply_rules,
        explain=hits,
        memo_key=(category or "",),
    )
    return _result(TRENDING, context, items, hits, extra={"category": category or ""})


def recently_viewed(
    *,
    context: RecoContext | None = None,
    limit: int | None = None,
    exclude_product: Any = None,
    apply_rules: bool = True,
    explain: bool = False,
) -> SlotResult:
    """The shopper's own recent views, newest first (optionally without the page's product)."""
    context = context or context_for()
    current = _product_key(context, exclude_product)

    def history_stage(ctx: RecoContext) -> list[Candidate]:
        views = ctx.history.recent_views if ctx.has_shopper else []
        count = len(views)
        return [
            Candidate(key, float(count - rank), RECENT, "recently_viewed") for rank, key in enumerate(views)
        ]

    hits: list[RuleHit] | None = [] if explain else None
    items = _assemble(
        RECENTLY_VIEWED,
        context,
        [history_stage],
        limit=limit,
        fallbacks=_fallbacks(context, _blend(context, RECENTLY_VIEWED)),
        page_exclude=[current] if current else [],
        apply_rules=apply_rules,
        explain=hits,
        memo_key=(tuple(context.history.recent_views) if context.has_shopper else (),),
    )
    return _result(RECENTLY_VIEWED, context, items, hits)


def buy_again(
    *,
    context: RecoContext | None = None,
    limit: int | None = None,
    apply_rules: bool = True,
    explain: bool = False,
) -> SlotResult:
    """What the shopper bought before (most often, then most recently), plus the stored buy-again list."""
    context = context or context_for()
    weights = _blend(context, BUY_AGAIN)

    def history_stage(ctx: RecoContext) -> list[Candidate]:
        if not ctx.has_shopper:
            return []
        history = ctx.history
        newest = sorted(history.last_purchased, key=lambda key: history.last_purchased[key], reverse=True)
        count = len(newest)
        found = {
            key: Candidate(
                key,
                history.purchase_counts[key] * (count + 1) + (count - rank),
                PURCHASE_HISTORY,
                "bought_before",
                extra={"count": history.purchase_counts[key]},
            )
            for rank, key in enumerate(newest)
        }
        weight = weights.get(sources.BUY_AGAIN, 1.0)
        specs = []
        if ctx.user_id is not None:
            specs.append((ListSpec("user", str(ctx.user_id), sources.BUY_AGAIN), weight, "bought_before", ""))
        if ctx.visitor_id:
            specs.append(
                (ListSpec("visitor", ctx.visitor_id, sources.BUY_AGAIN), weight, "bought_before", "")
            )
        top = max((cand.score for cand in found.values()), default=1.0)
        for cand in list_stage(ctx, specs):
            # The stored list ranks repurchase candidates; it adds to, never replaces, the plain history.
            if cand.key in found:
                old = found[cand.key]
                found[cand.key] = Candidate(
                    old.key, old.score + cand.score * top, old.source, old.reason, "", old.extra
                )
            else:
                found[cand.key] = Candidate(cand.key, cand.score * top * 0.5, cand.source, "bought_before")
        return list(found.values())

    hits: list[RuleHit] | None = [] if explain else None
    items = _assemble(
        BUY_AGAIN,
        context,
        [history_stage],
        limit=limit,
        fallbacks=_fallbacks(context, weights),
        apply_rules=apply_rules,
        explain=hits,
    )
    return _result(BUY_AGAIN, context, items, hits)


def _anchor(context: RecoContext, key: str) -> Any:
    row = context.products.get(key) if key else None
    return row.product if row is not None else None


# --- one entry point by slot name, for tags, views and the admin preview ---

SLOT_FUNCTIONS: dict[str, Callable[..., SlotResult]] = {
    SIMILAR: similar_products,
    BOUGHT_TOGETHER: bought_together,
    CART: cart_recommendations,
    FOR_YOU: recommended_for_you,
    TRENDING: trending,
    RECENTLY_VIEWED: recently_viewed,
    BUY_AGAIN: buy_again,
}


def recommend(slot: str, *args: Any, **kwargs: Any) -> SlotResult:
    """Call the slot function named ``slot``."""
    try:
        function = SLOT_FUNCTIONS[slot]
    except KeyError:
        raise ValueError(
            f"Unknown recommendation slot {slot!r}; expected one of {', '.join(SLOTS)}."
        ) from None
    return function(*args, **kwargs)


def record_impression(context: RecoContext, result: SlotResult) -> None:
    """One rec_impression event per rendered slot, with the keys shown.

    Queued on the request (``shop_reco.tracking.track_later``): the middleware stores the request's events in
    one buffer append once the response is sent, so a page of three slots costs one write, after the page.
    """
    if not result.items or context.request is None or not reco_settings.TRACK_IMPRESSIONS:
        return
    memo = result.memo
    same_items = memo is not None and _same_objects(memo.items, result.items)
    shown = memo.impressions.get(result.slot) if same_items else None  # type: ignore[union-attr]
    if shown is None:
        shown = checked_context(
            {
                "keys": result.keys,
                "sources": [item.source for item in result.items],
                "version": result.version_id,
            }
        )
        if same_items:
            memo.impressions[result.slot] = shown  # type: ignore[union-attr]  # the same items, the same context
    _track_impression(context.request, slot=result.slot, context=shown)


def _same_objects(first: Sequence[Any], second: Sequence[Any]) -> bool:
    return len(first) == len(second) and all(a is b for a, b in zip(first, second, strict=True))


def _track_impression(request: Any, **fields: Any) -> None:
    from shop_reco.tracking import track_later

    track_later("rec_impression", request=request, **fields)
