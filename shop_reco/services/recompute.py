"""The recompute pipeline's steps: events in, engine in the middle, ranked lists of a new score version out.

The Celery tasks in ``shop_reco.pipeline_tasks`` and the ``reco_recompute`` command call these; each step
reads what earlier steps stored as artifacts of the version, so shards can run on any worker machine.

    plan_load        event id range, newest time, the catalogue's item order (cheap: index look-ups)
    load_shard       per range of event ids: partial interaction matrix (own shopper map), partial
                     popularity/trending counts, basket lines          } one chord,
    content          catalogue features, categories, availability      } in parallel
    combine          the partial results -> interaction and basket matrices, popular/trending lists
    item_shard       per block of products: collaborative and content neighbours, bought-together, "similar"
    assemble         the item-neighbour blocks -> one sparse neighbour matrix
    shopper_shard    per block of active shoppers: "for you" and "buy it again"
    finalize         offline metrics, publish, prune

``prepare`` runs the first four in this process (the command, eager mode, tests). Every shard computes
with one thread: parallelism comes from worker processes, so N workers finish about N times sooner.
Memory stays bounded: float32 values, int32 indices, sparse products cut to their top entries block by
block, never a dense shoppers x products array.
"""

from __future__ import annotations

import functools
import itertools
import json
import time
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

import numpy as np
import scipy.sparse as sp
from django.db import connection, transaction
from django.utils import timezone

from shop_reco import sources
from shop_reco.adapters import BaseShopAdapter, get_adapter
from shop_reco.conf import reco_settings
from shop_reco.engine.base import top_n
from shop_reco.engine.content import build_item_features
from shop_reco.engine.item_knn import item_similarity_spec
from shop_reco.engine.popularity import TrendingRecommender
from shop_reco.engine.similarity import block_bounds, similarity_block, topk_per_row
from shop_reco.models import RecommendationList, ScoreVersion
from shop_reco.services import event_data, score_store, stage_timing, versions

Progress = Callable[[int, int], None]
P = ParamSpec("P")
R = TypeVar("R")

DAY = 86_400.0
# Multiply-adds per similarity sub-block: bounds one shard's working memory (about 12 bytes per unit).
BLOCK_FLOPS = 8_000_000
# Shoppers scored per sparse product in a shopper shard.
SHOPPER_CHUNK = 2_048
# A repeat of the same (shopper, product, event type) within this many seconds is a double click.
DEDUPE_SECONDS = 2.0


class VersionGone(Exception):
    """The version stopped building (failed or replaced) while a step was queued."""


def parameters() -> dict[str, Any]:
    """The tunable recompute parameters, recorded on each version."""
    config = _config()
    return {
        "event_weights": dict(config["EVENT_WEIGHTS"]),
        "half_life_days": float(config["DECAY_HALF_LIFE_DAYS"]),
        "neighbours": int(config.get("NEIGHBOURS", 50)),
        "list_length": int(reco_settings.LIST_LENGTH),
        "min_support_count": 2,
        "blend_similar": dict(config.get("BLEND_WEIGHTS", {}).get("similar", {"cf": 1.0, "content": 0.3})),
        "blend_for_you": dict(config.get("BLEND_WEIGHTS", {}).get("for_you", {"cf": 1.0, "buy_again": 0.5})),
        "active_days": int(reco_settings.ACTIVE_SHOPPER_DAYS),
    }


def _config() -> dict[str, Any]:
    try:
        from shop_reco.services.tuning import current_config
    except ImportError:  # pragma: no cover - tuning is optional for the pipeline
        return {
            "EVENT_WEIGHTS": reco_settings.EVENT_WEIGHTS,
            "DECAY_HALF_LIFE_DAYS": reco_settings.DECAY_HALF_LIFE_DAYS,
        }
    return current_config()


def _building(version_id: int) -> ScoreVersion:
    version = ScoreVersion.objects.filter(pk=version_id, status=ScoreVersion.Status.BUILDING).first()
    if version is None:
        raise VersionGone(version_id)
    return version


def _record(version_id: int, field: str, values: dict[str, Any]) -> None:
    """Merge ``values`` into one JSON field of the version (atomically: shards record concurrently)."""
    stage_timing.record_json(version_id, field, values)


