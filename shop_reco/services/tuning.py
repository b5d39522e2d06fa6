"""The effective recommendation configuration: ``SHOP_RECO`` defaults overlaid with the admin's tuning.

``current_config(variant=None, site_id=None)`` is what the recompute pipeline and the storefront read. It
returns a fresh dict (callers may change it) with exactly the keys of :data:`TUNABLE_KEYS`::

    EVENT_WEIGHTS         {event type: float}
    DECAY_HALF_LIFE_DAYS  float > 0
    NEIGHBOURS            int >= 1
    MIN_SUPPORT           float in [0, 1), a fraction of baskets
    MIN_CONFIDENCE        float in [0, 1]
    BLEND_WEIGHTS         {slot: {source: float >= 0}}
    SLOTS                 {slot: {"fallback": [stage, ...], "exclude_purchased": bool,
                                  "max_per_category": int | None, "limit": int}}

Layers, later ones winning key by key (dicts merge, lists and scalars replace): ``SHOP_RECO`` settings over
:data:`shop_reco.conf.DEFAULTS`, the all-sites :class:`RecoConfig`, the current site's :class:`RecoConfig`
(only with ``django.contrib.sites``), then the experiment variant's overlay when ``variant`` is given.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.signals import setting_changed
from django.db import transaction

from shop_reco import sources
from shop_reco.conf import reco_settings
from shop_reco.models import ExperimentVariant, RecoConfig, RecoConfigRevision

TUNABLE_KEYS = (
    "EVENT_WEIGHTS",
    "DECAY_HALF_LIFE_DAYS",
    "NEIGHBOURS",
    "MIN_SUPPORT",
    "MIN_CONFIDENCE",
    "BLEND_WEIGHTS",
    "SLOTS",
)
SLOT_OPTIONS = ("fallback", "exclude_purchased", "max_per_category", "limit")
# The generic fallback chain a slot tops up from, in the storefront's default order.
FALLBACK_STAGES = ("category", "popular", "live_popular", "catalogue")
# Sources a slot may blend: the recompute's model outputs, the stored lists, the storefront's history ones.
BLEND_SOURCES = ("cf", "content", *sources.ALL_SOURCES, "recently_viewed", "purchase_history")

MAX_NEIGHBOURS = 1000
MAX_HALF_LIFE_DAYS = 3650.0
MAX_ABS_EVENT_WEIGHT = 100.0

_CACHE_KEY = "shop_reco:config:{site}"
_local: dict[Any, tuple[float, Any]] = {}
_lock = threading.Lock()


# --- defaults and slots ---


def _storefront_slot_defaults() -> dict[str, dict[str, Any]]:
    try:  # the storefront's built-in slots and their options (its module may be absent in a trimmed install)
        from shop_reco.services.recommendations import SLOT_DEFAULTS
    except ImportError:  # pragma: no cover
        return {}
    return copy.deepcopy(SLOT_DEFAULTS)


def slot_names() -> list[str]:
    """Every known slot: the storefront's, any named in settings, any with blend weights."""
    names = list(_storefront_slot_defaults())
    for extra in (reco_settings.SLOTS or {}, reco_settings.BLEND_WEIGHTS or {}):
        names += [name for name in extra if name not in names]
    return names


def _normal_fallback(value: Any) -> list[str]:
    # The storefront's settings use a bool (top up or not); the tuned form is an ordered list of stages.
    if value is True:
        return list(FALLBACK_STAGES)
    if value is False or value is None:
        return []
    return [str(stage) for stage in value]


def _normal_slot(options: Mapping[str, Any]) -> dict[str, Any]:
    slot = {
        "fallback": list(FALLBACK_STAGES),
        "exclude_purchased": True,
        "max_per_category": None,
        "limit": 6,
    }
    slot.update({key: value for key, value in options.items() if key in SLOT_OPTIONS})
    slot["fallback"] = _normal_fallback(slot["fallback"])
    return slot


