"""Read path for stored lists: the live score version, its lists, and the live-popular fallback, all cached.

A list is cached under its version id: a new version is simply a new key and nothing needs purging. Two
levels: a small per-process LRU (no network round trip on the hot path) in front of the Django cache (Redis in
production, shared by all workers).

Incremental updates rewrite some lists inside the published version (a shopper's personal lists, a new
product's neighbours) and call :func:`forget_lists`, which clears the shared cache and this process's copy and
announces the change (``shop_reco.invalidation``). A personal list (kinds ``user`` and ``visitor``) read while
the announcements can be heard is kept until one names it (or ``invalidation.LOCAL_SECONDS``); without the
channel (a cache other than Redis, or Redis unreachable) for ``_PERSONAL_LOCAL_SECONDS``, so an update shows
within a few seconds on every worker. The other lists are kept for ``_LOCAL_SECONDS``.
"""

from __future__ import annotations

import hashlib
import heapq
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple

from django.core.cache import cache
from django.core.signals import setting_changed
from django.db.models import Case, FloatField, Q, Sum, Value, When
from django.utils import timezone

from shop_reco import cache_reads, invalidation
from shop_reco.conf import reco_settings
from shop_reco.models import Event, RecommendationList, ScoreVersion

LIVE_POPULAR = "live_popular"  # source name of the aggregate computed from events when nothing is published
CATALOGUE = "catalogue"  # source name of the last resort: any available product

_LOCAL_MAX = 20_000  # entries in the per-process LRU; one entry is one list of <= LIST_LENGTH keys
_LIVE_POPULAR_SECONDS = 60
# How long this process trusts its own copy of a list before asking the shared cache again.
_PERSONAL_LOCAL_SECONDS = 2.0
_LOCAL_SECONDS = 60.0
PERSONAL_KINDS = frozenset({"user", "visitor"})


class ListSpec(NamedTuple):
    """Which stored list: a tuple, so the lookups on every request hash it in C, not in a dataclass's
    ``__hash__``."""

    kind: str
    subject: str
    source: str


@dataclass(frozen=True)
class StoredList:
    keys: tuple[str, ...]
    scores: tuple[float, ...]

    def __bool__(self) -> bool:
        return bool(self.keys)


EMPTY = StoredList((), ())


class _LRU:
    """A thread-safe bounded mapping (gunicorn threads, runserver)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data: OrderedDict[Any, Any] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self.lock:
            value = self.data.get(key)
            if value is not None:
                self.data.move_to_end(key)
            return value

    def peek(self, key: Any) -> Any:
        """``get`` without the lock and without refreshing the entry's place: one atomic dict read, for the
        hottest lookups (an entry read often but never written again is evicted as if least recently used)."""
        return self.data.get(key)

    def put(self, key: Any, value: Any) -> None:
        with self.lock:
            self.data[key] = value
            self.data.move_to_end(key)
            while len(self.data) > self.size:
                self.data.popitem(last=False)

    def pop(self, key: Any) -> None:
        with self.lock:
            self.data.pop(key, None)

    def clear(self) -> None:
        with self.lock:
            self.data.clear()


_lists = _LRU(_LOCAL_MAX)  # (version id, ListSpec) -> (expires_at, StoredList)
_memo = _LRU(256)  # short-lived values: (expires_at, value)
# Product rows the slots read (services.context): key -> (expires_at, ProductRow | None for unavailable).
_rows = _LRU(_LOCAL_MAX)
# Ranked slots without the shopper's own exclusions (services.recommendations): memo key -> SlotMemo.
_slots = _LRU(5_000)


def clear_caches() -> None:
    """Forget everything this process memoised (tests, and after publishing by hand)."""
    global _next_refresh_scan
    _lists.clear()
    _memo.clear()
    _rows.clear()
    _slots.clear()
    _next_refresh_scan = 0.0
    from shop_reco.tracking.history import clear_local_histories

    clear_local_histories()


# Cached product rows due within this share of their lifetime are reloaded ahead: by the process's refresh
# thread (services.row_refresh), or, with PRODUCT_REFRESH_THREAD off, by a request that queries for lapsed rows
# anyway (at most ROWS_REFRESHED_AHEAD, looked for at most every REFRESH_SCAN_SECONDS), so rows lapse together
# and come back in one query instead of one small query per slot whose rows lapsed.
# Bounded, because the request that runs the query waits for it: 500 products with their categories take
# ~11 ms on an idle 2-core machine (2,000 took 44 ms and showed in the page latency p99), and 25-40 ms on a
# busy one, where those requests were most of the API's slowest 1%.
REFRESH_AHEAD_SHARE = 0.1
ROWS_REFRESHED_AHEAD = 150
REFRESH_SCAN_SECONDS = 0.2
_next_refresh_scan = 0.0


def rows_due(now: float, seconds: float, skip: set[str]) -> list[str]:
    """Keys of cached rows (available, or known unavailable) that lapse within ``REFRESH_AHEAD_SHARE`` of
    ``seconds`` from ``now``, the soonest first (at most ROWS_REFRESHED_AHEAD); empty when another request
    looked less than REFRESH_SCAN_SECONDS ago."""
    global _next_refresh_scan
    if now < _next_refresh_scan:
        return []
    _next_refresh_scan = now + REFRESH_SCAN_SECONDS
    return soonest_due_rows(now, seconds, ROWS_REFRESHED_AHEAD, skip)


def soonest_due_rows(
    now: float, seconds: float, limit: int, skip: set[str] | frozenset[str] = frozenset()
) -> list[str]:
    """Keys of at most ``limit`` cached rows lapsing within ``REFRESH_AHEAD_SHARE`` of ``seconds`` from ``now``,
    the soonest first: when more are due than one query takes, those left over lapse last, by which time
    another round has taken them. (Taken in cache order, the rows about to lapse were left out half the time
    and each came back alone: ~60 one-row queries a second on the storefront benchmark.)"""
    horizon = now + seconds * REFRESH_AHEAD_SHARE
    with _rows.lock:
        entries = list(_rows.data.items())
    due = (
        (expires, key)
        for key, (expires, row) in entries
        # A row kept for an unavailable anchor is read by another query: left to its own request.
        if expires <= horizon and key not in skip and (row is None or row.available)
    )
    return [key for _, key in heapq.nsmallest(limit, due)]


def row_is_cached(key: str, row: Any) -> bool:
    """Whether ``row`` is this process's unexpired cached row of ``key``."""
    return cached_row_expiry(key, row) > time.monotonic()