def _timed(step: str, shard_arg: int | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Record the step's wall, CPU and database CPU time on the version (``step:<first id>`` for shards)."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            version_id = int(args[0])  # type: ignore[call-overload]
            name = step if shard_arg is None else f"{step}:{args[shard_arg]}"
            with stage_timing.stage(version_id, name):
                return function(*args, **kwargs)

        return timed

    return decorate


def _elapsed(version_id: int) -> float:
    created = ScoreVersion.objects.values_list("created_at", flat=True).get(pk=version_id)
    return round((timezone.now() - created).total_seconds(), 3)


# -- plan, load shards, content, combine ---------------------------------------------------------------


@_timed("plan")
def plan_load(version_id: int, *, shards: int | None = None) -> dict[str, Any]:
    """Fix what the load shards read (event ids, reference time, item order); returns the load plan."""
    _building(version_id)
    adapter = get_adapter()
    bounds = event_data.event_bounds()
    keys = _catalogue_keys(adapter)
    versions.save_arrays(
        version_id,
        "catalogue",
        {"items": np.asarray(keys or [""], dtype=str), "hashes": event_data.key_hashes(keys)},
    )
    n_shards = max(1, shards or int(reco_settings.RECOMPUTE_SHARDS))
    edges = np.linspace(bounds.first_id, bounds.stop_id, n_shards + 1).astype(np.int64)
    ranges = [[int(a), int(b)] for a, b in itertools.pairwise(edges) if b > a] or [[0, 0]]
    # Age is measured from the newest event, not the wall clock, so a shop importing old orders (or a quiet
    # week) still gets weights; for a live shop the two are the same.
    plan = {
        "event_ranges": ranges,
        "now": bounds.newest if bounds.newest is not None else time.time(),
        "shards": n_shards,
        "n_items": len(keys),
    }
    versions.report_progress(version_id, done=1, total=_steps_total(len(ranges), n_shards, n_shards))
    return plan


def _steps_total(n_load: int, n_item: int, n_shopper: int) -> int:
    # plan + loads + content + combine + item shards + assemble + shopper shards + finalize
    return 1 + n_load + 1 + 1 + n_item + 1 + n_shopper + 1


def _catalogue_keys(adapter: BaseShopAdapter) -> list[str]:
    products = adapter.all_products()
    if type(adapter).product_key is BaseShopAdapter.product_key:
        # The default key is the primary key: one narrow query instead of model instances.
        return [str(pk) for pk in products.order_by("pk").values_list("pk", flat=True).iterator(20_000)]
    return sorted({adapter.product_key(p) for p in products.iterator(chunk_size=5_000)})


@_timed("load", shard_arg=2)
def load_shard(version_id: int, plan: dict[str, Any], start_id: int, stop_id: int) -> int:
    """Partial matrices of the events with ids in [start_id, stop_id); returns how many events were read."""
    version = _building(version_id)
    params = version.parameters
    catalogue = versions.load_arrays(version_id, "catalogue")
    codes = event_data.load_event_codes(start_id, stop_id)
    n_items = int(plan["n_items"])
    now = float(plan["now"])

    # Product hashes -> catalogue columns; events of products not in the catalogue are dropped.
    order = np.argsort(catalogue["hashes"], kind="stable")
    sorted_hashes = catalogue["hashes"][order]
    found = np.searchsorted(sorted_hashes, codes.items).clip(max=max(sorted_hashes.size - 1, 0))
    known = sorted_hashes.size > 0
    items = np.where(known & (sorted_hashes[found] == codes.items) if known else False, order[found], -1)
    # (A millisecond of slack: the plan's newest time and COPY's timestamps round differently.)
    valid = (items >= 0) & (codes.types >= 0) & (codes.timestamps <= now + 1e-3)
    shoppers_all, items_all = codes.shoppers[valid], items[valid].astype(np.int32)
    types_all, times_all, baskets_all = codes.types[valid], codes.timestamps[valid], codes.baskets[valid]

    shopper_keys, rows_all = np.unique(shoppers_all, return_inverse=True)
    rows_all = rows_all.astype(np.int32)
    last_seen = np.full(shopper_keys.size, -np.inf)
    np.maximum.at(last_seen, rows_all, times_all)

    names = event_data.PREFERENCE_TYPES
    weights = params["event_weights"]
    type_weight = np.array([float(weights.get(name, 0.0)) for name in names], dtype=np.float64)
    half_life = float(params["half_life_days"])
    X = _interactions(
        rows_all, items_all, types_all, times_all, type_weight, half_life, now, shopper_keys.size, n_items
    )

    # Popularity and trending: every event counts (no de-duplication), negative weights count as 0.
    event_weight = np.maximum(type_weight, 0.0)[types_all]
    trending = TrendingRecommender()
    counts = {
        "popular": _decayed(items_all, times_all, event_weight, half_life, now, n_items),
        "short": _decayed(items_all, times_all, event_weight, trending.short_half_life_days, now, n_items),
        "long": _decayed(items_all, times_all, event_weight, trending.long_half_life_days, now, n_items),
    }
    purchase = (types_all == names.index("purchase")) & (baskets_all != 0)
    visitor_codes = np.fromiter(codes.visitors.keys(), dtype=np.int64, count=len(codes.visitors))
    versions.save_arrays(
        version_id,
        f"load_{start_id}",
        {
            **_csr_arrays("X", X),
            "shopper_keys": shopper_keys,
            "last_seen": last_seen,
            **{f"count_{name}": values for name, values in counts.items()},
            "basket_hashes": baskets_all[purchase],
            "basket_items": items_all[purchase],
            "visitor_codes": visitor_codes,
            "visitor_ids": np.asarray(list(codes.visitors.values()) or [""], dtype=str)[: visitor_codes.size],
            "events": np.array([int(valid.sum()), len(codes)], dtype=np.int64),
        },
    )
    versions.report_progress(version_id, add=1)
    return len(codes)


def _interactions(
    rows: np.ndarray,
    items: np.ndarray,
    types: np.ndarray,
    times: np.ndarray,
    type_weight: np.ndarray,
    half_life_days: float,
    now: float,
    n_rows: int,
    n_items: int,
) -> sp.csr_matrix:
    """Shopper x product strengths, as the engine's ``build_interactions`` computes them (with de-duplication
    of double clicks and time decay), from integer columns: no per-event Python objects."""
    weight = type_weight[types]
    keep = np.flatnonzero(weight != 0)
    order = keep[np.lexsort((times[keep], types[keep], items[keep], rows[keep]))]
    r, i, k, t = rows[order], items[order], types[order], times[order]
    if order.size > 1:
        same = (r[1:] == r[:-1]) & (i[1:] == i[:-1]) & (k[1:] == k[:-1])
        repeat = np.r_[False, same & (np.diff(t) < DEDUPE_SECONDS)]
        order, r, i, t = order[~repeat], r[~repeat], i[~repeat], t[~repeat]
    value = weight[order]
    if half_life_days:
        value = value * 0.5 ** ((now - t) / (half_life_days * DAY))
    X = sp.csr_matrix((value, (r, i)), shape=(n_rows, n_items), dtype=np.float64)
    X.sum_duplicates()
    X.eliminate_zeros()
    return sp.csr_matrix(X, dtype=np.float32)


def _decayed(
    items: np.ndarray, times: np.ndarray, weights: np.ndarray, half_life_days: float, now: float, n_items: int
) -> np.ndarray:
    decay = 0.5 ** ((now - times) / (half_life_days * DAY)) if half_life_days else 1.0
    return np.bincount(items, weights=weights * decay, minlength=n_items).astype(np.float64)


@_timed("content")
def content(version_id: int) -> int:
    """Catalogue features, categories and availability in the plan's item order; returns the product count."""
    _building(version_id)
    adapter = get_adapter()
    labels = versions.load_arrays(version_id, "catalogue")["items"]
    n_items = len(labels) if labels.size and labels[0] != "" else 0
    column = {str(key): n for n, key in enumerate(labels[:n_items])}
    rows = [row for row in adapter.catalogue_rows() if row.key in column]
    features, _ = build_item_features(
        [(r.key, r.text, r.attributes, r.category or None, r.price) for r in rows]
    )
    # Rows in the plan's item order; a product created since the plan is left for index_new_product.
    positions = np.array([column[row.key] for row in rows], dtype=np.int64)
    F = sp.csr_matrix(features, dtype=np.float32)
    F = (
        sp.csr_matrix(
            (np.ones(positions.size, np.float32), (positions, np.arange(positions.size))),
            shape=(n_items, len(rows)),
        )
        @ F
    )
    categories = np.full(n_items, "", dtype=object)
    categories[positions] = [row.category or "" for row in rows]
    available_keys = {adapter.product_key(p) for p in adapter.available_products().iterator(chunk_size=5000)}
    available = np.array([str(key) in available_keys for key in labels[:n_items]], dtype=bool)
    versions.save_arrays(
        version_id,
        "content",
        {
            **_csr_arrays("F", sp.csr_matrix(F, dtype=np.float32)),
            "categories": np.asarray(categories.tolist() or [""], dtype=str),
            "available": available,
        },
    )
    _record(version_id, "input_counts", {"products": len(rows)})
    versions.report_progress(version_id, add=1)
    return len(rows)


@_timed("combine")
def combine(version_id: int, plan: dict[str, Any]) -> dict[str, Any]:
    """Merge the load shards into the shared matrices, write popular/trending; returns the shard plan."""
    started = time.perf_counter()
    version = _building(version_id)
    params = version.parameters
    ranges = plan["event_ranges"]
    _require_shards(version_id, "load_", ranges)
    _require_shards(version_id, "content", [[0, 1]], exact=True)
    catalogue = versions.load_arrays(version_id, "catalogue")
    content_arrays = versions.load_arrays(version_id, "content")
    n_items = int(plan["n_items"])
    parts = [versions.load_arrays(version_id, f"load_{start}") for start, stop in ranges if stop > start]

    keys = np.unique(np.concatenate([p["shopper_keys"] for p in parts] or [np.zeros(0, np.int64)]))
    rows, cols, values = [], [], []
    last_seen = np.full(keys.size, -np.inf)
    for part in parts:
        X = _csr(part, "X")
        remap = np.searchsorted(keys, part["shopper_keys"]).astype(np.int32)
        rows.append(remap[np.repeat(np.arange(X.shape[0], dtype=np.int32), np.diff(X.indptr))])
        cols.append(X.indices)
        values.append(X.data)
        np.maximum.at(last_seen, remap, part["last_seen"])
    X = sp.csr_matrix(
        (
            np.concatenate(values or [np.zeros(0, np.float32)]),
            (
                np.concatenate(rows or [np.zeros(0, np.int32)]),
                np.concatenate(cols or [np.zeros(0, np.int32)]),
            ),
        ),
        shape=(keys.size, n_items),
        dtype=np.float32,
    )
    X.sum_duplicates()
    X.eliminate_zeros()
    del rows, cols, values

    basket_hashes = np.concatenate([p["basket_hashes"] for p in parts] or [np.zeros(0, np.int64)])
    basket_items = np.concatenate([p["basket_items"] for p in parts] or [np.zeros(0, np.int32)])
    _, basket_rows = np.unique(basket_hashes, return_inverse=True)
    n_baskets = int(basket_rows.max()) + 1 if basket_rows.size else 0
    B = sp.csr_matrix(
        (np.ones(basket_rows.size, np.float32), (basket_rows, basket_items)), shape=(n_baskets, n_items)
    )
    B.sum_duplicates()
    B.data[:] = 1.0

    visitor_codes = np.concatenate([p["visitor_codes"] for p in parts] or [np.zeros(0, np.int64)])
    visitor_ids = np.concatenate(
        [p["visitor_ids"][: p["visitor_codes"].size] for p in parts] or [np.zeros(0, str)]
    )
    visitor_codes, first = np.unique(visitor_codes, return_index=True)
    visitor_ids = visitor_ids[first]

    items = catalogue["items"][:n_items]
    categories = content_arrays["categories"][:n_items]
    versions.save_arrays(
        version_id,
        "matrix",
        {
            **_csr_arrays("X", X),
            **_csr_arrays("B", B),
            "shopper_keys": keys,
            "visitor_codes": visitor_codes,
            "visitor_ids": np.asarray(visitor_ids.tolist() or [""], dtype=str),
            "items": np.asarray(items.tolist() or [""], dtype=str),
            "last_seen": last_seen,
        },
    )
    now = float(plan["now"])
    active_rows = np.flatnonzero(last_seen >= now - int(params["active_days"]) * DAY).astype(np.int64)
    versions.save_arrays(version_id, "active", {"rows": active_rows})

    def total(name: str) -> np.ndarray:
        return np.sum([p[f"count_{name}"] for p in parts], axis=0) if parts else np.zeros(n_items)

    events = np.sum([p["events"] for p in parts], axis=0) if parts else np.zeros(2, np.int64)
    global_lists = (
        _write_global_lists(
            version_id, total("popular"), _trending(total("short"), total("long")), items, categories, params
        )
        if int(events[0]) and n_items
        else 0
    )

    n_shards = int(plan["shards"])
    shard_plan = {
        "item_blocks": _blocks(n_items, n_shards),
        "shopper_blocks": _blocks(active_rows.size, n_shards),
    }
    versions.report_progress(
        version_id,
        total=_steps_total(len(ranges), len(shard_plan["item_blocks"]), len(shard_plan["shopper_blocks"])),
        add=1,
    )
    _record(
        version_id,
        "input_counts",
        {
            "events": int(events[0]),
            "events_read": int(events[1]),
            "shoppers": int(keys.size),
            "active_shoppers": int(active_rows.size),
            "baskets": int(B.shape[0]),
            "interactions": int(X.nnz),
            "global_lists": global_lists,
        },
    )
    _record(
        version_id,
        "timings",
        {"load_s": round(_elapsed(version_id) - (time.perf_counter() - started), 3),
         "combine_s": round(time.perf_counter() - started, 3)},
    )  # fmt: skip
    _delete_artifacts(version_id, [f"load_{start}" for start, _ in ranges])
    return shard_plan


def _delete_artifacts(version_id: int, names: list[str]) -> None:
    from shop_reco.models import ScoreArtifact

    ScoreArtifact.objects.filter(version_id=version_id, name__in=names).delete()


def _trending(short: np.ndarray, long: np.ndarray) -> np.ndarray:
    """The engine's trending score (``TrendingRecommender``) from summed short and long decayed counts."""
    model = TrendingRecommender()
    rate_s = short * np.log(2) / model.short_half_life_days
    rate_l = long * np.log(2) / model.long_half_life_days
    return (rate_s + model.prior) / (rate_l + model.prior) * np.log1p(rate_s)


def prepare(version_id: int, *, shards: int | None = None) -> dict[str, Any]:
    """Plan, load, content and combine in this process; returns the shard plan."""
    plan = plan_load(version_id, shards=shards)
    for start, stop in plan["event_ranges"]:
        load_shard(version_id, plan, start, stop)
    content(version_id)
    return combine(version_id, plan)


def _csr_arrays(prefix: str, matrix: sp.csr_matrix) -> dict[str, np.ndarray]:
    matrix = sp.csr_matrix(matrix)
    return {
        f"{prefix}_data": matrix.data.astype(np.float32, copy=False),
        f"{prefix}_indices": matrix.indices,
        f"{prefix}_indptr": matrix.indptr,
        f"{prefix}_shape": np.asarray(matrix.shape, np.int64),
    }


def _csr(arrays: dict[str, np.ndarray], prefix: str) -> sp.csr_matrix:
    shape = tuple(int(n) for n in arrays[f"{prefix}_shape"])
    return sp.csr_matrix(
        (arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]), shape=shape
    )