def settings_config() -> dict[str, Any]:
    """The configuration from settings alone, before any admin tuning."""
    slots_setting = reco_settings.SLOTS if isinstance(reco_settings.SLOTS, dict) else {}
    storefront = _storefront_slot_defaults()
    slots = {}
    for name in slot_names():
        slots[name] = _normal_slot({**storefront.get(name, {}), **slots_setting.get(name, {})})
    blend_setting = reco_settings.BLEND_WEIGHTS if isinstance(reco_settings.BLEND_WEIGHTS, dict) else {}
    return {
        "EVENT_WEIGHTS": {name: float(weight) for name, weight in reco_settings.EVENT_WEIGHTS.items()},
        "DECAY_HALF_LIFE_DAYS": float(reco_settings.DECAY_HALF_LIFE_DAYS),
        "NEIGHBOURS": int(reco_settings.NEIGHBOURS),
        "MIN_SUPPORT": float(reco_settings.MIN_SUPPORT),
        "MIN_CONFIDENCE": float(reco_settings.MIN_CONFIDENCE),
        "BLEND_WEIGHTS": {slot: dict(weights) for slot, weights in blend_setting.items()},
        "SLOTS": slots,
    }


# --- overlay arithmetic ---


def merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overlay`` on top: nested dicts merge key by key, anything else replaces."""
    result = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def diff(base: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The smallest overlay that turns ``base`` into ``values`` (keys equal to the base are left out)."""
    result: dict[str, Any] = {}
    for key, value in values.items():
        old = base.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            nested = diff(old, value)
            if nested:
                result[key] = nested
        elif key not in base or old != value:
            result[key] = copy.deepcopy(value)
    return result


def changes(
    before: Mapping[str, Any], after: Mapping[str, Any], prefix: str = ""
) -> list[tuple[str, Any, Any]]:
    """Flat ``(path, old, new)`` differences between two configurations, for the history screen."""
    found = []
    for key in sorted(set(before) | set(after), key=str):
        path = f"{prefix}{key}"
        old, new = before.get(key), after.get(key)
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            found += changes(old, new, path + ".")
        elif isinstance(old, Mapping) or isinstance(new, Mapping):
            found += changes(
                old if isinstance(old, Mapping) else {}, new if isinstance(new, Mapping) else {}, path + "."
            )
        elif old != new:
            found.append((path, old, new))
    return found


# --- validation ---


def _number(value: Any) -> bool:
    # JSON overlays may carry NaN or Infinity (Python's json reads them); neither is a setting.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return isinstance(value, int) or math.isfinite(value)  # ints are finite, and may exceed a float