def cached_row_expiry(key: str, row: Any) -> float:
    """When this process's cached row of ``key`` expires, if it is ``row``; else 0."""
    hit = _rows.data.get(key)  # a peek: no reordering, no lock needed for one dict read
    return hit[0] if hit is not None and hit[1] is row else 0.0


def _memo_get(key: Any) -> Any:
    hit = _memo.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return hit
    return None


def _memo_put(key: Any, value: Any, seconds: float) -> None:
    _memo.put(key, (time.monotonic() + seconds, value))


def live_version_id(family: str | None = None) -> int | None:
    """Id of the newest published version of ``family`` (default ``SCORE_FAMILY``), memoised briefly."""
    family = family or reco_settings.SCORE_FAMILY
    hit = _memo_get(("version", family))
    if hit is not None:
        return hit[1]
    version_id = (
        ScoreVersion.objects.filter(family=family, status=ScoreVersion.Status.PUBLISHED)
        .order_by("-published_at", "-pk")
        .values_list("pk", flat=True)
        .first()
    )
    _memo_put(("version", family), version_id, float(reco_settings.VERSION_CACHE_SECONDS))
    return version_id


def _cache_key(version_id: int, spec: ListSpec) -> str:
    subject = spec.subject
    if not subject.isascii() or not subject.replace("-", "").replace("_", "").isalnum() or len(subject) > 64:
        # Category names have spaces and may be long; memcached-safe keys need a digest.
        subject = "h" + hashlib.md5(subject.encode(), usedforsecurity=False).hexdigest()
    return f"shop_reco:l:{version_id}:{spec.kind}:{spec.source}:{subject}"


def load_lists(version_id: int | None, specs: Iterable[ListSpec]) -> dict[ListSpec, StoredList]:
    """Stored lists for ``specs`` of one version: memory, then the cache, then ONE query for the rest."""
    specs = list(dict.fromkeys(specs))
    if version_id is None or not specs:
        return dict.fromkeys(specs, EMPTY)
    found: dict[ListSpec, StoredList] = {}
    missing: list[ListSpec] = []
    lapsed: dict[ListSpec, StoredList] = {}
    now = time.monotonic()
    for spec in specs:
        hit = _lists.get((version_id, spec))
        if hit is None or not _held(hit, now):
            missing.append(spec)
            if hit is not None:
                lapsed[spec] = hit[1]
        else:
            found[spec] = hit[1]
    if not missing:
        return found
    token = invalidation.read_token()
    keys = {_cache_key(version_id, spec): spec for spec in missing}
    cached = cache_reads.get_many(list(keys))
    for cache_key, raw in cached.items():
        spec = keys.pop(cache_key)
        stored = StoredList(tuple(raw[0]), tuple(raw[1])) if raw else EMPTY
        found[spec] = stored = _unchanged(lapsed.get(spec), stored)
        _remember(version_id, spec, stored, now, token)
    if keys:
        fetched = _query_lists(version_id, list(keys.values()))
        to_cache = {}
        for cache_key, spec in keys.items():
            stored = _unchanged(lapsed.get(spec), fetched.get(spec, EMPTY))
            found[spec] = stored
            _remember(version_id, spec, stored, now, token)
            # An absent list is cached too (as an empty tuple), so misses cost no query either.
            to_cache[cache_key] = (list(stored.keys), list(stored.scores)) if stored else ()
        cache.set_many(to_cache, timeout=reco_settings.LIST_CACHE_SECONDS)
    return found


