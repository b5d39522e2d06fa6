"""System checks: every installation step and setting that can be verified without a database."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.urls import NoReverseMatch, reverse

from shop_reco.conf import BUILTIN_EVENT_TYPES, DEFAULTS, import_setting

MIDDLEWARE_PATH = "shop_reco.middleware.TrackingMiddleware"


def _user_settings() -> Any:
    return getattr(settings, "SHOP_RECO", None)


@register(Tags.compatibility)
def check_settings(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    user = _user_settings()
    if user is None:
        return [
            Error(
                "SHOP_RECO is not set.",
                hint='Add SHOP_RECO = {"PRODUCT_MODEL": "yourapp.Product"} to your settings.',
                id="shop_reco.E001",
            )
        ]
    if not isinstance(user, dict):
        return [
            Error("SHOP_RECO must be a dict.", hint=f"It is a {type(user).__name__}.", id="shop_reco.E003")
        ]

    messages: list[CheckMessage] = []
    for key in sorted(set(user) - set(DEFAULTS)):
        messages.append(
            Warning(
                f"SHOP_RECO has an unknown key {key!r}; it is ignored.",
                hint="Check the spelling against shop_reco.conf.DEFAULTS.",
                id="shop_reco.W001",
            )
        )
    messages += _check_product_model(user.get("PRODUCT_MODEL"))
    messages += _check_dotted_paths(user)
    messages += _check_event_weights(user)
    messages += _check_types(user)
    return messages


def _check_product_model(label: Any) -> list[CheckMessage]:
    from django.apps import apps

    if not isinstance(label, str) or label.count(".") != 1:
        return [
            Error(
                'SHOP_RECO["PRODUCT_MODEL"] must be set to "app_label.ModelName".',
                hint=f"It is {label!r}.",
                id="shop_reco.E001",
            )
        ]
    try:
        apps.get_model(label)
    except LookupError:
        return [
            Error(
                f'SHOP_RECO["PRODUCT_MODEL"] = {label!r} is not an installed model.',
                hint="Name your product model as app_label.ModelName and make sure its app is installed.",
                id="shop_reco.E001",
            )
        ]
    return []


def _check_dotted_paths(user: dict[str, Any]) -> list[CheckMessage]:
    from shop_reco.adapters import BaseShopAdapter

    messages: list[CheckMessage] = []
    adapter_path = user.get("ADAPTER", DEFAULTS["ADAPTER"])
    try:
        adapter = import_setting("ADAPTER", adapter_path)
    except (ImproperlyConfigured, TypeError, ValueError) as exc:
        messages.append(
            Error(str(exc), hint="Give the dotted path of an adapter class.", id="shop_reco.E002")
        )
    else:
        if not (isinstance(adapter, type) and issubclass(adapter, BaseShopAdapter)):
            messages.append(
                Error(
                    f'SHOP_RECO["ADAPTER"] = {adapter_path!r} is not a BaseShopAdapter subclass.',
                    hint="Subclass shop_reco.adapters.DefaultShopAdapter.",
                    id="shop_reco.E002",
                )
            )
    consent = user.get("CONSENT_CHECK")
    if consent is not None:
        try:
            consent_callable = import_setting("CONSENT_CHECK", consent)
        except (ImproperlyConfigured, TypeError, ValueError) as exc:
            messages.append(Error(str(exc), hint="Give the dotted path of a callable.", id="shop_reco.E008"))
        else:
            if not callable(consent_callable):
                messages.append(
                    Error(
                        f'SHOP_RECO["CONSENT_CHECK"] = {consent!r} is not callable.',
                        hint="It must be a function (request) -> bool.",
                        id="shop_reco.E008",
                    )
                )
    return messages


def _check_event_weights(user: dict[str, Any]) -> list[CheckMessage]:
    custom = user.get("CUSTOM_EVENT_TYPES", ())
    messages: list[CheckMessage] = []
    if not isinstance(custom, list | tuple) or not all(isinstance(name, str) and name for name in custom):
        return [
            Error(
                'SHOP_RECO["CUSTOM_EVENT_TYPES"] must be a list of non-empty strings.',
                hint=f"It is {custom!r}.",
                id="shop_reco.E004",
            )
        ]
    known = set(BUILTIN_EVENT_TYPES) | set(custom)
    weights = user.get("EVENT_WEIGHTS", {})
    if not isinstance(weights, dict):
        return [Error('SHOP_RECO["EVENT_WEIGHTS"] must be a dict.', id="shop_reco.E004")]
    for name, weight in weights.items():
        if name not in known:
            messages.append(
                Error(
                    f'SHOP_RECO["EVENT_WEIGHTS"] names an unknown event type {name!r}.',
                    hint="Declare it in CUSTOM_EVENT_TYPES or fix the spelling.",
                    id="shop_reco.E004",
                )
            )
        elif isinstance(weight, bool) or not isinstance(weight, int | float):
            messages.append(
                Error(
                    f'SHOP_RECO["EVENT_WEIGHTS"][{name!r}] must be a number.',
                    hint=f"It is {weight!r}.",
                    id="shop_reco.E004",
                )
            )
    return messages


_POSITIVE_NUMBERS = (
    "DECAY_HALF_LIFE_DAYS",
    "VISITOR_COOKIE_AGE_DAYS",
    "EVENT_BUFFER_FLUSH_SIZE",
    "EVENT_FLUSH_WORKERS",
    "EVENT_SPOOL_SHIP_SECONDS",
    "BEACON_MAX_EVENTS",
    "BEACON_MAX_BYTES",
    "EVENT_CONTEXT_MAX_BYTES",
    "LIST_LENGTH",
    "KEEP_VERSIONS",
)
_STRING_TUPLES = ("PRODUCT_VIEW_URL_NAMES", "BOT_USER_AGENT_PATTERNS")


def _check_types(user: dict[str, Any]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for name in _POSITIVE_NUMBERS:
        value = user.get(name, DEFAULTS[name])
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            messages.append(
                Error(
                    f'SHOP_RECO["{name}"] must be a positive number.',
                    hint=f"It is {value!r}.",
                    id="shop_reco.E009",
                )
            )
    retention = user.get("RETENTION_DAYS", DEFAULTS["RETENTION_DAYS"])
    if retention is not None and (
        isinstance(retention, bool) or not isinstance(retention, int) or retention <= 0
    ):
        messages.append(
            Error(
                'SHOP_RECO["RETENTION_DAYS"] must be a positive whole number of days or None.',
                hint=f"It is {retention!r}.",
                id="shop_reco.E009",
            )
        )
    for name in _STRING_TUPLES:
        value = user.get(name, DEFAULTS[name])
        if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
            messages.append(
                Error(
                    f'SHOP_RECO["{name}"] must be a list of strings.',
                    hint=f"It is {value!r}.",
                    id="shop_reco.E009",
                )
            )
    buffer_url = user.get("EVENT_BUFFER_URL")
    if buffer_url is not None and not (
        isinstance(buffer_url, str) and buffer_url.startswith(("redis://", "rediss://", "unix://"))
    ):
        messages.append(
            Error(
                'SHOP_RECO["EVENT_BUFFER_URL"] must be a redis:// URL or None.',
                hint=f"It is {buffer_url!r}.",
                id="shop_reco.E009",
            )
        )
    return messages


@register(Tags.compatibility)
def check_installation(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    middleware = list(getattr(settings, "MIDDLEWARE", []))
    if MIDDLEWARE_PATH not in middleware:
        messages.append(
            Error(
                f"{MIDDLEWARE_PATH} is not in MIDDLEWARE.",
                hint="Add it after SessionMiddleware and AuthenticationMiddleware.",
                id="shop_reco.E005",
            )
        )
    else:
        position = middleware.index(MIDDLEWARE_PATH)
        for needed in (
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ):
            if needed in middleware and middleware.index(needed) > position:
                messages.append(
                    Error(
                        f"{MIDDLEWARE_PATH} must come after {needed}.",
                        hint="It reads request.user to tell customers from anonymous visitors.",
                        id="shop_reco.E006",
                    )
                )
    installed = set(getattr(settings, "INSTALLED_APPS", []))
    if "rest_framework" not in installed:
        messages.append(
            Error(
                "'rest_framework' is not in INSTALLED_APPS.",
                hint="shop_reco's beacon and recommendation endpoints are Django REST framework views.",
                id="shop_reco.E007",
            )
        )
    return messages


@register(Tags.urls)
def check_urls(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    try:
        reverse("shop_reco:beacon")
    except NoReverseMatch:
        return [
            Warning(
                "shop_reco's URLs are not included.",
                hint='Add path("reco/", include("shop_reco.urls")) to your ROOT_URLCONF.',
                id="shop_reco.W002",
            )
        ]
    except Exception:  # a broken URLconf is reported by Django's own checks
        return []
    return []


@register(Tags.database)
def check_migrations(
    app_configs: Sequence[Any] | None = None, databases: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """Runs with ``manage.py check --database default``: shop_reco's tables must exist."""
    from django.db import DEFAULT_DB_ALIAS, connections
    from django.db.migrations.executor import MigrationExecutor

    if _called_by_migrate():
        return []  # migrate checks before it applies anything; the warning would only confuse
    messages: list[CheckMessage] = []
    for alias in databases or ():
        if alias != DEFAULT_DB_ALIAS:
            continue
        executor = MigrationExecutor(connections[alias])
        targets = [key for key in executor.loader.graph.leaf_nodes() if key[0] == "shop_reco"]
        if executor.migration_plan(targets):
            messages.append(
                Warning(
                    "shop_reco's migrations are not applied.",
                    hint="Run python manage.py migrate.",
                    id="shop_reco.W003",
                )
            )
    return messages