def _blocks(n: int, parts: int) -> list[list[int]]:
    parts = max(1, min(parts, n)) if n else 1
    edges = np.linspace(0, n, parts + 1).astype(int)
    return [[int(a), int(b)] for a, b in itertools.pairwise(edges) if b > a] or [[0, 0]]


def _write_global_lists(
    version_id: int,
    popularity: np.ndarray,
    trending: np.ndarray,
    labels: np.ndarray,
    categories: np.ndarray,
    params: dict[str, Any],
) -> int:
    length = params["list_length"]
    rows: list[score_store.ListRow] = []
    names, groups = np.unique(categories, return_inverse=True)
    for source, scores in ((sources.POPULAR, popularity), (sources.TRENDING, trending)):
        rows.append(_ranked("global", "", source, scores, labels, length))
        for group, category in enumerate(names):
            if category:
                members = np.flatnonzero(groups == group)
                ranked = _ranked("category", str(category), source, scores[members], labels[members], length)
                rows.append(ranked)
    return score_store.write_lists(version_id, (row for row in rows if row[3]))


def _ranked(
    kind: str, subject: str, source: str, scores: np.ndarray, labels: np.ndarray, n: int
) -> score_store.ListRow:
    ids, values = top_n(np.where(scores > 0, scores, -np.inf)[None, :].astype(np.float32), n)
    keep = ids[0] >= 0
    return kind, subject, source, labels[ids[0][keep]].tolist(), values[0][keep].tolist()


