"""Offline evaluation: temporal and basket-completion splits, ranking metrics, a printed table.

The Django management command calls :func:`evaluate` and prints :func:`format_table`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from .base import BaseRecommender, check_csr

__all__ = [
    "METRICS",
    "basket_completion_split",
    "evaluate",
    "evaluate_models",
    "format_table",
    "ranking_metrics",
    "temporal_split",
]

METRICS = ("precision", "recall", "ndcg", "map", "hit_rate", "mrr", "coverage")


def _truth_sets(truth: Any) -> list[np.ndarray]:
    if sp.issparse(truth):
        T = sp.csr_matrix(truth)
        return [T.indices[T.indptr[r] : T.indptr[r + 1]] for r in range(T.shape[0])]
    return [np.asarray(list(t), dtype=np.int64) for t in truth]


def ranking_metrics(
    recommended: np.ndarray, truth: Any, k: int = 10, n_items: int | None = None
) -> dict[str, float]:
    """Mean top-``k`` metrics over users with a non-empty truth.

    Per user with recommended list ``r`` (``-1`` = no item) and relevant set ``T``:

    - precision = hits / k; recall = hits / |T|;
    - NDCG = sum over hits at rank p (1-based) of ``1 / log2(p + 1)``, divided by the same sum
      over ranks ``1..min(|T|, k)``;
    - MAP (AP@k) = sum over hits at rank p of precision@p, divided by ``min(|T|, k)``;
    - hit rate = 1 if any hit; MRR = ``1 / p`` of the first hit (0 if none);
    - coverage = distinct recommended items / ``n_items`` (over all users).

    Parameters
    ----------
    recommended : ndarray, shape (n_users, >= k), int
    truth : csr_matrix (n_users, n_items) or sequence of item-id collections
    k : int
    n_items : int, optional
        For coverage; default the truth matrix's width.

    Returns
    -------
    dict metric -> float, plus ``"users"`` (number of users evaluated)
    """
    recs = np.asarray(recommended)[:, :k]
    sets = _truth_sets(truth)
    if n_items is None and sp.issparse(truth):
        n_items = truth.shape[1]
    n_rows = recs.shape[0]
    has_truth = np.array([len(s) > 0 for s in sets], dtype=bool)
    # Hits matrix: hits[u, p] is True when the p-th recommendation is relevant.
    T = sp.csr_matrix(
        (
            np.ones(sum(len(s) for s in sets)),
            (np.repeat(np.arange(n_rows), [len(s) for s in sets]), np.concatenate(sets) if sets else []),
        ),
        shape=(n_rows, max(int(n_items or 0), int(recs.max(initial=-1)) + 1, 1)),
    )
    T.data[:] = 1.0
    safe = np.where(recs >= 0, recs, 0)
    rows = np.repeat(np.arange(n_rows), recs.shape[1]).reshape(recs.shape)
    hits = (np.asarray(T[rows.ravel(), safe.ravel()]).reshape(recs.shape) > 0) & (recs >= 0)
    n_rel = np.array([len(np.unique(s)) for s in sets], dtype=np.float64)
    kk = recs.shape[1]
    disc = 1.0 / np.log2(np.arange(2, kk + 2))
    n_hits = hits.sum(axis=1)
    dcg = (hits * disc).sum(axis=1)
    ideal_len = np.minimum(n_rel, k).astype(np.int64)
    idcg = np.concatenate(([0.0], np.cumsum(disc)))[np.minimum(ideal_len, kk)]
    prec_at = np.cumsum(hits, axis=1) / np.arange(1, kk + 1)
    ap = (prec_at * hits).sum(axis=1) / np.maximum(np.minimum(n_rel, k), 1)
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)
    rr = np.divide(1.0, first, out=np.zeros(n_rows), where=first > 0)
    m = has_truth
    out = {
        "precision": float(np.mean(n_hits[m] / k)) if m.any() else 0.0,
        "recall": float(np.mean(n_hits[m] / n_rel[m])) if m.any() else 0.0,
        "ndcg": float(np.mean(np.divide(dcg[m], idcg[m], out=np.zeros(m.sum()), where=idcg[m] > 0)))
        if m.any()
        else 0.0,
        "map": float(np.mean(ap[m])) if m.any() else 0.0,
        "hit_rate": float(np.mean(n_hits[m] > 0)) if m.any() else 0.0,
        "mrr": float(np.mean(rr[m])) if m.any() else 0.0,
        "coverage": float(np.unique(recs[m][recs[m] >= 0]).size / n_items) if n_items else 0.0,
        "users": float(m.sum()),
    }
    return out


def temporal_split(
    user_idx: Any,
    item_idx: Any,
    timestamps: Any,
    split_time: float,
    end_time: float | None = None,
    *,
    n_users: int,
    n_items: int,
    weights: Any = None,
    start_time: float | None = None,
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Events before ``split_time`` (train) and in ``[split_time, end_time)`` (test).

    Parameters
    ----------
    user_idx, item_idx : array-like of int, shape (n_events,)
    timestamps : array-like of float (epoch seconds), shape (n_events,)
    split_time, end_time, start_time : float
    n_users, n_items : int
    weights : array-like, shape (n_events,), optional
        Summed per pair (default 1 per event).

    Returns
    -------
    train, test : csr_matrix, shape (n_users, n_items), float32
    """
    u = np.asarray(user_idx, dtype=np.int64)
    i = np.asarray(item_idx, dtype=np.int64)
    t = np.asarray(timestamps, dtype=np.float64)
    w = np.ones(u.size, np.float32) if weights is None else np.asarray(weights, dtype=np.float32)
    tr = t < split_time
    if start_time is not None:
        tr &= t >= start_time
    te = t >= split_time
    if end_time is not None:
        te &= t < end_time

    def mat(mask: np.ndarray) -> sp.csr_matrix:
        X = sp.csr_matrix((w[mask], (u[mask], i[mask])), shape=(n_users, n_items), dtype=np.float32)
        X.sum_duplicates()
        return X

    return mat(tr), mat(te)