def _called_by_migrate() -> bool:
    import inspect

    # The checks run from BaseCommand.execute, so look for the command object, not its module's frames.
    return any(
        type(frame.frame.f_locals.get("self")).__module__.endswith("management.commands.migrate")
        for frame in inspect.stack(context=0)
    )


@register(Tags.compatibility)
def check_beat_schedule(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """Scores only stay fresh if Celery beat runs shop_reco's periodic tasks."""
    schedule = dict(getattr(settings, "CELERY_BEAT_SCHEDULE", None) or {})
    try:
        from celery import current_app

        schedule.update(current_app.conf.beat_schedule or {})
    except Exception:  # no Celery app configured: the settings dict is all there is
        pass
    tasks = {str(entry.get("task", "")) for entry in schedule.values() if isinstance(entry, dict)}
    if not any(task.startswith("shop_reco.") for task in tasks):
        return [
            Warning(
                "No shop_reco task is in the Celery beat schedule: scores will not be recomputed.",
                hint="CELERY_BEAT_SCHEDULE = {**shop_reco.schedules.default_beat_schedule()} in your settings.",
                id="shop_reco.W004",
            )
        ]
    return []


# --- Storefront settings (slots, API, attribution) ---

_STOREFRONT_NUMBERS = (
    "LIST_CACHE_SECONDS",
    "API_MAX_LIMIT",
    "ATTRIBUTION_WINDOW_DAYS",
    "LIVE_POPULAR_DAYS",
    "HISTORY_LENGTH",
)


@register(Tags.compatibility)
def check_storefront(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """Slot options, the product serializer path and the storefront's numbers."""
    user = _user_settings()
    if not isinstance(user, dict):
        return []  # reported by check_settings
    messages: list[CheckMessage] = []
    zero_allowed = ("VERSION_CACHE_SECONDS", "PRODUCT_CACHE_SECONDS", "HISTORY_CACHE_SECONDS")
    for name in (*_STOREFRONT_NUMBERS, *zero_allowed):
        value = user.get(name, DEFAULTS[name])
        is_number = not isinstance(value, bool) and isinstance(value, int | float)
        # Zero seconds of version, product or history caching is allowed: every request then asks the database.
        if not is_number or value < 0 or (value == 0 and name not in zero_allowed):
            messages.append(
                Error(
                    f'SHOP_RECO["{name}"] must be a positive number.',
                    hint=f"It is {value!r}.",
                    id="shop_reco.E022",
                )
            )
    messages += _check_slots(user.get("SLOTS", {}))
    path = user.get("PRODUCT_SERIALIZER", DEFAULTS["PRODUCT_SERIALIZER"])
    try:
        serializer = import_setting("PRODUCT_SERIALIZER", path) if isinstance(path, str) else path
    except (ImproperlyConfigured, TypeError, ValueError) as exc:
        hint = "Give the dotted path of a DRF serializer class."
        messages.append(Error(str(exc), hint=hint, id="shop_reco.E021"))
    else:
        from rest_framework.serializers import BaseSerializer

        if not (isinstance(serializer, type) and issubclass(serializer, BaseSerializer)):
            messages.append(
                Error(
                    f'SHOP_RECO["PRODUCT_SERIALIZER"] = {path!r} is not a DRF serializer class.',
                    hint="Subclass rest_framework.serializers.Serializer; it receives product instances.",
                    id="shop_reco.E021",
                )
            )
    return messages


def _check_slots(slots: Any) -> list[CheckMessage]:
    from shop_reco.services.recommendations import OPTION_NAMES, SLOTS

    if not isinstance(slots, dict) or not all(isinstance(value, dict) for value in slots.values()):
        return [
            Error(
                'SHOP_RECO["SLOTS"] must map slot names to dicts of options.',
                hint=f'e.g. {{"similar": {{"limit": 6}}}}; it is {slots!r}.',
                id="shop_reco.E020",
            )
        ]
    messages: list[CheckMessage] = []
    for slot, options in slots.items():
        if slot not in SLOTS:
            messages.append(
                Warning(
                    f'SHOP_RECO["SLOTS"] names an unknown slot {slot!r}; it is ignored.',
                    hint=f"Slots are {', '.join(SLOTS)}.",
                    id="shop_reco.W020",
                )
            )
        for option, value in options.items():
            problem = ""
            if option not in OPTION_NAMES:
                problem = f"unknown option {option!r} (options: {', '.join(sorted(OPTION_NAMES))})"
            elif option == "limit" and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                problem = f"limit must be a positive whole number, not {value!r}"
            elif (
                option == "max_per_category"
                and value is not None
                and (isinstance(value, bool) or not isinstance(value, int) or value <= 0)
            ):
                problem = f"max_per_category must be a positive whole number or None, not {value!r}"
            elif option in ("exclude_purchased", "fallback", "top_up") and not isinstance(value, bool):
                problem = f"{option} must be True or False, not {value!r}"
            if problem:
                messages.append(Error(f'SHOP_RECO["SLOTS"][{slot!r}]: {problem}.', id="shop_reco.E020"))
    return messages


@register(Tags.compatibility, Tags.urls)
def check_tracking(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """Tracking: the buffer's client library, the beacon throttle rate, the product view URL names."""
    user = _user_settings()
    if not isinstance(user, dict):
        return []  # reported by check_settings
    messages: list[CheckMessage] = []
    if user.get("EVENT_BUFFER_URL"):
        try:
            import redis  # noqa: F401
        except ImportError:
            messages.append(
                Error(
                    'SHOP_RECO["EVENT_BUFFER_URL"] is set but the redis package is not installed.',
                    hint='pip install "shop-reco[redis]", or set EVENT_BUFFER_URL to None to write directly.',
                    id="shop_reco.E030",
                )
            )
    messages += _check_spool(user)
    rate = user.get("BEACON_THROTTLE_RATE", DEFAULTS["BEACON_THROTTLE_RATE"])
    if rate is not None and not _valid_rate(rate):
        messages.append(
            Error(
                'SHOP_RECO["BEACON_THROTTLE_RATE"] must look like "120/min" (or be None for no limit).',
                hint=f"It is {rate!r}.",
                id="shop_reco.E031",
            )
        )
    kwarg = user.get("PRODUCT_VIEW_URL_KWARG", DEFAULTS["PRODUCT_VIEW_URL_KWARG"])
    names = user.get("PRODUCT_VIEW_URL_NAMES", DEFAULTS["PRODUCT_VIEW_URL_NAMES"])
    for name in names if isinstance(names, list | tuple) else ():
        problem = _url_name_problem(name, kwarg)
        if problem:
            messages.append(
                Warning(
                    f'SHOP_RECO["PRODUCT_VIEW_URL_NAMES"] names {name!r}, which {problem}.',
                    hint="Give the URL name (with its namespace) of your product page; no views are recorded "
                    "for it otherwise.",
                    id="shop_reco.W030",
                )
            )
    return messages


def _check_spool(user: dict[str, Any]) -> list[CheckMessage]:
    directory = user.get("EVENT_SPOOL_DIR")
    if directory is None:
        return []
    if not isinstance(directory, str | os.PathLike) or not str(directory):
        return [
            Error(
                'SHOP_RECO["EVENT_SPOOL_DIR"] must be a directory path or None.',
                hint=f"It is {directory!r}.",
                id="shop_reco.E032",
            )
        ]
    messages: list[CheckMessage] = []
    from shop_reco.tracking import spool

    if spool.fcntl is None:
        messages.append(
            Warning(
                'SHOP_RECO["EVENT_SPOOL_DIR"] is set, but this platform has no flock(): nothing is spooled.',
                hint="Events take the Redis append instead; set EVENT_SPOOL_DIR to None to silence this.",
                id="shop_reco.W031",
            )
        )
    if not user.get("EVENT_BUFFER_URL"):
        messages.append(
            Warning(
                'SHOP_RECO["EVENT_SPOOL_DIR"] is set without EVENT_BUFFER_URL, so nothing is spooled.',
                hint="The spool ships to the Redis buffer: set EVENT_BUFFER_URL, or EVENT_SPOOL_DIR to None.",
                id="shop_reco.W031",
            )
        )
    # The directory is made on first use: its nearest existing ancestor must let this user write.
    existing = Path(directory).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        messages.append(
            Error(
                f'SHOP_RECO["EVENT_SPOOL_DIR"] ({directory}) cannot be written by this process.',
                hint=f"{existing} is not a writable directory.",
                id="shop_reco.E032",
            )
        )
    return messages


def _valid_rate(rate: Any) -> bool:
    if not isinstance(rate, str) or rate.count("/") != 1:
        return False
    count, period = rate.split("/")
    return count.isdigit() and period[:1] in ("s", "m", "h", "d")


def _url_name_problem(name: Any, kwarg: Any) -> str:
    """Why this URL name cannot record product views, or "" when it can."""
    from django.urls import get_resolver

    if not isinstance(name, str):
        return "is not a string"
    *namespaces, url_name = name.split(":")
    resolver = get_resolver()
    try:
        for namespace in namespaces:
            resolver = resolver.namespace_dict[namespace][1]
        possibilities = resolver.reverse_dict.getlist(url_name)
    except Exception:  # a broken URLconf is reported by Django's own checks
        return "is not a URL name"
    if not possibilities:
        return "is not a URL name"
    if all(kwarg not in params for possibility in possibilities for _, params in possibility[0]):
        return f"has no {kwarg!r} argument (PRODUCT_VIEW_URL_KWARG)"
    return ""
