"""The recompute pipeline's steps: events in, engine in the middle, ranked lists of a new score version out.

The Celery tasks in ``shop_reco.pipeline_tasks`` and the ``reco_recompute`` command call these; each step
reads what earlier steps stored as artifacts of the version, so shards can run on any worker machine.

    prepare          events -> interaction and basket matrices, catalogue features, popular/trending lists
    item_shard       per block of products: collaborative and content neighbours, bought-together, "similar"
    assemble         the item-neighbour blocks -> one sparse neighbour matrix
    shopper_shard    per block of active shoppers: "for you" and "buy it again"
    finalize         offline metrics, publish, prune
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp
from django.utils import timezone

from shop_reco import sources
from shop_reco.adapters import get_adapter
from shop_reco.conf import reco_settings
from shop_reco.engine.association import CoOccurrenceRecommender
from shop_reco.engine.base import top_n
from shop_reco.engine.content import build_item_features
from shop_reco.engine.interactions import IdMap, build_baskets, build_interactions
from shop_reco.engine.item_knn import item_similarity_spec
from shop_reco.engine.popularity import BuyItAgainRecommender, TrendingRecommender, decayed_counts
from shop_reco.engine.similarity import similarity_block, topk_per_row
from shop_reco.models import ScoreVersion
from shop_reco.services import score_store, versions
from shop_reco.services.event_data import EventColumns, load_events

Progress = Callable[[int, int], None]


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
    """Merge ``values`` into one JSON field of the version."""
    version = ScoreVersion.objects.get(pk=version_id)
    merged = {**getattr(version, field), **values}
    ScoreVersion.objects.filter(pk=version_id).update(**{field: merged})


# -- prepare ------------------------------------------------------------------------------------------


def prepare(version_id: int, *, shards: int | None = None) -> dict[str, Any]:
    """Load events and catalogue, store the shared matrices, write the global lists, plan the shards."""
    started = time.perf_counter()
    version = _building(version_id)
    params = version.parameters or parameters()
    adapter = get_adapter()
    catalogue = list(adapter.catalogue_rows())
    events = load_events()
    loaded = time.perf_counter()

    timestamps = events.timestamp_array()
    # Age is measured from the newest event, not the wall clock, so a shop importing old orders (or a quiet
    # week) still gets weights; for a live shop the two are the same.
    now = float(timestamps.max()) if len(events) else time.time()
    item_map = IdMap(row.key for row in catalogue)
    interactions = build_interactions(
        events.shoppers,
        events.items,
        events.event_types,
        timestamps,
        events.quantities,
        events.baskets,
        event_weights=params["event_weights"],
        half_life_days=params["half_life_days"],
        now=now,
        dedupe_seconds=2.0,
        item_map=item_map,
    )
    X = interactions.matrix
    # Items seen only in events were appended to item_map by the first builder; the basket matrix shares it.
    baskets = build_baskets(
        events.baskets, events.items, events.event_types, basket_event_types=("purchase",), item_map=item_map
    ).matrix
    item_labels = item_map.keys
    categories = _item_categories(catalogue, item_labels)
    features, _ = build_item_features(
        [(row.key, row.text, row.attributes, row.category or None, row.price) for row in catalogue]
    )
    features = _pad_rows(features, len(item_labels))  # products seen only in events get empty feature rows

    versions.save_arrays(
        version_id,
        "matrix",
        {
            **_csr_arrays("X", X),
            **_csr_arrays("B", baskets),
            **_csr_arrays("F", features),
            "shoppers": interactions.user_map.to_array() if len(interactions.user_map) else np.array([""]),
            "items": np.asarray(item_labels or [""], dtype=str),
            "categories": categories,
            "available": _available_mask(adapter, item_labels),
            "last_seen": _last_seen(events, interactions.user_map, timestamps),
        },
    )
    global_lists = _write_global_lists(version_id, events, timestamps, item_map, categories, params, now)
    active = _store_active_shoppers(version_id, params["active_days"], now)
    built = time.perf_counter()

    n_shards = shards or int(reco_settings.RECOMPUTE_SHARDS)
    plan = {"item_blocks": _blocks(X.shape[1], n_shards), "shopper_blocks": _blocks(active, n_shards)}
    versions.report_progress(
        version_id, done=1, total=1 + len(plan["item_blocks"]) + 1 + len(plan["shopper_blocks"]) + 1
    )
    _record(
        version_id,
        "input_counts",
        {
            "events": len(events),
            "shoppers": len(interactions.user_map),
            "active_shoppers": active,
            "products": len(catalogue),
            "baskets": int(baskets.shape[0]),
            "interactions": int(X.nnz),
            "global_lists": global_lists,
        },
    )
    _record(
        version_id, "timings", {"load_s": round(loaded - started, 3), "prepare_s": round(built - loaded, 3)}
    )
    return plan


def _pad_rows(matrix: sp.csr_matrix, n_rows: int) -> sp.csr_matrix:
    missing = n_rows - matrix.shape[0]
    if missing <= 0:
        return sp.csr_matrix(matrix)
    return sp.vstack([matrix, sp.csr_matrix((missing, matrix.shape[1]), dtype=np.float32)]).tocsr()


def _last_seen(events: EventColumns, user_map: IdMap, timestamps: np.ndarray) -> np.ndarray:
    last = np.zeros(len(user_map), dtype=np.float64)
    if len(events):
        np.maximum.at(last, user_map.transform(events.shoppers), timestamps)
    return last


def _csr_arrays(prefix: str, matrix: sp.csr_matrix) -> dict[str, np.ndarray]:
    matrix = sp.csr_matrix(matrix)
    return {
        f"{prefix}_data": matrix.data.astype(np.float32),
        f"{prefix}_indices": matrix.indices,
        f"{prefix}_indptr": matrix.indptr,
        f"{prefix}_shape": np.asarray(matrix.shape, np.int64),
    }


def _csr(arrays: dict[str, np.ndarray], prefix: str) -> sp.csr_matrix:
    shape = tuple(int(n) for n in arrays[f"{prefix}_shape"])
    return sp.csr_matrix(
        (arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]), shape=shape
    )


def _item_categories(catalogue: list[Any], item_labels: list[str]) -> np.ndarray:
    by_key = {row.key: row.category for row in catalogue}
    return np.asarray([by_key.get(key, "") or "" for key in item_labels] or [""], dtype=str)


def _available_mask(adapter: Any, item_labels: list[str]) -> np.ndarray:
    available = {adapter.product_key(p) for p in adapter.available_products().iterator(chunk_size=5000)}
    return np.array([key in available for key in item_labels], dtype=bool)


def _blocks(n: int, parts: int) -> list[list[int]]:
    parts = max(1, min(parts, n)) if n else 1
    edges = np.linspace(0, n, parts + 1).astype(int)
    return [[int(a), int(b)] for a, b in itertools.pairwise(edges) if b > a] or [[0, 0]]


def _store_active_shoppers(version_id: int, days: int, now: float) -> int:
    """Store the rows of shoppers seen in the last ``days`` (they get personal lists); returns how many."""
    last_seen = versions.load_arrays(version_id, "matrix")["last_seen"]
    rows = np.flatnonzero(last_seen >= now - days * 86_400).astype(np.int64)
    versions.save_arrays(version_id, "active", {"rows": rows})
    return int(rows.size)


def _write_global_lists(
    version_id: int,
    events: EventColumns,
    timestamps: np.ndarray,
    item_map: IdMap,
    categories: np.ndarray,
    params: dict[str, Any],
    now: float,
) -> int:
    n_items = len(item_map)
    if not n_items or not len(events):
        return 0
    weights = params["event_weights"]
    event_weights = np.array([max(float(weights.get(name, 0.0)), 0.0) for name in events.event_types])
    items = item_map.transform(events.items)
    popularity = decayed_counts(items, timestamps, n_items, params["half_life_days"], now, event_weights)
    trending = (
        TrendingRecommender()
        .fit(sp.csr_matrix((1, n_items), dtype=np.float32), items, timestamps, event_weights, now)
        .popularity_
    )
    length = params["list_length"]
    labels = np.asarray(item_map.keys)
    rows: list[score_store.ListRow] = []
    for source, scores in ((sources.POPULAR, popularity), (sources.TRENDING, trending)):
        rows.append(_ranked("global", "", source, scores, labels, length))
        for category in np.unique(categories[:n_items]):
            if category:
                masked = np.where(categories[:n_items] == category, scores, 0.0)
                rows.append(_ranked("category", str(category), source, masked, labels, length))
    return score_store.write_lists(version_id, (row for row in rows if row[3]))


def _ranked(
    kind: str, subject: str, source: str, scores: np.ndarray, labels: np.ndarray, n: int
) -> score_store.ListRow:
    ids, values = top_n(np.where(scores > 0, scores, -np.inf)[None, :].astype(np.float32), n)
    keep = ids[0] >= 0
    return kind, subject, source, labels[ids[0][keep]].tolist(), values[0][keep].tolist()


# -- item shards --------------------------------------------------------------------------------------


def item_shard(version_id: int, start: int, stop: int) -> int:
    """Neighbour lists of products ``start:stop``; returns how many lists were written."""
    version = _building(version_id)
    params = version.parameters
    arrays = versions.load_arrays(version_id, "matrix")
    X, B, F = _csr(arrays, "X"), _csr(arrays, "B"), _csr(arrays, "F")
    labels = arrays["items"]
    K = int(params["neighbours"])
    length = int(params["list_length"])
    if stop <= start:
        versions.report_progress(version_id, add=1)
        return 0

    cf = _cf_neighbours(X, start, stop, K)
    content = _content_neighbours(F, start, stop, length)
    together = _bought_together(B, start, stop, length, int(params["min_support_count"]))
    blend = params["blend_similar"]
    similar = _normalised(cf, float(blend.get("cf", 1.0))) + _normalised(
        content, float(blend.get("content", 0.0))
    )

    versions.save_arrays(version_id, f"item_nn_{start}", _csr_arrays("S", cf))
    blocks = [
        (sources.SIMILAR_CF, cf),
        (sources.SIMILAR_CONTENT, content),
        (sources.BOUGHT_TOGETHER, together),
        (sources.SIMILAR_HYBRID, similar),
    ]
    written = score_store.write_lists(version_id, _product_rows(labels, start, blocks, length))
    versions.report_progress(version_id, add=1)
    return written


def _cf_neighbours(X: sp.csr_matrix, start: int, stop: int, K: int) -> sp.csr_matrix:
    spec = item_similarity_spec(X, "cosine")
    block = similarity_block(spec.rows(start, stop), spec)
    return _topk(block, K, start)


def _content_neighbours(F: sp.csr_matrix, start: int, stop: int, K: int) -> sp.csr_matrix:
    if F.shape[1] == 0:
        return sp.csr_matrix((stop - start, F.shape[0]), dtype=np.float32)
    block = sp.csr_matrix(F[start:stop] @ F.T)
    return _topk(block, K, start)


def _bought_together(B: sp.csr_matrix, start: int, stop: int, K: int, min_count: int) -> sp.csr_matrix:
    """Items bought in the same basket, ranked by lift-damped confidence (see the engine's co-occurrence)."""
    model = CoOccurrenceRecommender(measure="confidence", min_count=min_count, popularity_prior=1.0)
    return _topk(model.fit(B).cooccurrence_[start:stop], K, start)


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


# -- assemble, shopper shards, finalize ----------------------------------------------------------------


class ShardsMissing(Exception):
    """A stage started before all shards of the previous one finished (a redelivered duplicate can do that)."""


def _require_shards(version_id: int, prefix: str, blocks: list[list[int]]) -> None:
    present = set(versions.artifact_names(version_id))
    missing = [start for start, stop in blocks if stop > start and f"{prefix}{start}" not in present]
    if missing:
        raise ShardsMissing(f"{prefix} shards not finished: {missing}")


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
    items = versions.load_arrays(version_id, "matrix")["items"]
    parts = [_csr(versions.load_arrays(version_id, name), "S") for _, name in blocks]
    n_items = int(_csr(versions.load_arrays(version_id, "matrix"), "X").shape[1])
    matrix = sp.vstack(parts).tocsr() if parts else sp.csr_matrix((n_items, n_items), dtype=np.float32)
    versions.save_arrays(version_id, "item_nn", {**_csr_arrays("S", matrix), "items": items})
    versions.report_progress(version_id, add=1)


def shopper_shard(version_id: int, start: int, stop: int) -> int:
    """Personal lists of active shoppers ``start:stop`` (positions in the active list)."""
    version = _building(version_id)
    params = version.parameters
    arrays = versions.load_arrays(version_id, "matrix")
    X = _csr(arrays, "X")
    S = _csr(versions.load_arrays(version_id, "item_nn"), "S")
    rows = versions.load_arrays(version_id, "active")["rows"][start:stop]
    written = score_store.write_lists(
        version_id,
        _shopper_rows(X, S, rows, arrays["shoppers"], arrays["items"], arrays["available"], params),
    )
    versions.save_arrays(version_id, f"shoppers_done_{start}", {"lists": np.array([written])})
    versions.report_progress(version_id, add=1)
    return written


def _shopper_rows(
    X: sp.csr_matrix,
    S: sp.csr_matrix,
    rows: np.ndarray,
    shoppers: np.ndarray,
    items: np.ndarray,
    available: np.ndarray,
    params: dict[str, Any],
) -> Iterator[score_store.ListRow]:
    length = int(params["list_length"])
    blend = params["blend_for_you"]
    buy_again = BuyItAgainRecommender().fit(X)
    chunk = 512
    for lo in range(0, rows.size, chunk):
        ids = rows[lo : lo + chunk]
        history = X[ids]
        cf = (history @ S).toarray()
        cf_max = cf.max(axis=1, keepdims=True)
        cf = np.divide(cf, cf_max, out=np.zeros_like(cf), where=cf_max > 0)
        own = buy_again._score(ids, history)
        own_max = own.max(axis=1, keepdims=True)
        own = np.divide(own, own_max, out=np.zeros_like(own), where=own_max > 0)
        for_you = float(blend.get("cf", 1.0)) * cf
        for_you[history.nonzero()] = -np.inf  # discovery: what the shopper has not had yet
        for_you[:, ~available] = -np.inf
        top_ids, top_scores = top_n(np.where(for_you > 0, for_you, -np.inf).astype(np.float32), length)
        again_ids, again_scores = top_n(np.where(own > 0, own, -np.inf).astype(np.float32), length)
        for n, row in enumerate(ids):
            kind, subject = _shopper_subject(str(shoppers[row]))
            keep = top_ids[n] >= 0
            if keep.any():
                yield (
                    kind,
                    subject,
                    sources.FOR_SHOPPER,
                    items[top_ids[n][keep]].tolist(),
                    top_scores[n][keep].tolist(),
                )
            keep = again_ids[n] >= 0
            if keep.any():
                yield (
                    kind,
                    subject,
                    sources.BUY_AGAIN,
                    items[again_ids[n][keep]].tolist(),
                    again_scores[n][keep].tolist(),
                )


def _shopper_subject(label: str) -> tuple[str, str]:
    prefix, _, subject = label.partition(":")
    return ("user" if prefix == "u" else "visitor"), subject


def finalize(version_id: int, shopper_blocks: list[list[int]] | None = None) -> ScoreVersion:
    """Offline metrics, then publish and prune."""
    version = _building(version_id)
    if shopper_blocks is not None:
        _require_shards(version_id, "shoppers_done_", shopper_blocks)
    started = time.perf_counter()
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
    """Leave-last-basket-out hit rate and NDCG@k of the item neighbours, on a sample of shoppers."""
    arrays = versions.load_arrays(version_id, "matrix")
    B = _csr(arrays, "B")
    S = _csr(versions.load_arrays(version_id, "item_nn"), "S")
    eligible = np.flatnonzero(np.diff(B.indptr) >= 2)[:max_users]
    if not eligible.size:
        return {}
    hits, ndcg = 0.0, 0.0
    rng = np.random.default_rng(42)
    for basket in eligible:
        items = B.indices[B.indptr[basket] : B.indptr[basket + 1]]
        held = rng.choice(items)
        rest = items[items != held]
        scores = np.asarray(S[rest].sum(axis=0)).ravel()
        scores[rest] = -np.inf
        ranked = np.argsort(-scores, kind="stable")[:k]
        where = np.flatnonzero(ranked == held)
        if where.size and np.isfinite(scores[held]) and scores[held] > 0:
            hits += 1
            ndcg += 1.0 / np.log2(where[0] + 2)
    n = float(eligible.size)
    return {f"hit_rate@{k}": round(hits / n, 4), f"ndcg@{k}": round(ndcg / n, 4), "evaluated_baskets": int(n)}


def run_in_process(version_id: int, plan: dict[str, Any], progress: Progress | None = None) -> ScoreVersion:
    """Every step in this process, in order (eager Celery, the command without a worker)."""
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


def update_shopper(shopper: str) -> bool:
    """Rewrite one shopper's lists in the live version from its item neighbours and the shopper's events.

    ``shopper`` is ``"u:<user id>"`` or ``"v:<visitor id>"``. Returns False when nothing is published yet.
    """
    from shop_reco.models import Event

    live = versions.live_version()
    if live is None or "item_nn" not in versions.artifact_names(live.pk):
        return False
    nn = versions.load_arrays(live.pk, "item_nn")
    S, items = _csr(nn, "S"), nn["items"]
    column = {str(key): n for n, key in enumerate(items)}
    kind, subject = _shopper_subject(shopper)
    events = Event.objects.filter(**({"user_id": subject} if kind == "user" else {"visitor_id": subject}))
    params = live.parameters
    weights, half_life = params["event_weights"], float(params["half_life_days"])
    latest = events.order_by("-occurred_at").values_list("occurred_at", flat=True).first()
    now = latest.timestamp() if latest else time.time()
    history = np.zeros(len(items), dtype=np.float32)
    purchases = np.zeros(len(items), dtype=np.float32)
    for key, event_type, occurred_at in events.values_list("product_key", "event_type", "occurred_at")[:5000]:
        col = column.get(key)
        if col is None:
            continue
        decay = 0.5 ** ((now - occurred_at.timestamp()) / (half_life * 86_400)) if half_life else 1.0
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
