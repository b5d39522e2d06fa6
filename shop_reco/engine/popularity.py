"""Popularity, trending and "buy it again"."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from .base import BaseRecommender, check_csr

__all__ = ["BuyItAgainRecommender", "PopularityRecommender", "TrendingRecommender", "decayed_counts"]

DAY = 86_400.0


def decayed_counts(
    item_idx: Any,
    timestamps: Any,
    n_items: int,
    half_life_days: float | None,
    now: float | None = None,
    weights: Any = None,
) -> np.ndarray:
    """Per-item sum of event weights times ``0.5 ** (age / half_life)``.

    Parameters
    ----------
    item_idx : array-like of int, shape (n_events,)
    timestamps : array-like of float, shape (n_events,)
        Epoch seconds.
    n_items : int
    half_life_days : float or None
        None: no decay (plain counts).
    now : float, optional
        Reference time; default the latest timestamp. Events after ``now`` are ignored.
    weights : array-like of float, shape (n_events,), optional

    Returns
    -------
    ndarray, shape (n_items,), float64
    """
    items = np.asarray(item_idx, dtype=np.int64)
    t = np.asarray(timestamps, dtype=np.float64)
    w = np.ones(items.size) if weights is None else np.asarray(weights, dtype=np.float64)
    if now is None:
        now = float(t.max()) if t.size else 0.0
    keep = t <= now
    decay = np.ones(keep.sum()) if not half_life_days else 0.5 ** ((now - t[keep]) / (half_life_days * DAY))
    return np.bincount(items[keep], weights=w[keep] * decay, minlength=n_items).astype(np.float64)


class PopularityRecommender(BaseRecommender):
    """Most popular items, overall or per category, optionally time-decayed.

    Parameters
    ----------
    half_life_days : float or None, default None
        Decay of event weight with age (only with event arrays in ``fit``).

    Attributes
    ----------
    popularity_ : ndarray, shape (n_items,), float64
    item_categories_ : ndarray, shape (n_items,), int64
        ``-1`` when no categories were given.
    """

    personalised = False

    def __init__(self, half_life_days: float | None = None) -> None:
        self.half_life_days = half_life_days

    def fit(
        self,
        X: Any,
        item_idx: Any = None,
        timestamps: Any = None,
        weights: Any = None,
        now: float | None = None,
        item_categories: Any = None,
        **fit_params: Any,
    ) -> PopularityRecommender:
        """Count per item from ``X`` (column sums) or, if given, from event arrays with decay.

        Parameters
        ----------
        X : csr_matrix, shape (n_users, n_items)
        item_idx, timestamps, weights : array-like, shape (n_events,), optional
        now : float, optional
        item_categories : array-like of int, shape (n_items,), optional
        """
        X = check_csr(X)
        n_items = X.shape[1]
        events = (
            (item_idx, timestamps, weights, now) if item_idx is not None and timestamps is not None else None
        )
        self.popularity_ = self._item_scores(X, events)
        self.item_categories_ = (
            np.full(n_items, -1, np.int64)
            if item_categories is None
            else np.asarray(item_categories, np.int64)
        )
        self.n_items_ = n_items
        return self

    def _item_scores(self, X: sp.csr_matrix, events: tuple[Any, Any, Any, Any] | None) -> np.ndarray:
        """The per-item score ranked by :meth:`top_items`; ``events``: (item_idx, timestamps, weights, now)."""
        if events is None:
            return np.asarray(X.sum(axis=0), dtype=np.float64).ravel()
        item_idx, timestamps, weights, now = events
        return decayed_counts(item_idx, timestamps, X.shape[1], self.half_life_days, now, weights)

    def _score(self, user_ids: np.ndarray, X_rows: sp.csr_matrix) -> np.ndarray:
        return np.broadcast_to(self.popularity_.astype(np.float32), (len(user_ids), self.n_items_))

    def top_items(self, N: int = 10, category: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Best ``N`` items overall or within one category: ids (int32) and scores (float32)."""
        self._check_fitted()
        scores = self.popularity_.astype(np.float32)[None, :].copy()
        if category is not None:
            scores[0, self.item_categories_ != category] = -np.inf
        from .base import top_n

        ids, vals = top_n(scores, N)
        valid = ids[0] >= 0
        return ids[0][valid], vals[0][valid]