def lists_still_held(version_id: int | None, specs: Sequence[ListSpec], lists: Sequence[StoredList]) -> bool:
    """Whether this process still holds, unexpired, the very ``lists`` for ``specs`` (a slot memo's check on
    every request): plain reads, without the LRU's lock and reordering. False means "ask load_lists"."""
    now = time.monotonic()
    data = _lists.data
    for spec, stored in zip(specs, lists, strict=True):
        hit = data.get((version_id, spec))  # one dict read: atomic under the GIL
        if hit is None or hit[1] is not stored or not _held(hit, now):
            return False
    return True


def _held(hit: tuple[Any, ...], now: float) -> bool:
    """Whether this process's copy may still be used: unexpired, and for a personal list kept past
    ``_PERSONAL_LOCAL_SECONDS``, with no change announced since it was read."""
    if hit[0] <= now:
        return False
    return len(hit) == 2 or invalidation.unchanged_since(hit[2], hit[3])


def _unchanged(previous: StoredList | None, stored: StoredList) -> StoredList:
    """The copy this process had when the list is unchanged: slot memos that read it stay valid (they
    compare lists by identity), and no new objects pile up for the garbage collector."""
    return previous if previous is not None and previous == stored else stored


def _remember(
    version_id: int, spec: ListSpec, stored: StoredList, now: float, token: invalidation.Token | None
) -> None:
    if spec.kind not in PERSONAL_KINDS:
        _lists.put((version_id, spec), (now + _LOCAL_SECONDS, stored))
        return
    names = (_cache_key(version_id, spec),)
    if invalidation.keepable(token, names):  # any worker's update of it reaches this one: keep it longer
        _lists.put((version_id, spec), (now + invalidation.local_lifetime(), stored, token, names))
    else:
        _lists.put((version_id, spec), (now + _PERSONAL_LOCAL_SECONDS, stored))


def forget_lists(version_id: int, kind: str, subject: str, sources: Iterable[str] | None = None) -> None:
    """Forget every cached list of (version, kind, subject) after an incremental update rewrote it.

    Clears the shared cache and this process's copy at once, and announces the change: other processes drop
    their copies of personal lists as it arrives (within ``_PERSONAL_LOCAL_SECONDS`` without the channel), of
    the others within ``_LOCAL_SECONDS``.
    """
    from shop_reco.sources import ALL_SOURCES

    specs = [ListSpec(kind, str(subject), source) for source in (sources or ALL_SOURCES)]
    invalidation.announce([_cache_key(version_id, spec) for spec in specs])
    for spec in specs:
        _lists.pop((version_id, spec))


def _query_lists(version_id: int, specs: Sequence[ListSpec]) -> dict[ListSpec, StoredList]:
    groups: dict[tuple[str, str], list[str]] = {}
    for spec in specs:
        groups.setdefault((spec.kind, spec.source), []).append(spec.subject)
    condition = Q()
    for (kind, source), subjects in groups.items():
        condition |= Q(kind=kind, source=source, subject__in=subjects)
    rows = RecommendationList.objects.filter(condition, version_id=version_id).values_list(
        "kind", "subject", "source", "item_keys", "scores"
    )
    result = {}
    for kind, subject, source, item_keys, scores in rows:
        keys = tuple(str(key) for key in item_keys or ())
        values = tuple(float(score) for score in scores or ())
        if len(values) != len(keys):  # a list without scores ranks by position
            values = tuple(1.0 / (1 + rank) for rank in range(len(keys)))
        result[ListSpec(kind, subject, source)] = StoredList(keys, values)
    return result


def live_popular(limit: int = 200) -> StoredList:
    """Popular products from recent events in one aggregate query, for shops that never published scores."""
    hit = _memo_get("live_popular")
    if hit is not None:
        return hit[1]
    cache_key = "shop_reco:live_popular"
    raw = cache.get(cache_key)
    if raw is None:
        weights = reco_settings.EVENT_WEIGHTS
        counted = [name for name in ("purchase", "add_to_cart", "view") if weights.get(name, 0) > 0]
        since = timezone.now() - timedelta(days=float(reco_settings.LIVE_POPULAR_DAYS))
        weight = Case(
            *(When(event_type=name, then=Value(float(weights[name]))) for name in counted),
            default=Value(0.0),
            output_field=FloatField(),
        )
        rows = (
            Event.objects.filter(occurred_at__gte=since, event_type__in=counted)
            .exclude(product_key="")
            .values("product_key")
            .annotate(score=Sum(weight))
            .order_by("-score", "product_key")[:limit]
        )
        raw = [(row["product_key"], float(row["score"])) for row in rows]
        cache.set(cache_key, raw, timeout=_LIVE_POPULAR_SECONDS)
    stored = StoredList(tuple(key for key, _ in raw), tuple(score for _, score in raw))
    _memo_put("live_popular", stored, min(_LIVE_POPULAR_SECONDS, 10))
    return stored


def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting in ("SHOP_RECO", "CACHES"):
        clear_caches()


setting_changed.connect(_reset)