def validate_overlay(values: Any) -> dict[str, Any]:
    """Check a (partial) configuration; returns it with numbers normalised.

    Raises ``ValidationError`` whose ``error_dict`` keys are dotted paths (``"SLOTS.similar.limit"``), so a
    form can put each message next to its field.
    """
    errors: dict[str, list[str]] = {}

    def fail(path: str, message: str) -> None:
        errors.setdefault(path, []).append(message)

    if not isinstance(values, Mapping):
        raise ValidationError({"values": ["The configuration must be a JSON object."]})
    clean: dict[str, Any] = {}
    for key in values:
        if key not in TUNABLE_KEYS:
            fail(str(key), f"Unknown setting {key!r}; tunable settings are {', '.join(TUNABLE_KEYS)}.")

    if "EVENT_WEIGHTS" in values:
        weights = values["EVENT_WEIGHTS"]
        known = set(reco_settings.event_types)
        if not isinstance(weights, Mapping):
            fail("EVENT_WEIGHTS", 'Give a weight per event type, e.g. {"view": 1, "purchase": 5}.')
        else:
            clean["EVENT_WEIGHTS"] = {}
            for name, weight in weights.items():
                path = f"EVENT_WEIGHTS.{name}"
                if name not in known:
                    fail(path, f"Unknown event type {name!r}.")
                elif not _number(weight):
                    fail(path, "Enter a number.")
                elif abs(weight) > MAX_ABS_EVENT_WEIGHT:
                    fail(
                        path,
                        f"Keep event weights between -{MAX_ABS_EVENT_WEIGHT:g} and {MAX_ABS_EVENT_WEIGHT:g}.",
                    )
                else:
                    clean["EVENT_WEIGHTS"][name] = float(weight)
            if (
                isinstance(weights, Mapping)
                and weights
                and all(_number(w) and w <= 0 for w in {**reco_settings.EVENT_WEIGHTS, **weights}.values())
            ):
                fail("EVENT_WEIGHTS", "At least one event type must have a positive weight.")

    if "DECAY_HALF_LIFE_DAYS" in values:
        half_life = values["DECAY_HALF_LIFE_DAYS"]
        if not _number(half_life) or not 0 < half_life <= MAX_HALF_LIFE_DAYS:
            fail(
                "DECAY_HALF_LIFE_DAYS", f"Enter a number of days above 0 and at most {MAX_HALF_LIFE_DAYS:g}."
            )
        else:
            clean["DECAY_HALF_LIFE_DAYS"] = float(half_life)

    if "NEIGHBOURS" in values:
        neighbours = values["NEIGHBOURS"]
        if not _number(neighbours) or int(neighbours) != neighbours or not 1 <= neighbours <= MAX_NEIGHBOURS:
            fail("NEIGHBOURS", f"Enter a whole number from 1 to {MAX_NEIGHBOURS}.")
        else:
            clean["NEIGHBOURS"] = int(neighbours)

    if "MIN_SUPPORT" in values:
        support = values["MIN_SUPPORT"]
        if not _number(support) or not 0 <= support < 1:
            fail(
                "MIN_SUPPORT",
                "Minimum support is a fraction of baskets, at least 0 and below 1, e.g. 0.001 for 0.1%.",
            )
        else:
            clean["MIN_SUPPORT"] = float(support)

    if "MIN_CONFIDENCE" in values:
        confidence = values["MIN_CONFIDENCE"]
        if not _number(confidence) or not 0 <= confidence <= 1:
            fail("MIN_CONFIDENCE", "Minimum confidence is a fraction from 0 to 1, e.g. 0.05 for 5%.")
        else:
            clean["MIN_CONFIDENCE"] = float(confidence)

    known_slots = set(slot_names())
    if "BLEND_WEIGHTS" in values:
        blend = values["BLEND_WEIGHTS"]
        if not isinstance(blend, Mapping):
            fail("BLEND_WEIGHTS", "Give {slot: {source: weight}}.")
        else:
            clean["BLEND_WEIGHTS"] = {}
            for slot, weights in blend.items():
                if slot not in known_slots:
                    fail(f"BLEND_WEIGHTS.{slot}", f"Unknown slot {slot!r}.")
                    continue
                if not isinstance(weights, Mapping):
                    fail(f"BLEND_WEIGHTS.{slot}", "Give {source: weight}.")
                    continue
                clean["BLEND_WEIGHTS"][slot] = {}
                for source, weight in weights.items():
                    path = f"BLEND_WEIGHTS.{slot}.{source}"
                    if source not in BLEND_SOURCES:
                        fail(path, f"Unknown source {source!r}.")
                    elif not _number(weight) or weight < 0:
                        fail(path, "Enter a weight of 0 or more.")
                    else:
                        clean["BLEND_WEIGHTS"][slot][source] = float(weight)
                merged = {**(reco_settings.BLEND_WEIGHTS or {}).get(slot, {}), **weights}
                if merged and not any(_number(w) and w > 0 for w in merged.values()):
                    fail(f"BLEND_WEIGHTS.{slot}", "At least one source of the slot needs a weight above 0.")

    if "SLOTS" in values:
        slots = values["SLOTS"]
        if not isinstance(slots, Mapping):
            fail("SLOTS", "Give {slot: {option: value}}.")
        else:
            clean["SLOTS"] = {}
            for slot, options in slots.items():
                if slot not in known_slots:
                    fail(f"SLOTS.{slot}", f"Unknown slot {slot!r}.")
                    continue
                if not isinstance(options, Mapping):
                    fail(f"SLOTS.{slot}", "Give {option: value}.")
                    continue
                clean["SLOTS"][slot] = _validate_slot(slot, options, fail)

    if errors:
        raise ValidationError(
            {path: [ValidationError(m) for m in messages] for path, messages in errors.items()}
        )
    return clean