class TrendingRecommender(PopularityRecommender):
    """Items whose recent rate beats their longer-run rate, smoothed.

    ``trend_i = (rate_short_i + prior) / (rate_long_i + prior)`` where each rate is a decayed
    count divided by its effective window (``half_life / ln 2`` days); the score is
    ``trend_i * log1p(rate_short_i)`` so a blip of two sales does not top the list.

    Parameters
    ----------
    short_half_life_days, long_half_life_days : float
    prior : float
        Additive smoothing, in events per day.

    Attributes
    ----------
    trend_ : ndarray, shape (n_items,), float64
    popularity_ : ndarray, shape (n_items,), float64
        The trending score.
    """

    def __init__(
        self, short_half_life_days: float = 7.0, long_half_life_days: float = 28.0, prior: float = 0.5
    ) -> None:
        self.short_half_life_days = short_half_life_days
        self.long_half_life_days = long_half_life_days
        self.prior = prior

    def _item_scores(self, X: sp.csr_matrix, events: tuple[Any, Any, Any, Any] | None) -> np.ndarray:
        """The trending score; without event arrays the trend is flat (column sums for both rates)."""
        if events is not None:
            item_idx, timestamps, weights, now = events
            n_items = X.shape[1]
            short = decayed_counts(item_idx, timestamps, n_items, self.short_half_life_days, now, weights)
            long = decayed_counts(item_idx, timestamps, n_items, self.long_half_life_days, now, weights)
            rate_s = short * np.log(2) / self.short_half_life_days
            rate_l = long * np.log(2) / self.long_half_life_days
        else:
            rate_s = rate_l = np.asarray(X.sum(axis=0), dtype=np.float64).ravel()
        # Removals can outweigh adds; a net negative rate is no trend (and would break the log).
        rate_s, rate_l = np.maximum(rate_s, 0.0), np.maximum(rate_l, 0.0)
        self.trend_ = (rate_s + self.prior) / (rate_l + self.prior)
        return self.trend_ * np.log1p(rate_s)


class BuyItAgainRecommender(BaseRecommender):
    """The shopper's own history, ranked by how due each item is for a repurchase.

    ``score(u, i) = x_ui ** alpha * (1 + interval_weight * due(u, i))`` where ``x_ui`` is the
    (possibly decayed) strength from the history row and ``due`` in (0, 1] peaks when the time
    since the last purchase equals the item's typical repurchase interval:
    ``due = exp(-log(elapsed / interval) ** 2 / 2)``. Without event times ``due`` is 0.
    Items outside the history score 0, so use ``filter_already_liked=False``.

    Parameters
    ----------
    alpha : float, default 1.0
    interval_weight : float, default 1.0

    Attributes
    ----------
    last_purchase_ : csr_matrix, shape (n_users, n_items), float64
        Epoch seconds of each pair's latest event (training users).
    item_interval_ : ndarray, shape (n_items,), float64
        Median gap in seconds between repeat purchases of the item (``nan`` if never repeated).
    now_ : float
    """

    def __init__(self, alpha: float = 1.0, interval_weight: float = 1.0) -> None:
        self.alpha = alpha
        self.interval_weight = interval_weight

    def fit(
        self,
        X: Any,
        user_idx: Any = None,
        item_idx: Any = None,
        timestamps: Any = None,
        now: float | None = None,
        **fit_params: Any,
    ) -> BuyItAgainRecommender:
        """Learn repurchase intervals from event arrays (optional), shape (n_events,)."""
        X = check_csr(X)
        n_users, n_items = X.shape
        self.n_items_ = n_items
        self.item_interval_ = np.full(n_items, np.nan)
        self.last_purchase_ = sp.csr_matrix((n_users, n_items), dtype=np.float64)
        self.now_ = 0.0 if now is None else float(now)
        if user_idx is None or item_idx is None or timestamps is None:
            return self
        u = np.asarray(user_idx, dtype=np.int64)
        i = np.asarray(item_idx, dtype=np.int64)
        t = np.asarray(timestamps, dtype=np.float64)
        if now is None:
            self.now_ = float(t.max()) if t.size else 0.0
        order = np.lexsort((t, i, u))
        u, i, t = u[order], i[order], t[order]
        same = (u[1:] == u[:-1]) & (i[1:] == i[:-1])
        gaps = (t[1:] - t[:-1])[same]
        gap_items = i[1:][same]
        ok = gaps > 0
        if ok.any():
            o = np.lexsort((gaps[ok], gap_items[ok]))
            gi, gv = gap_items[ok][o], gaps[ok][o]
            starts = np.flatnonzero(np.r_[True, gi[1:] != gi[:-1]])
            ends = np.r_[starts[1:], gi.size]
            self.item_interval_[gi[starts]] = gv[(starts + ends - 1) // 2]
        last = np.r_[~same, True]
        self.last_purchase_ = sp.csr_matrix((t[last], (u[last], i[last])), shape=(n_users, n_items))
        return self

    def _score(self, user_ids: np.ndarray, X_rows: sp.csr_matrix) -> np.ndarray:
        base = X_rows.toarray().astype(np.float64)
        base = np.power(np.maximum(base, 0), self.alpha)
        if self.interval_weight and self.last_purchase_.nnz:
            known = (user_ids >= 0) & (user_ids < self.last_purchase_.shape[0])
            last = np.zeros_like(base)
            if known.any():
                last[known] = self.last_purchase_[user_ids[known]].toarray()
            interval = self.item_interval_[None, :]
            elapsed = self.now_ - last
            valid = (last > 0) & np.isfinite(interval) & (elapsed > 0)
            due = np.zeros_like(base)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.log(np.where(valid, elapsed / np.where(np.isfinite(interval), interval, 1.0), 1.0))
            due[valid] = np.exp(-(ratio[valid] ** 2) / 2)
            base = base * (1.0 + self.interval_weight * due)
        return base