# -- per-process cache of a version's prepared inputs ----------------------------------------------------

_state: dict[str, Any] = {}


def _cached(version_id: int, name: str, build: Callable[[], Any]) -> Any:
    """Per worker process, per version: the shards of one run share O(nnz) preparation."""
    if _state.get("version") != version_id:
        _state.clear()
        _state["version"] = version_id
    if name not in _state:
        _state[name] = build()
    return _state[name]


def _cf_spec(version_id: int) -> Any:
    def build() -> Any:
        X = _csr(versions.load_arrays(version_id, "matrix"), "X")
        return item_similarity_spec(X, "cosine")

    return _cached(version_id, "cf_spec", build)


def _content_operands(version_id: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    def build() -> tuple[sp.csr_matrix, sp.csr_matrix]:
        F = _csr(versions.load_arrays(version_id, "content"), "F")
        return F, sp.csr_matrix(F.T)

    return _cached(version_id, "content", build)


def _basket_operands(version_id: int) -> tuple[sp.csc_matrix, sp.csr_matrix, np.ndarray]:
    def build() -> tuple[sp.csc_matrix, sp.csr_matrix, np.ndarray]:
        B = _csr(versions.load_arrays(version_id, "matrix"), "B")
        return sp.csc_matrix(B), B, np.asarray(B.sum(axis=0), dtype=np.float64).ravel()

    return _cached(version_id, "baskets", build)


# -- item shards --------------------------------------------------------------------------------------


@_timed("item", shard_arg=1)
def item_shard(version_id: int, start: int, stop: int) -> int:
    """Neighbour lists of products ``start:stop``; returns how many lists were written."""
    version = _building(version_id)
    params = version.parameters
    labels = versions.load_arrays(version_id, "matrix")["items"]
    K = int(params["neighbours"])
    length = int(params["list_length"])
    if stop <= start:
        versions.report_progress(version_id, add=1)
        return 0

    spec = _cf_spec(version_id)
    cf = _blockwise(lambda a, b: similarity_block(spec.rows(a, b), spec), spec.E, spec.ET, start, stop, K)
    F, FT = _content_operands(version_id)
    if F.shape[1]:
        content_nn = _blockwise(lambda a, b: sp.csr_matrix(F[a:b] @ FT), F, FT, start, stop, length)
    else:
        content_nn = sp.csr_matrix((stop - start, F.shape[0]), dtype=np.float32)
    together = _bought_together(version_id, start, stop, length, int(params["min_support_count"]))
    blend = params["blend_similar"]
    similar = _normalised(cf, float(blend.get("cf", 1.0))) + _normalised(
        content_nn, float(blend.get("content", 0.0))
    )

    versions.save_arrays(version_id, f"item_nn_{start}", _csr_arrays("S", cf))
    writer = _ListWriter(version_id, labels)
    subjects = labels[start:stop].tolist()
    for source, block in (
        (sources.SIMILAR_CF, cf),
        (sources.SIMILAR_CONTENT, content_nn),
        (sources.BOUGHT_TOGETHER, together),
        (sources.SIMILAR_HYBRID, similar),
    ):
        cols, values = topk_per_row(block, length, exclude_self=False, positive_only=True)
        writer.write("product", subjects, source, cols, values)
    versions.report_progress(version_id, add=1)
    return writer.written


def _blockwise(
    block: Callable[[int, int], sp.csr_matrix],
    E: sp.csr_matrix,
    ET: sp.csr_matrix,
    start: int,
    stop: int,
    K: int,
) -> sp.csr_matrix:
    """Top-``K`` rows ``start:stop`` of ``E @ ET``-shaped similarities, in sub-blocks of bounded cost."""
    bounds = block_bounds(E[start:stop], ET, BLOCK_FLOPS) + start
    parts = [_topk(block(int(a), int(b)), K, int(a)) for a, b in itertools.pairwise(bounds)]
    return sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, ET.shape[1]), dtype=np.float32)