def basket_completion_split(baskets: Any, seed: int = 42) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Hide one random item of every basket with at least two distinct items.

    Parameters
    ----------
    baskets : csr_matrix, shape (n_baskets, n_items)
    seed : int
        ``numpy.random.default_rng(seed)`` draws one position per eligible basket, in row order.

    Returns
    -------
    carts : csr_matrix, shape (n_eligible, n_items), float32
        The baskets without their hidden item.
    hidden : ndarray, shape (n_eligible,), int64
    rows : ndarray, shape (n_eligible,), int64
        Which input rows they came from.
    """
    B = check_csr(baskets)
    B.data = np.ones_like(B.data)
    sizes = np.diff(B.indptr)
    rows = np.flatnonzero(sizes >= 2)
    rng = np.random.default_rng(seed)
    pos = (rng.random(rows.size) * sizes[rows]).astype(np.int64)
    hidden_at = B.indptr[rows] + pos
    hidden = B.indices[hidden_at].astype(np.int64)
    sub = B[rows].tocoo()
    mask = ~(sub.col == hidden[sub.row])
    carts = sp.csr_matrix(
        (sub.data[mask], (sub.row[mask], sub.col[mask])), shape=(rows.size, B.shape[1]), dtype=np.float32
    )
    return carts, hidden, rows


def evaluate(
    model: BaseRecommender,
    X_input: Any,
    truth: Any,
    *,
    k: int = 10,
    user_ids: Any = None,
    filter_already_liked: bool = True,
    filter_items: Any = None,
    batch_size: int = 2048,
) -> dict[str, float]:
    """Recommend for every evaluation shopper and score against the truth.

    Parameters
    ----------
    model : fitted BaseRecommender
    X_input : csr_matrix, shape (n, n_items)
        Histories (or carts) given to the model.
    truth : csr_matrix (n, n_items), or sequence of item collections / ints, length n
    user_ids : array-like of int, shape (n,), optional
        Training rows (default ``-1`` = unknown).

    Returns
    -------
    dict metric -> float (see :func:`ranking_metrics`)
    """
    X_input = check_csr(X_input, n_cols=model.n_items_)
    if not sp.issparse(truth) and len(truth) and np.ndim(truth[0]) == 0:
        truth = [[int(t)] for t in truth]
    ids = np.full(X_input.shape[0], -1) if user_ids is None else np.asarray(user_ids)
    recs = []
    for s in range(0, X_input.shape[0], batch_size):
        r, _ = model.recommend(
            ids[s : s + batch_size],
            X_input[s : s + batch_size],
            N=k,
            filter_already_liked=filter_already_liked,
            filter_items=filter_items,
        )
        recs.append(r)
    rec = np.vstack(recs) if recs else np.empty((0, k), np.int32)
    return ranking_metrics(rec, truth, k=k, n_items=model.n_items_)


def evaluate_models(
    models: Mapping[str, BaseRecommender], X_input: Any, truth: Any, **kwargs: Any
) -> dict[str, dict[str, float]]:
    """:func:`evaluate` for several fitted models: ``{name: metrics}``."""
    return {name: evaluate(m, X_input, truth, **kwargs) for name, m in models.items()}


def format_table(
    results: Mapping[str, Mapping[str, float]], metrics: Sequence[str] | None = None, k: int | None = 10
) -> str:
    """Plain-text table, one row per model, one column per metric.

    Parameters
    ----------
    results : dict name -> dict metric -> float
    metrics : metric names to show (default the ones present, in :data:`METRICS` order)
    k : shown in the headers as ``metric@k`` (None: bare names)
    """
    if metrics is None:
        present = {m for r in results.values() for m in r}
        metrics = [m for m in METRICS if m in present] + sorted(present - set(METRICS) - {"users"})
    heads = ["model"] + [f"{m}@{k}" if k is not None and m in METRICS else m for m in metrics]
    rows = [[name] + [f"{r.get(m, float('nan')):.4f}" for m in metrics] for name, r in results.items()]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(heads)]
    line = "  ".join(
        h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(heads, widths, strict=True))
    )
    out = [line, "-" * len(line)]
    for row in rows:
        out.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(out)
