"""Per-slot blending of normalised scores from several recommenders."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from .base import BaseRecommender, check_csr

__all__ = ["HybridRecommender", "normalise_scores"]

NORMALISATIONS = ("max", "minmax", "zscore", "rank", "none")


def normalise_scores(scores: np.ndarray, method: str = "max") -> np.ndarray:
    """Make one source's scores comparable across shoppers and sources, row by row.

    Parameters
    ----------
    scores : ndarray, shape (n_users, n_items)
    method : {"max", "minmax", "zscore", "rank", "none"}
        ``max``: divide by the row's largest absolute value; ``minmax``: to [0, 1]; ``zscore``:
        centre and scale; ``rank``: ``1 / (1 + rank)`` over positive scores (0 elsewhere);
        ``none``: unchanged.

    Returns
    -------
    ndarray, same shape, float64
    """
    s = np.asarray(scores, dtype=np.float64)
    s = np.where(np.isfinite(s), s, 0.0)
    if method == "none":
        return s
    if method == "max":
        m = np.abs(s).max(axis=1, keepdims=True) if s.size else np.ones((s.shape[0], 1))
        return np.divide(s, m, out=np.zeros_like(s), where=m > 0)
    if method == "minmax":
        lo = s.min(axis=1, keepdims=True) if s.size else np.zeros((s.shape[0], 1))
        hi = s.max(axis=1, keepdims=True) if s.size else np.zeros((s.shape[0], 1))
        return np.divide(s - lo, hi - lo, out=np.zeros_like(s), where=(hi - lo) > 0)
    if method == "zscore":
        mu = s.mean(axis=1, keepdims=True)
        sd = s.std(axis=1, keepdims=True)
        return np.divide(s - mu, sd, out=np.zeros_like(s), where=sd > 0)
    if method == "rank":
        order = np.argsort(-s, axis=1, kind="stable")
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(s.shape[1])[None, :], axis=1)
        return np.where(s > 0, 1.0 / (1.0 + ranks), 0.0)
    raise ValueError(f"normalisation must be one of {NORMALISATIONS}")


class HybridRecommender(BaseRecommender):
    """Weighted sum of normalised source scores, with weights per slot.

    Parameters
    ----------
    sources : list of (name, recommender)
        Fitted in place by ``fit`` (``fit_params`` keyed ``"<name>__<param>"`` are routed).
    weights : dict name -> float, optional
        Default blend; None weighs every source 1.
    normalisation : {"max", "minmax", "zscore", "rank", "none"}, default "max"
    slot_weights : dict slot -> (dict name -> float), optional
        Blends for named slots (e.g. ``"basket"``, ``"home"``); JSON-able.

    Attributes
    ----------
    slot_weights_ : dict slot -> (dict name -> float)
        Learned blends (:meth:`learn_weights`), used before ``slot_weights``.
    n_items_ : int
    """

    def __init__(
        self,
        sources: Sequence[tuple[str, BaseRecommender]] = (),
        weights: dict[str, float] | None = None,
        normalisation: str = "max",
        slot_weights: dict[str, dict[str, float]] | None = None,
    ) -> None:
        self.sources = sources
        self.weights = weights
        self.normalisation = normalisation
        self.slot_weights = slot_weights

    def fit(self, X: Any, fit_sources: bool = True, **fit_params: Any) -> HybridRecommender:
        """Fit every source on ``X`` (shape (n_users, n_items)); ``fit_sources=False`` keeps them."""
        X = check_csr(X)
        if fit_sources:
            for name, model in self.sources:
                own = {k.split("__", 1)[1]: v for k, v in fit_params.items() if k.startswith(name + "__")}
                model.fit(X, **own)
        self.n_items_ = int(X.shape[1])
        if not hasattr(self, "slot_weights_"):
            self.slot_weights_: dict[str, dict[str, float]] = {}
        return self

    def blend_weights(self, slot: str | None = None) -> dict[str, float]:
        """The weights in force for ``slot`` (learned, then configured, then the default)."""
        learned = getattr(self, "slot_weights_", {}) or {}
        if slot is not None and slot in learned:
            return dict(learned[slot])
        if slot is not None and self.slot_weights and slot in self.slot_weights:
            return dict(self.slot_weights[slot])
        if "default" in learned:
            return dict(learned["default"])
        if self.weights is not None:
            return dict(self.weights)
        return {name: 1.0 for name, _ in self.sources}

    def source_scores(self, user_ids: np.ndarray, X_rows: sp.csr_matrix) -> dict[str, np.ndarray]:
        """Normalised scores of every source, each shape (n_users, n_items), float64."""
        return {
            name: normalise_scores(model._score(user_ids, X_rows), self.normalisation)
            for name, model in self.sources
        }

    def _score(self, user_ids: np.ndarray, X_rows: sp.csr_matrix, slot: str | None = None) -> np.ndarray:
        w = self.blend_weights(slot if slot is not None else getattr(self, "_slot", None))
        total = np.zeros((X_rows.shape[0], self.n_items_), dtype=np.float64)
        for name, model in self.sources:
            if w.get(name, 0.0):
                total += w[name] * normalise_scores(model._score(user_ids, X_rows), self.normalisation)
        return total

    def recommend_slot(self, slot: str, user_ids: Any, X_user_rows: Any, N: int = 10, **kwargs: Any) -> Any:
        """:meth:`recommend` with the blend of one slot."""
        self._slot = slot
        try:
            return self.recommend(user_ids, X_user_rows, N=N, **kwargs)
        finally:
            del self._slot

    def learn_weights(
        self,
        X_input: Any,
        truth: Any,
        *,
        slot: str = "default",
        grid: Sequence[float] = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0),
        k: int = 10,
        metric: str = "ndcg",
        filter_already_liked: bool = True,
        rounds: int = 3,
        user_ids: Any = None,
        metric_fn: Callable[[np.ndarray, sp.csr_matrix], float] | None = None,
    ) -> dict[str, float]:
        """Coordinate ascent of the blend weights on a validation split; stores ``slot_weights_[slot]``.

        The first source's weight is fixed to 1 (only ratios matter); each other weight is set in
        turn to the best grid value, for ``rounds`` rounds or until nothing changes.

        Parameters
        ----------
        X_input : csr_matrix, shape (n_val_users, n_items)
            Histories the validation shoppers had.
        truth : csr_matrix, shape (n_val_users, n_items)
            Items they went on to interact with.
        grid : candidate weight values.
        metric : {"ndcg", "recall", "precision", "map", "hit_rate", "mrr"}

        Returns
        -------
        dict name -> float
        """
        from .evaluation import ranking_metrics

        X_input = check_csr(X_input, n_cols=self.n_items_)
        truth = check_csr(truth, n_cols=self.n_items_)
        ids = np.full(X_input.shape[0], -1) if user_ids is None else np.asarray(user_ids)
        parts = self.source_scores(ids, X_input)
        blocked = np.zeros(X_input.shape, dtype=bool)
        if filter_already_liked:
            r = np.repeat(np.arange(X_input.shape[0]), np.diff(X_input.indptr))
            blocked[r, X_input.indices] = True

        def evaluate(w: dict[str, float]) -> float:
            total = sum((w[n] * parts[n] for n in parts if w.get(n, 0.0)), np.zeros(X_input.shape))
            total = np.where(blocked, -np.inf, total)
            from .base import top_n

            recs, _ = top_n(total, k)
            if metric_fn is not None:
                return metric_fn(recs, truth)
            return ranking_metrics(recs, truth, k=k)[metric]

        names = [n for n, _ in self.sources]
        w = {n: 1.0 for n in names}
        best = evaluate(w)
        for _ in range(rounds):
            changed = False
            for n in names[1:]:
                for g in grid:
                    trial = dict(w, **{n: float(g)})
                    val = evaluate(trial)
                    if val > best + 1e-12:
                        best, w, changed = val, trial, True
            if not changed:
                break
        if not hasattr(self, "slot_weights_"):
            self.slot_weights_ = {}
        self.slot_weights_[slot] = w
        self.best_score_ = float(best)
        return w


# Grid helper for callers that prefer exhaustive search over coordinate ascent.
def weight_grid(names: Sequence[str], grid: Sequence[float]) -> list[dict[str, float]]:
    """Every combination of ``grid`` values for ``names[1:]`` with ``names[0]`` fixed to 1."""
    return [
        dict(zip(names, (1.0, *combo), strict=True))
        for combo in itertools.product(grid, repeat=len(names) - 1)
    ]