def _bought_together(version_id: int, start: int, stop: int, K: int, min_count: int) -> sp.csr_matrix:
    """Items bought in the same basket, ranked by lift-damped confidence.

    The engine's ``CoOccurrenceRecommender(measure="confidence", popularity_prior=1.0)`` for rows
    ``start:stop`` only: ``B[:, start:stop].T @ B`` instead of the whole ``B.T @ B`` in every shard.
    """
    Bc, B, counts = _basket_operands(version_id)
    C = sp.csr_matrix(sp.csr_matrix(Bc[:, start:stop].T) @ B, dtype=np.float64)
    rows = np.repeat(np.arange(C.shape[0]), np.diff(C.indptr))
    C.data[(C.indices == rows + start) | (C.data < min_count)] = 0
    C.eliminate_zeros()
    rows = np.repeat(np.arange(C.shape[0]), np.diff(C.indptr))
    C.data = C.data / (counts[start + rows] + 1.0)
    return _topk(sp.csr_matrix(C, dtype=np.float32), K, start)


def _topk(block: sp.csr_matrix, K: int, start: int) -> sp.csr_matrix:
    """The best ``K`` stored entries of each row (the item itself excluded), as a CSR block."""
    cols, values = topk_per_row(
        sp.csr_matrix(block), K, row_offset=start, exclude_self=True, positive_only=True
    )
    keep = cols >= 0
    rows = np.repeat(np.arange(cols.shape[0]), keep.sum(axis=1))
    return sp.csr_matrix((values[keep], (rows, cols[keep])), shape=block.shape, dtype=np.float32)


def _normalised(block: sp.csr_matrix, weight: float) -> sp.csr_matrix:
    """Each row scaled to max 1 so sources with different scales blend by their weights."""
    block = sp.csr_matrix(block, dtype=np.float32, copy=True)
    if not weight or not block.nnz:
        return block * 0
    row_max = np.maximum.reduceat(block.data, block.indptr[:-1].clip(max=block.data.size - 1))
    row_max[np.diff(block.indptr) == 0] = 1.0
    block.data /= np.repeat(row_max, np.diff(block.indptr))
    return block * weight


def _product_rows(
    labels: np.ndarray, start: int, blocks: list[tuple[str, sp.csr_matrix]], length: int
) -> Iterator[score_store.ListRow]:
    for source, block in blocks:
        block = sp.csr_matrix(block)
        for offset in range(block.shape[0]):
            lo, hi = block.indptr[offset], block.indptr[offset + 1]
            if lo == hi:
                continue
            cols, values = block.indices[lo:hi], block.data[lo:hi]
            order = np.argsort(-values, kind="stable")[:length]
            yield (
                "product",
                str(labels[start + offset]),
                source,
                labels[cols[order]].tolist(),
                values[order].tolist(),
            )