def _validate_slot(slot: str, options: Mapping[str, Any], fail: Any) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for option, value in options.items():
        path = f"SLOTS.{slot}.{option}"
        if option not in SLOT_OPTIONS:
            fail(path, f"Unknown option {option!r}; slot options are {', '.join(SLOT_OPTIONS)}.")
        elif option == "fallback":
            stages = _normal_fallback(value) if isinstance(value, bool | list | tuple) else None
            if stages is None:
                fail(path, "Give the fallback stages in order, as a list.")
                continue
            unknown = [stage for stage in stages if stage not in FALLBACK_STAGES]
            if unknown:
                fail(
                    path, f"Unknown fallback {', '.join(unknown)}; choose from {', '.join(FALLBACK_STAGES)}."
                )
            elif len(set(stages)) != len(stages):
                fail(path, "Name each fallback once.")
            else:
                clean[option] = stages
        elif option == "exclude_purchased":
            if not isinstance(value, bool):
                fail(path, "Enter true or false.")
            else:
                clean[option] = value
        elif option == "max_per_category":
            if value is not None and (not _number(value) or int(value) != value or value < 1):
                fail(path, "Enter a whole number of 1 or more, or leave it empty for no cap.")
            else:
                clean[option] = None if value is None else int(value)
        elif option == "limit":
            top = int(reco_settings.API_MAX_LIMIT)
            if not _number(value) or int(value) != value or not 1 <= value <= top:
                fail(path, f"Enter a whole number from 1 to {top} (SHOP_RECO['API_MAX_LIMIT']).")
            else:
                clean[option] = int(value)
    return clean


# --- reading ---


def sites_enabled() -> bool:
    # Asked on every storefront request; the answer changes only with a new app registry (a test's
    # override of INSTALLED_APPS builds a new app_configs dict), so it is kept per registry dict.
    from shop_reco.services.context import derived_from

    return bool(derived_from(apps.app_configs, "sites", lambda: apps.is_installed("django.contrib.sites")))


def current_site_id() -> int:
    """The site whose configuration applies: ``SITE_ID`` with django.contrib.sites, else 0 (all sites)."""
    if not sites_enabled():
        return 0
    return int(getattr(settings, "SITE_ID", 0) or 0)


def _memo(key: Any, load: Any) -> Any:
    now = time.monotonic()
    with _lock:
        hit = _local.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    value = load()
    with _lock:
        _local[key] = (now + float(reco_settings.CONFIG_CACHE_SECONDS), value)
    return value


def _stored_layers(site_id: int) -> list[dict[str, Any]]:
    def from_cache_or_db() -> list[dict[str, Any]]:
        cache_key = _CACHE_KEY.format(site=site_id)
        layers = cache.get(cache_key)
        if layers is None:
            wanted = [0, site_id] if site_id else [0]
            rows = dict(RecoConfig.objects.filter(site_id__in=wanted).values_list("site_id", "values"))
            layers = [rows.get(site, {}) or {} for site in wanted]
            cache.set(cache_key, layers, timeout=300)
        return layers

    return _memo(("layers", site_id), from_cache_or_db)


def base_config(site_id: int = 0) -> dict[str, Any]:
    """What the stored values of ``site_id`` overlay: the settings, plus the all-sites values for a site."""
    config = settings_config()
    if site_id:
        config = merge(config, _stored_layers(0)[0])
    return config


def current_config(
    variant: Any = None, *, site_id: int | None = None, shared: bool = False
) -> dict[str, Any]:
    """The effective configuration (see the module docstring); ``variant`` applies an experiment's overlay.

    ``variant`` is an :class:`~shop_reco.models.ExperimentVariant`, its primary key, or
    ``"experiment:variant"`` keys; an unknown variant is ignored, so a deleted experiment never breaks a page.
    The merged result is memoised like the stored layers (``CONFIG_CACHE_SECONDS``, cleared by a save);
    ``shared=True`` returns the memoised dict itself, for hot paths that only read it (never change it).
    """
    site = current_site_id() if site_id is None else site_id
    if isinstance(variant, ExperimentVariant):
        # A variant object carries its overlay; an edited overlay is a new key.
        variant_key: Any = ("object", variant.pk, repr(sorted((variant.overlay or {}).items())))
    else:
        variant_key = None if variant is None else str(variant)

    def load() -> dict[str, Any]:
        config = settings_config()
        for layer in _stored_layers(site):
            config = merge(config, layer)
        if variant is not None:
            config = merge(config, variant_overlay(variant))
        return config

    config = _memo(("effective", site, variant_key), load)
    return config if shared else copy.deepcopy(config)


