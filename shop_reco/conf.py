"""The ``SHOP_RECO`` settings dict, read lazily with documented defaults.

Usage::

    from shop_reco.conf import reco_settings
    reco_settings.PRODUCT_MODEL

Every key is optional except ``PRODUCT_MODEL``. The object reloads on Django's ``setting_changed`` signal, so
``override_settings(SHOP_RECO=...)`` works in tests. Dotted-path settings are imported on first use with an
error that names the setting.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

BUILTIN_EVENT_TYPES = (
    "view",
    "add_to_cart",
    "remove_from_cart",
    "purchase",
    "search",
    "wishlist",
    "rec_impression",
    "rec_click",
)

DEFAULTS: dict[str, Any] = {
    # "app_label.ModelName" of the shop's product model. Required.
    "PRODUCT_MODEL": None,
    # Dotted path of the adapter class that answers every shop-specific question.
    "ADAPTER": "shop_reco.adapters.DefaultShopAdapter",
    # Event types beyond the built-in ones, e.g. ("compare", "share").
    "CUSTOM_EVENT_TYPES": (),
    # How much each event type counts in the interaction matrix.
    "EVENT_WEIGHTS": {
        "view": 1.0,
        "add_to_cart": 3.0,
        "remove_from_cart": -1.0,
        "purchase": 5.0,
        "wishlist": 2.0,
        "search": 0.0,
        "rec_impression": 0.0,
        "rec_click": 1.0,
    },
    # Older events count for less: weight halves every this many days.
    "DECAY_HALF_LIFE_DAYS": 90.0,
    # --- Tuning (the admin's RecoConfig overlays these; read them through services.tuning.current_config) ---
    # Neighbours kept per item by the collaborative and content models.
    "NEIGHBOURS": 50,
    # Bought together: a pair must appear in at least this fraction of baskets, and the rule A -> B must
    # hold in at least this fraction of the baskets holding A.
    "MIN_SUPPORT": 0.001,
    "MIN_CONFIDENCE": 0.05,
    # How much each source counts when a slot's list blends several, {slot: {source: weight}}. The recompute
    # blends "similar" from collaborative ("cf") and content neighbours and "for_you" from cf and buy again;
    # the other slots name stored lists (shop_reco.sources).
    "BLEND_WEIGHTS": {
        "similar": {"cf": 1.0, "content": 0.3},
        "bought_together": {"bought_together": 1.0},
        "cart": {"bought_together": 1.0, "similar": 0.6, "similar_cf": 0.36, "similar_content": 0.36},
        "for_you": {"cf": 1.0, "buy_again": 0.5},
        "trending": {"trending": 1.0, "popular": 0.5},
    },
    # Seconds each process trusts its copy of the admin's configuration; saving it clears the copy at once.
    "CONFIG_CACHE_SECONDS": 5,
    # Confidence level of the intervals and the significance threshold in experiment reports.
    "EXPERIMENT_CONFIDENCE": 0.95,
    # Middleware: record a "view" event for requests resolved to these URL names ("app:name" too).
    "PRODUCT_VIEW_URL_NAMES": (),
    # URL keyword argument that carries the product key in those views.
    "PRODUCT_VIEW_URL_KWARG": "pk",
    # Visitor cookie: a random id, signed, no personal data.
    "VISITOR_COOKIE_NAME": "shop_reco_vid",
    "VISITOR_COOKIE_AGE_DAYS": 365,
    "VISITOR_COOKIE_SECURE": False,
    # Honour the Do-Not-Track / Sec-GPC headers.
    "RESPECT_DO_NOT_TRACK": True,
    # Dotted path to a callable ``(request) -> bool``; False switches tracking off for that request.
    "CONSENT_CHECK": None,
    # User-agent substrings (case-insensitive) that mark a request as a bot; never tracked.
    "BOT_USER_AGENT_PATTERNS": (
        "bot",
        "crawl",
        "spider",
        "slurp",
        "facebookexternalhit",
        "headless",
        "lighthouse",
        "preview",
    ),
    # Events older than this are purged by the retention task. None keeps everything.
    "RETENTION_DAYS": 730,
    # Redis URL for the event buffer; None writes events straight to the database.
    "EVENT_BUFFER_URL": None,
    "EVENT_BUFFER_KEY": "shop_reco:events",
    # Flush the buffer when it holds this many events (and on the periodic task).
    "EVENT_BUFFER_FLUSH_SIZE": 500,
    # A directory for each web process's spool of the events stored after a response (impressions, views):
    # one write() per request instead of one Redis append, shipped to the buffer by a thread every
    # EVENT_SPOOL_SHIP_SECONDS (shop_reco.tracking.spool). Per machine, not shared; needs EVENT_BUFFER_URL.
    # None appends to Redis in the request.
    "EVENT_SPOOL_DIR": None,
    "EVENT_SPOOL_SHIP_SECONDS": 0.2,
    # Flushes that may write the buffer at once, each on its own connection over its own batches (at most 16).
    "EVENT_FLUSH_WORKERS": 2,
    # Beacon endpoint limits.
    "BEACON_MAX_EVENTS": 50,
    "BEACON_MAX_BYTES": 64 * 1024,
    "BEACON_THROTTLE_RATE": "120/min",
    # Largest accepted JSON "context" on an event, serialised.
    "EVENT_CONTEXT_MAX_BYTES": 2048,
    # How many items each stored list keeps per product / shopper / source.
    "LIST_LENGTH": 50,
    # Score versions kept after publishing a new one (the published one included).
    "KEEP_VERSIONS": 3,
    # --- Storefront (recommendation slots, API, attribution) ---
    # Score family the storefront reads; the newest published version of it is "live".
    "SCORE_FAMILY": "full",
    # Seconds each process trusts its idea of the live version id before asking again.
    "VERSION_CACHE_SECONDS": 5,
    # Seconds each process reuses a product row it read for the slots (availability, category, name, price);
    # 0 reads them on every request. A stock change or a new price shows in the slots within this time (the
    # product page and the cart read the product themselves).
    "PRODUCT_CACHE_SECONDS": 30,
    # Reload the product rows a process keeps before they lapse, in a thread of that process (while it serves
    # slots), so no request waits for a batch of them. Off: a request that queries anyway takes the rows due
    # soon along.
    "PRODUCT_REFRESH_THREAD": True,
    # Seconds the stored lists stay in the Django cache; keys carry the version id, so no purge is needed.
    "LIST_CACHE_SECONDS": 6 * 3600,
    # Per-slot options merged over the built-in ones (shop_reco.services.recommendations.SLOT_DEFAULTS):
    # {"similar": {"limit": 6, "max_per_category": 3, "exclude_purchased": True, "fallback": True,
    #  "top_up": True}}.
    "SLOTS": {},
    # Largest ?limit= the recommendation endpoints accept.
    "API_MAX_LIMIT": 50,
    # Dotted path of the DRF serializer for products in API responses (takes the product instance).
    "PRODUCT_SERIALIZER": "shop_reco.api.product_serializers.AdapterProductSerializer",
    # Emit one rec_impression event per rendered slot (template tags and API responses).
    "TRACK_IMPRESSIONS": True,
    # A purchase is credited to a rec_click of the same shopper on the same product this many days before.
    "ATTRIBUTION_WINDOW_DAYS": 7,
    # Days of events the live "popular" fallback counts when no score version was ever published.
    "LIVE_POPULAR_DAYS": 30,
    # How many of a shopper's latest view/purchase events the slots read (recently viewed, buy again, ...).
    "HISTORY_LENGTH": 100,
    # Seconds a shopper's history stays in the Django cache. Every write through shop_reco (flush, direct
    # write, login merge, erasure) forgets the histories it changes at once; this bounds how long writes
    # around shop_reco (the ORM by hand, the retention purge) can go unseen. 0 reads it on every page.
    "HISTORY_CACHE_SECONDS": 300,
    # Shards per recompute stage: each is one Celery task, so more workers finish sooner.
    "RECOMPUTE_SHARDS": 8,
    # Shoppers with an event in this many days get personal lists at each full recompute.
    "ACTIVE_SHOPPER_DAYS": 90,
    # Seconds between runs of each periodic task in shop_reco.schedules.default_beat_schedule().
    "SCHEDULE_SECONDS": {
        "flush_events": 10,
        "recompute": 6 * 3600,
        "purge_events": 24 * 3600,
    },
}

# Settings that hold dotted import paths, resolved on access.
IMPORT_STRINGS = frozenset({"ADAPTER", "CONSENT_CHECK"})


class RecoSettings:
    """Attribute access to ``settings.SHOP_RECO`` merged over ``DEFAULTS``.

    A setting read once is stored on the instance, so later reads are plain attribute lookups (the storefront
    reads a few dozen per request); ``reload()`` (on ``setting_changed``) forgets them.
    """

    @property
    def user_settings(self) -> dict[str, Any]:
        value = getattr(settings, "SHOP_RECO", {})
        return value if isinstance(value, dict) else {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in DEFAULTS:
            raise AttributeError(f"Invalid shop_reco setting: {name!r}")
        value = self.user_settings.get(name, DEFAULTS[name])
        if name == "EVENT_WEIGHTS":
            # A partial dict overrides only the types it names.
            value = {**DEFAULTS["EVENT_WEIGHTS"], **value}
        if name in IMPORT_STRINGS and isinstance(value, str):
            value = import_setting(name, value)
        self.__dict__[name] = value
        return value

    @property
    def event_types(self) -> tuple[str, ...]:
        types = self.__dict__.get("_event_types")
        if types is None:
            types = self.__dict__["_event_types"] = BUILTIN_EVENT_TYPES + tuple(self.CUSTOM_EVENT_TYPES)
        return types

    def reload(self) -> None:
        self.__dict__.clear()


def import_setting(name: str, dotted_path: str) -> Any:
    try:
        return import_string(dotted_path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"SHOP_RECO[{name!r}] = {dotted_path!r} could not be imported: {exc}"
        ) from exc


reco_settings = RecoSettings()


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == "SHOP_RECO":
        reco_settings.reload()


setting_changed.connect(_reload)