class _ListWriter:
    """Ranked lists of one version, many at a time, fast: COPY text built from whole blocks of top-N arrays.

    Scores are written as integer millionths with an exponent (``123457e-6``, valid JSON), so no float is
    formatted per item. Rows go straight into the list table; a shard that runs again (a redelivered task)
    hits the unique constraint and replaces its earlier rows instead. Other databases use ``score_store``.
    """

    def __init__(self, version_id: int, labels: np.ndarray) -> None:
        self.version_id = version_id
        self.labels = labels
        self.written = 0
        self.postgres = connection.vendor == "postgresql"
        if self.postgres:
            self.quoted = _cached(
                version_id,
                f"quoted_{len(labels)}",
                lambda: np.array(
                    [_copy_escape(json.dumps(str(key))) for key in labels.tolist()], dtype=object
                ),
            )

    def write(
        self, kind: str, subjects: list[str], source: str, cols: np.ndarray, values: np.ndarray
    ) -> None:
        """One list per row: ``cols`` best first, ``-1`` padding at the end; shape (len(subjects), N)."""
        counts = (cols >= 0).sum(axis=1)
        if not self.postgres:
            rows = [
                (kind, subject, source, self.labels[cols[n, :c]].tolist(), values[n, :c].tolist())
                for n, (subject, c) in enumerate(zip(subjects, counts.tolist(), strict=True))
                if c
            ]
            self.written += score_store.write_lists(self.version_id, rows)
            return
        keys = self.quoted[np.where(cols >= 0, cols, 0)].tolist()
        micros = np.rint(np.where(cols >= 0, values, 0).astype(np.float64) * 1e6).astype(np.int64)
        scores = micros.astype(str).tolist()
        prefix = f"{self.version_id}\t{kind}\t"
        middle = f"\t{source}\t["
        lines, written = [], []
        for n, (subject, c) in enumerate(zip(subjects, counts.tolist(), strict=True)):
            if c:
                lines.append(
                    f"{prefix}{_copy_escape(subject)}{middle}{','.join(keys[n][:c])}]\t"
                    f"[{'e-6,'.join(scores[n][:c])}e-6]\n"
                )
                written.append(subject)
        if lines:
            _copy_lists(self.version_id, kind, source, written, "".join(lines))
            self.written += len(lines)


def _copy_escape(text: str) -> str:
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


def _copy_lists(version_id: int, kind: str, source: str, subjects: list[str], text: str) -> None:
    import psycopg

    table = connection.ops.quote_name(RecommendationList._meta.db_table)
    columns = "(version_id, kind, subject, source, item_keys, scores)"
    try:
        with (
            transaction.atomic(),
            connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY {table} {columns} FROM STDIN") as copy,
        ):
            copy.write(text)
    except psycopg.errors.UniqueViolation:
        # Written before by an earlier run of this shard: replace those rows.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {table} WHERE version_id = %s AND kind = %s AND source = %s "
                "AND subject = ANY(%s)",
                [version_id, kind, source, subjects],
            )
            with cursor.cursor.copy(f"COPY {table} {columns} FROM STDIN") as copy:
                copy.write(text)


# -- assemble, shopper shards, finalize ----------------------------------------------------------------


class ShardsMissing(Exception):
    """A stage started before all shards of the previous one finished (a redelivered duplicate does that)."""


def _require_shards(version_id: int, prefix: str, blocks: list[list[int]], *, exact: bool = False) -> None:
    present = set(versions.artifact_names(version_id))
    if exact:
        if prefix not in present:
            raise ShardsMissing(f"{prefix} not finished")
        return
    missing = [start for start, stop in blocks if stop > start and f"{prefix}{start}" not in present]
    if missing:
        raise ShardsMissing(f"{prefix} shards not finished: {missing}")


@_timed("assemble")
def assemble_item_neighbours(version_id: int, item_blocks: list[list[int]] | None = None) -> None:
    """Stack the shards' neighbour blocks into the full item x item matrix the shopper shards score with."""
    _building(version_id)
    if item_blocks is not None:
        _require_shards(version_id, "item_nn_", item_blocks)
    blocks = sorted(
        (int(name.rsplit("_", 1)[1]), name)
        for name in versions.artifact_names(version_id)
        if name.startswith("item_nn_")
    )
    arrays = versions.load_arrays(version_id, "matrix")
    items = arrays["items"]
    parts = [_csr(versions.load_arrays(version_id, name), "S") for _, name in blocks]
    n_items = int(arrays["X_shape"][1])
    matrix = sp.vstack(parts).tocsr() if parts else sp.csr_matrix((n_items, n_items), dtype=np.float32)
    versions.save_arrays(version_id, "item_nn", {**_csr_arrays("S", matrix), "items": items})
    _delete_artifacts(version_id, [name for _, name in blocks])
    _record(version_id, "timings", {"items_done_s": _elapsed(version_id)})
    versions.report_progress(version_id, add=1)


@_timed("shopper", shard_arg=1)
def shopper_shard(version_id: int, start: int, stop: int) -> int:
    """Personal lists of active shoppers ``start:stop`` (positions in the active list)."""
    version = _building(version_id)
    params = version.parameters
    arrays = versions.load_arrays(version_id, "matrix")
    X = _csr(arrays, "X")
    available = versions.load_arrays(version_id, "content")["available"]

    def scoring_matrix() -> sp.csr_matrix:
        # Unavailable products never enter "for you": their columns are dropped from the neighbours once.
        S = _csr(versions.load_arrays(version_id, "item_nn"), "S")
        return sp.csr_matrix(S @ sp.diags(available.astype(np.float32)), dtype=np.float32)

    S = _cached(version_id, "for_you_S", scoring_matrix)
    rows = versions.load_arrays(version_id, "active")["rows"][start:stop]
    writer = _ListWriter(version_id, arrays["items"])
    _score_shoppers(X, S, rows, _ShopperLabels(arrays), writer, params)
    versions.save_arrays(version_id, f"shoppers_done_{start}", {"lists": np.array([writer.written])})
    versions.report_progress(version_id, add=1)
    return writer.written