def variant_overlay(variant: Any) -> dict[str, Any]:
    if isinstance(variant, ExperimentVariant):
        return dict(variant.overlay or {})

    def load() -> dict[str, Any]:
        queryset = ExperimentVariant.objects.all()
        if isinstance(variant, str) and ":" in variant:
            experiment_key, _, variant_key = variant.partition(":")
            queryset = queryset.filter(experiment__key=experiment_key, key=variant_key)
        else:
            try:
                queryset = queryset.filter(pk=int(variant))
            except (TypeError, ValueError):
                return {}
        return dict(queryset.values_list("overlay", flat=True).first() or {})

    return copy.deepcopy(_memo(("variant", str(variant)), load))


def invalidate() -> None:
    """Forget cached configurations here and in the shared cache (other processes within a few seconds)."""
    with _lock:
        site_ids = {key[1] for key in _local if key[0] == "layers"}
        _local.clear()
    site_ids |= {0, current_site_id()}
    site_ids |= set(RecoConfig.objects.values_list("site_id", flat=True))
    cache.delete_many([_CACHE_KEY.format(site=site) for site in site_ids])


def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting in ("SHOP_RECO", "CACHES", "SITE_ID", "INSTALLED_APPS"):
        with _lock:
            _local.clear()


setting_changed.connect(_reset)


# --- writing: every change is a revision ---


def get_config(site_id: int = 0) -> RecoConfig:
    with transaction.atomic():
        config, created = RecoConfig.objects.get_or_create(site_id=site_id)
        if created:  # the first revision is "follow the settings", so a rollback can always get back there
            RecoConfigRevision.objects.create(
                config=config, values={}, comment="Created: the settings' values"
            )
    return config


def save_config(
    config: RecoConfig, values: Mapping[str, Any], *, author: Any = None, comment: str = ""
) -> RecoConfigRevision:
    """Validate and store ``values`` (an overlay) on ``config`` and record who changed it and why."""
    clean = validate_overlay(values)
    with transaction.atomic():
        config.values = clean
        config.updated_by = author if getattr(author, "pk", None) else None
        config.save()
        revision = RecoConfigRevision.objects.create(
            config=config, values=clean, author=config.updated_by, comment=comment[:200]
        )
    transaction.on_commit(invalidate)
    invalidate()  # this process at once, even inside an outer transaction (tests, admin atomic views)
    return revision


def rollback(revision: RecoConfigRevision, *, author: Any = None) -> RecoConfigRevision:
    """Restore a revision's values as a new revision, so the rollback itself is in the history too."""
    stamp = revision.created_at.strftime("%Y-%m-%d %H:%M")
    return save_config(
        revision.config,
        revision.values,
        author=author,
        comment=f"Rolled back to revision {revision.pk} of {stamp}",
    )


def previous_revision(revision: RecoConfigRevision) -> RecoConfigRevision | None:
    return (
        RecoConfigRevision.objects.filter(config_id=revision.config_id, created_at__lte=revision.created_at)
        .exclude(pk=revision.pk)
        .exclude(created_at=revision.created_at, pk__gt=revision.pk)
        .order_by("-created_at", "-pk")
        .first()
    )


def apply_to_config(
    overlay: Mapping[str, Any], *, site_id: int = 0, author: Any = None, comment: str = ""
) -> RecoConfigRevision:
    """Merge ``overlay`` into a site's stored values as a new revision (promoting an experiment variant)."""
    config = get_config(site_id)
    return save_config(config, merge(config.values or {}, overlay), author=author, comment=comment)


def flatten(values: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in values.items():
        if isinstance(value, Mapping):
            yield from flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value
