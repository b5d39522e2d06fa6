"""Helpers for integrators' and shop_reco's tests: publish hand-made lists without running the pipeline."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.utils import timezone

from shop_reco.models import RecommendationList, ScoreVersion

# (kind, subject, source) -> item keys best first, or (item keys, scores)
ListsSpec = Mapping[tuple[str, str, str], Sequence[Any] | tuple[Sequence[Any], Sequence[float]]]


def publish_lists(lists: ListsSpec, *, family: str | None = None, retire_others: bool = True) -> ScoreVersion:
    """Create and publish a score version holding ``lists``; the storefront reads it at once.

    Example::

        publish_lists({
            ("product", "1", "similar"): ["2", "3"],
            ("global", "", "popular"): (["4", "5"], [9.0, 3.0]),
        })

    Keys may be products or key strings; without scores, the first item scores highest.
    """
    from shop_reco.adapters import get_adapter
    from shop_reco.conf import reco_settings
    from shop_reco.services.lists import clear_caches

    adapter = get_adapter()
    family = family or reco_settings.SCORE_FAMILY
    if retire_others:
        ScoreVersion.objects.filter(family=family, status=ScoreVersion.Status.PUBLISHED).update(
            status=ScoreVersion.Status.RETIRED
        )
    version = ScoreVersion.objects.create(
        family=family, status=ScoreVersion.Status.PUBLISHED, published_at=timezone.now()
    )
    rows = []
    for (kind, subject, source), value in lists.items():
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], list | tuple):
            keys, scores = value
        else:
            keys, scores = value, None  # type: ignore[assignment]
        key_strings = [_key(adapter, key) for key in keys]
        if scores is None:
            scores = [float(len(key_strings) - rank) for rank in range(len(key_strings))]
        rows.append(
            RecommendationList(
                version=version,
                kind=kind,
                subject=_key(adapter, subject) if kind == "product" else str(subject),
                source=source,
                item_keys=key_strings,
                scores=[float(score) for score in scores],
            )
        )
    RecommendationList.objects.bulk_create(rows)
    clear_caches()
    return version


def _key(adapter: Any, value: Any) -> str:
    from django.db import models

    return adapter.product_key(value) if isinstance(value, models.Model) else str(value)


def reset_recommendation_caches() -> None:
    """Forget the memoised live version, lists and rules of this process (and the Django cache's copies)."""
    from django.core.cache import cache

    from shop_reco.services.lists import clear_caches

    clear_caches()
    cache.clear()


def product_keys(products: Iterable[Any]) -> list[str]:
    from shop_reco.adapters import get_adapter

    adapter = get_adapter()
    return [_key(adapter, product) for product in products]


def visitor_cookie(visitor_id: str) -> tuple[str, str]:
    """(name, value) of the signed visitor cookie for ``visitor_id``, signed the way this Django version does."""
    from django.http import HttpResponse

    from shop_reco.conf import reco_settings
    from shop_reco.tracking.identity import COOKIE_SALT

    name = reco_settings.VISITOR_COOKIE_NAME
    response = HttpResponse()
    response.set_signed_cookie(name, visitor_id, salt=COOKIE_SALT)
    return name, response.cookies[name].value