class _ShopperLabels:
    """Shopper codes of the matrix back to list subjects: ("user", id) or ("visitor", visitor id)."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.keys = arrays["shopper_keys"]
        codes = arrays["visitor_codes"]
        self.visitors = dict(zip(codes.tolist(), arrays["visitor_ids"][: codes.size].tolist(), strict=True))

    def subjects(self, rows: np.ndarray) -> dict[str, tuple[np.ndarray, list[str]]]:
        """Positions in ``rows`` and subjects, by kind; visitors whose id is unknown are left out."""
        keys = self.keys[rows]
        users = np.flatnonzero(keys >= 0)
        out = {"user": (users, [str(k) for k in keys[users].tolist()])}
        anonymous = np.flatnonzero(keys < 0)
        ids = [self.visitors.get(k, "") for k in keys[anonymous].tolist()]
        named = np.array([bool(i) for i in ids], dtype=bool)
        out["visitor"] = (anonymous[named], [i for i in ids if i])
        return out


def _score_shoppers(
    X: sp.csr_matrix,
    S: sp.csr_matrix,
    rows: np.ndarray,
    labels: _ShopperLabels,
    writer: _ListWriter,
    params: dict[str, Any],
) -> None:
    """Sparse scoring: each shopper's history votes for its items' neighbours; no dense shopper x item row."""
    length = int(params["list_length"])
    weight = float(params["blend_for_you"].get("cf", 1.0))
    for lo in range(0, rows.size, SHOPPER_CHUNK):
        ids = rows[lo : lo + SHOPPER_CHUNK]
        history = X[ids]
        seen = history.copy()
        seen.data = np.ones_like(seen.data)
        cf = sp.csr_matrix(history @ S, dtype=np.float32)
        cf = sp.csr_matrix(cf - cf.multiply(seen))  # discovery: what the shopper has not had yet
        top_ids, top_scores = _row_top(cf, length)
        top_scores *= weight
        # Buy it again: the shopper's own items by strength (the engine's BuyItAgainRecommender without
        # event times), scaled to max 1.
        again_ids, again_scores = _row_top(history, length)
        for kind, (positions, subjects) in labels.subjects(ids).items():
            if positions.size:
                writer.write(kind, subjects, sources.FOR_SHOPPER, top_ids[positions], top_scores[positions])
                writer.write(kind, subjects, sources.BUY_AGAIN, again_ids[positions], again_scores[positions])


def _row_top(block: sp.csr_matrix, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``n`` positive entries per row, scores divided by the row's best."""
    cols, values = topk_per_row(sp.csr_matrix(block), n, exclude_self=False, positive_only=True)
    best = values[:, :1]
    values = np.divide(values, best, out=np.zeros_like(values), where=np.isfinite(best) & (best > 0))
    return cols, values


@_timed("finalize")
def finalize(version_id: int, shopper_blocks: list[list[int]] | None = None) -> ScoreVersion:
    """Offline metrics, then publish and prune."""
    version = _building(version_id)
    if shopper_blocks is not None:
        _require_shards(version_id, "shoppers_done_", shopper_blocks)
    started = time.perf_counter()
    _record(version_id, "timings", {"shoppers_done_s": _elapsed(version_id)})
    _record(version_id, "metrics", offline_metrics(version_id))
    total = (timezone.now() - version.created_at).total_seconds()
    _record(
        version_id,
        "timings",
        {"metrics_s": round(time.perf_counter() - started, 3), "total_s": round(total, 3)},
    )
    published = versions.publish(version_id)
    versions.prune(published.family, int(reco_settings.KEEP_VERSIONS))
    return published


def offline_metrics(version_id: int, k: int = 10, max_users: int = 2_000) -> dict[str, float]:
    """Leave-one-out hit rate and NDCG@k of the item neighbours on baskets: the rest of a basket votes for
    the held-out item; computed for all sampled baskets in one sparse product."""
    arrays = versions.load_arrays(version_id, "matrix")
    B = _csr(arrays, "B")
    S = _csr(versions.load_arrays(version_id, "item_nn"), "S")
    eligible = np.flatnonzero(np.diff(B.indptr) >= 2)[:max_users]
    if not eligible.size:
        return {}
    rng = np.random.default_rng(42)
    sample = B[eligible]
    sizes = np.diff(sample.indptr)
    held = sample.indices[sample.indptr[:-1] + (rng.random(eligible.size) * sizes).astype(np.int64)]
    rest = sample.copy()
    rest.data = np.ones_like(rest.data)
    rest = sp.csr_matrix(
        rest - sp.csr_matrix((np.ones(held.size), (np.arange(held.size), held)), shape=rest.shape)
    )
    rest.eliminate_zeros()
    scores = sp.csr_matrix(rest @ S, dtype=np.float64)
    scores = sp.csr_matrix(scores - scores.multiply(rest))  # the basket's own items are not candidates
    scores.eliminate_zeros()
    row = np.repeat(np.arange(scores.shape[0]), np.diff(scores.indptr))
    target = np.asarray(scores[np.arange(held.size), held]).ravel()
    # Rank of the held item: better scores, plus equal scores at a lower column (a stable sort's order).
    better = (scores.data > target[row]) | ((scores.data == target[row]) & (scores.indices < held[row]))
    rank = np.bincount(row[better], minlength=held.size)
    hit = (target > 0) & (rank < k)
    n = float(eligible.size)
    ndcg = float(np.sum(1.0 / np.log2(rank[hit] + 2)))
    return {
        f"hit_rate@{k}": round(float(hit.sum()) / n, 4),
        f"ndcg@{k}": round(ndcg / n, 4),
        "evaluated_baskets": int(n),
    }


