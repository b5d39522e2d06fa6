"""Candidate sources for the fallback chain: stored lists, category and global popularity, live, anything."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shop_reco import sources
from shop_reco.services.context import RecoContext
from shop_reco.services.lists import CATALOGUE, LIVE_POPULAR, ListSpec, live_popular, load_lists

_CATALOGUE_ROWS = 60  # products read by the last-resort stage (only a shop with no events gets there)


@dataclass(frozen=True)
class Candidate:
    key: str
    score: float
    source: str
    reason: str  # a reason code of shop_reco.services.recommendations._REASONS
    anchor: str = ""  # the product the reason refers to ("Because you viewed <anchor>")
    extra: dict[str, Any] = field(default_factory=dict)


def list_stage(context: RecoContext, specs: Iterable[tuple[ListSpec, float, str, str]]) -> list[Candidate]:
    """Blend stored lists: each list's scores divided by its best, times the list's weight, summed per item.

    The item keeps the source, reason and anchor of the list that contributed most to it.
    """
    # A list weighted 0 (tuned off in BLEND_WEIGHTS) is not even read.
    specs = [spec for spec in specs if (spec[0].subject or spec[0].kind == "global") and spec[1] > 0]
    if not specs:
        return []
    lists = load_lists(context.version_id, [spec for spec, *_ in specs])
    if (
        context.lists_read is not None
    ):  # a slot being memoised notes what it read, to check it is still current
        context.lists_read.update(lists)
    totals: dict[str, float] = {}
    best: dict[str, tuple[float, ListSpec, str, str]] = {}
    for spec, weight, reason, anchor in specs:
        stored = lists.get(spec)
        if not stored:
            continue
        top = max(stored.scores) if stored.scores else 0.0
        for rank, (key, score) in enumerate(zip(stored.keys, stored.scores, strict=True)):
            # Lists with non-positive scores still rank by position.
            part = weight * (score / top if top > 0 else 1.0 / (1 + rank))
            totals[key] = totals.get(key, 0.0) + part
            if key not in best or part > best[key][0]:
                best[key] = (part, spec, reason, anchor)
    return [
        Candidate(key, total, best[key][1].source, best[key][2], best[key][3], _category_extra(best[key][1]))
        for key, total in totals.items()
    ]


def _category_extra(spec: ListSpec) -> dict[str, Any]:
    return {"category": spec.subject} if spec.kind == "category" else {}


def category_stage(
    context: RecoContext, category: str, weights: Mapping[str, float] | None = None
) -> list[Candidate]:
    """Trending, then popular, in one category (``weights``: the slot's BLEND_WEIGHTS)."""
    if not category:
        return []
    weights = weights or {}
    return list_stage(
        context,
        [
            (
                ListSpec("category", category, sources.TRENDING),
                weights.get(sources.TRENDING, 1.0),
                "trending_in",
                "",
            ),
            (
                ListSpec("category", category, sources.POPULAR),
                weights.get(sources.POPULAR, 0.8),
                "popular_in",
                "",
            ),
        ],
    )


def global_stage(context: RecoContext, weights: Mapping[str, float] | None = None) -> list[Candidate]:
    """Trending, then popular, over the whole shop (``weights``: the slot's BLEND_WEIGHTS)."""
    weights = weights or {}
    return list_stage(
        context,
        [
            (ListSpec("global", "", sources.TRENDING), weights.get(sources.TRENDING, 1.0), "trending", ""),
            (ListSpec("global", "", sources.POPULAR), weights.get(sources.POPULAR, 0.8), "popular", ""),
        ],
    )


def live_popular_stage(context: RecoContext) -> list[Candidate]:
    """Popular from recent events, only while no score version was ever published."""
    if context.version_id is not None:
        return []
    stored = live_popular()
    return [
        Candidate(key, score, LIVE_POPULAR, "popular")
        for key, score in zip(stored.keys, stored.scores, strict=True)
    ]


def _excluded_pks(context: RecoContext) -> list[Any]:
    pk_field = context.adapter.product_model()._meta.pk
    assert pk_field is not None
    clean = []
    for key in context.shown | context.cart_keys:
        try:
            clean.append(pk_field.to_python(key))
        except Exception:  # not a key of this catalogue
            continue
    return clean


def catalogue_stage(context: RecoContext) -> list[Candidate]:
    """Any available products: the last resort that keeps a slot filled while the catalogue has products."""
    queryset = context.adapter.available_products().exclude(pk__in=_excluded_pks(context))
    found = []
    for rank, product in enumerate(queryset[:_CATALOGUE_ROWS]):
        key = context.remember(product, available=True)
        found.append(Candidate(key, float(_CATALOGUE_ROWS - rank), CATALOGUE, "catalogue"))
    return found


def category_catalogue_stage(context: RecoContext, category: str) -> list[Candidate]:
    """Any available products of one category."""
    adapter = context.adapter
    members = adapter.category_keys(category).values("pk")
    queryset = adapter.available_products().filter(pk__in=members).exclude(pk__in=_excluded_pks(context))
    found = []
    for rank, product in enumerate(queryset[:_CATALOGUE_ROWS]):
        key = context.remember(product, available=True)
        found.append(
            Candidate(key, float(_CATALOGUE_ROWS - rank), CATALOGUE, "more_in", extra={"category": category})
        )
    return found