def run_in_process(version_id: int, plan: dict[str, Any], progress: Progress | None = None) -> ScoreVersion:
    """Every step after ``prepare`` in this process, in order (eager Celery, the command without a worker)."""
    steps: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [
        *((item_shard, (version_id, a, b)) for a, b in plan["item_blocks"]),
        (assemble_item_neighbours, (version_id, plan["item_blocks"])),
        *((shopper_shard, (version_id, a, b)) for a, b in plan["shopper_blocks"]),
    ]
    try:
        for done, (step, args) in enumerate(steps, start=1):
            step(*args)
            if progress:
                progress(done, len(steps) + 1)
        published = finalize(version_id, plan["shopper_blocks"])
    except VersionGone:
        raise
    except Exception as exc:
        versions.fail(version_id, f"{exc!r}")
        raise
    if progress:
        progress(len(steps) + 1, len(steps) + 1)
    return published


# -- incremental updates ------------------------------------------------------------------------------

# Per process: the live version's neighbour matrix and its column index, read once per version.
_live: dict[str, Any] = {}


def _live_neighbours(version_id: int) -> tuple[sp.csr_matrix, np.ndarray, dict[str, int]]:
    if _live.get("version") != version_id:
        nn = versions.load_arrays(version_id, "item_nn")
        items = nn["items"]
        _live.clear()
        _live.update(
            version=version_id,
            value=(_csr(nn, "S"), items, {str(key): n for n, key in enumerate(items.tolist())}),
        )
    return _live["value"]


def _flush_buffered_events() -> None:
    """Events still in the Redis buffer (the purchase that triggered this update) go to the database first."""
    from shop_reco.tracking import buffer

    if not buffer.buffer_url():
        return
    try:
        from shop_reco.services.tracking import flush_events

        flush_events()
    except Exception:  # the update still runs on what the database has
        import logging

        logging.getLogger(__name__).exception("shop_reco could not flush the event buffer before an update")


def update_shopper(shopper: str) -> bool:
    """Rewrite one shopper's lists in the live version from its item neighbours and the shopper's events.

    ``shopper`` is ``"u:<user id>"`` or ``"v:<visitor id>"``. Returns False when nothing is published yet.
    """
    from shop_reco.models import Event

    _flush_buffered_events()
    live = versions.live_version()
    if live is None or "item_nn" not in versions.artifact_names(live.pk):
        return False
    S, items, column = _live_neighbours(live.pk)
    kind, subject = _shopper_subject(shopper)
    events = Event.objects.filter(**({"user_id": subject} if kind == "user" else {"visitor_id": subject}))
    params = live.parameters
    weights, half_life = params["event_weights"], float(params["half_life_days"])
    recent = list(
        events.order_by("-occurred_at").values_list("product_key", "event_type", "occurred_at")[:5000]
    )
    if not recent:
        return False
    now = recent[0][2].timestamp()
    history = np.zeros(len(items), dtype=np.float32)
    purchases = np.zeros(len(items), dtype=np.float32)
    for key, event_type, occurred_at in reversed(recent):
        col = column.get(key)
        if col is None:
            continue
        decay = 0.5 ** ((now - occurred_at.timestamp()) / (half_life * DAY)) if half_life else 1.0
        history[col] = max(history[col] + float(weights.get(event_type, 0.0)) * decay, 0.0)
        if event_type == "purchase":
            purchases[col] += 1
    if not history.any():
        return False
    scores = (sp.csr_matrix(history) @ S).toarray().ravel().astype(np.float32)
    scores[history > 0] = -np.inf
    length = int(params["list_length"])
    rows: list[score_store.ListRow] = []
    ids, values = top_n(np.where(scores > 0, scores, -np.inf)[None, :], length)
    keep = ids[0] >= 0
    rows.append((kind, subject, sources.FOR_SHOPPER, items[ids[0][keep]].tolist(), values[0][keep].tolist()))
    ids, values = top_n(np.where(purchases > 0, purchases, -np.inf)[None, :].astype(np.float32), length)
    keep = ids[0] >= 0
    rows.append((kind, subject, sources.BUY_AGAIN, items[ids[0][keep]].tolist(), values[0][keep].tolist()))
    score_store.write_lists(live.pk, rows)
    _forget_cached_lists(live.pk, kind, subject)
    return True


def _shopper_subject(label: str) -> tuple[str, str]:
    prefix, _, subject = label.partition(":")
    return ("user" if prefix == "u" else "visitor"), subject


def index_new_product(product_key: str) -> bool:
    """Give a product that arrived after the last recompute content neighbours in the live version."""
    live = versions.live_version()
    if live is None:
        return False
    catalogue = list(get_adapter().catalogue_rows())
    position = next((n for n, row in enumerate(catalogue) if row.key == product_key), None)
    if position is None:
        return False
    features, _ = build_item_features(
        [(row.key, row.text, row.attributes, row.category or None, row.price) for row in catalogue]
    )
    if features.shape[1] == 0:
        return False
    length = int(reco_settings.LIST_LENGTH)
    similar = _topk(sp.csr_matrix(features[position] @ features.T), length, position)
    labels = np.array([row.key for row in catalogue])
    blocks = [(sources.SIMILAR_CONTENT, similar), (sources.SIMILAR_HYBRID, similar)]
    rows = list(_product_rows(labels, position, blocks, length))
    score_store.write_lists(live.pk, rows)
    _forget_cached_lists(live.pk, "product", product_key)
    return bool(rows)


def _forget_cached_lists(version_id: int, kind: str, subject: str) -> None:
    try:
        from shop_reco.services.lists import forget_lists
    except ImportError:  # pragma: no cover
        return
    forget_lists(version_id, kind, subject)
