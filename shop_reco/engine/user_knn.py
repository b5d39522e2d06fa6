"""User-based collaborative filtering: Pearson neighbours, ranking and rating prediction."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from .base import BaseRecommender, check_csr
from .similarity import (
    DEFAULT_BLOCK_FLOPS,
    SimilaritySpec,
    block_bounds,
    blockwise_topk,
    prepare_rows,
    similarity_block,
)

__all__ = ["UserKNN", "UserKNNRating", "user_similarity_spec"]

# "pearson" centring choices: "common" = over co-rated items (scikit-surprise), "interacted" =
# each user's mean over the items they rated, "all" = over every item, zeros included.
CENTRINGS = ("common", "interacted", "all")


def user_similarity_spec(
    X: sp.csr_matrix, similarity: str, centring: str, shrinkage: float
) -> SimilaritySpec:
    """User rows prepared for :func:`~shop_reco.engine.similarity.similarity_block`.

    Parameters
    ----------
    X : csr_matrix, shape (n_users, n_items)
    similarity : {"pearson", "cosine"}
    centring : {"common", "interacted", "all"}
        For Pearson (see module constants).
    """
    if similarity == "cosine":
        return prepare_rows(X, None, shrinkage=shrinkage)
    if similarity != "pearson":
        raise ValueError("similarity must be 'pearson' or 'cosine'")
    if centring not in CENTRINGS:
        raise ValueError(f"centring must be one of {CENTRINGS}")
    if centring == "common":
        return prepare_rows(X, "common")
    return prepare_rows(X, centring, shrinkage=shrinkage, dtype=np.float64)


class _UserNeighbours(BaseRecommender):
    """Shared fit: training rows plus the blockwise top-K user similarity."""

    K: int
    similarity: str
    centring: str
    shrinkage: float
    min_support: int
    n_threads: int | None
    block_flops: int

    def _fit_neighbours(self, X: sp.csr_matrix, K: int | None) -> None:
        spec = user_similarity_spec(X, self.similarity, self.centring, self.shrinkage)
        self._spec = spec
        n_users = X.shape[0]
        assert spec.ET is not None
        right = spec.binary_T if spec.binary_T is not None else spec.ET
        left = spec.binary if spec.binary is not None else spec.E
        bounds = block_bounds(left, right, int(self.block_flops))

        def block(start: int, stop: int) -> sp.csr_matrix:
            return similarity_block(
                spec.rows(start, stop), spec, shrinkage=self.shrinkage, min_support=self.min_support
            )

        k = n_users if K is None else max(1, int(K))
        self.similarity_ = blockwise_topk(n_users, n_users, bounds, block, k, n_threads=self.n_threads)

    def _after_load(self) -> None:
        if hasattr(self, "X_"):
            self._spec = user_similarity_spec(self.X_, self.similarity, self.centring, self.shrinkage)

    def _neighbours_of_rows(self, user_ids: np.ndarray, X_rows: sp.csr_matrix) -> sp.csr_matrix:
        """Top-K training neighbours of arbitrary history rows, shape (n, n_train_users)."""
        rows = user_similarity_spec(
            sp.csr_matrix(X_rows, dtype=np.float64), self.similarity, self.centring, self.shrinkage
        )
        S = similarity_block(rows, self._spec, shrinkage=self.shrinkage, min_support=self.min_support).tocoo()
        # The shopper's own training row is not a neighbour.
        own = user_ids[S.row] == S.col
        keep = (~own) & (S.data > 0)
        S = sp.csr_matrix((S.data[keep], (S.row[keep], S.col[keep])), shape=S.shape)
        from .similarity import topk_per_row

        cols, vals = topk_per_row(S, self.K, exclude_self=False)
        valid = cols >= 0
        indptr = np.concatenate(([0], np.cumsum(valid.sum(axis=1))))
        return sp.csr_matrix((vals[valid], cols[valid], indptr), shape=S.shape)


class UserKNN(_UserNeighbours):
    """User-based nearest neighbours for implicit feedback (top-N ranking).

    ``score(u, i) = sum over the K most similar users v of sim(u, v) * x_vi``. Neighbours of the
    shopper's current history row are found against the training users at ``recommend`` time, so
    one code path serves known and new shoppers.

    Parameters
    ----------
    K : int, default 50
    similarity : {"pearson", "cosine"}, default "pearson"
    centring : {"common", "interacted", "all"}, default "interacted"
        Which mean Pearson subtracts (design notes' ``mean(u)``).
    shrinkage : float, default 0.0
    min_support : int, default 1
        Pairs with fewer common items are not neighbours ("common" only).
    n_threads, block_flops : see :class:`~shop_reco.engine.item_knn.ItemKNN`.

    Attributes
    ----------
    X_ : csr_matrix, shape (n_users, n_items), float32
        Training matrix.
    similarity_ : csr_matrix, shape (n_users, n_users), float32
        Top-K neighbours of each training user.
    """

    def __init__(
        self,
        K: int = 50,
        similarity: str = "pearson",
        centring: str = "interacted",
        shrinkage: float = 0.0,
        min_support: int = 1,
        n_threads: int | None = None,
        block_flops: int = DEFAULT_BLOCK_FLOPS,
    ) -> None:
        self.K = K
        self.similarity = similarity
        self.centring = centring
        self.shrinkage = shrinkage
        self.min_support = min_support
        self.n_threads = n_threads
        self.block_flops = block_flops

    def fit(self, X: Any, **fit_params: Any) -> UserKNN:
        """Store the users x items matrix and compute each user's top-``K`` neighbours."""
        X = check_csr(X)
        self.X_ = X
        self._fit_neighbours(X, self.K)
        self.n_items_ = int(X.shape[1])
        return self

    def _score(self, user_ids: np.ndarray, X_rows: sp.csr_matrix) -> np.ndarray:
        S = self._neighbours_of_rows(user_ids, X_rows)
        return (S @ self.X_).toarray()


class UserKNNRating(_UserNeighbours):
    """Mean-centred user-based rating prediction (scikit-surprise's ``KNNWithMeans``).

    ``r_hat(u, i) = mean_u + sum_v sim(u, v) (r_vi - mean_v) / sum_v sim(u, v)`` over the ``k``
    users most similar to ``u`` among those who rated ``i`` (only positive similarities count);
    clipped to the rating range. Unknown users or items get the global mean.

    Parameters
    ----------
    k : int, default 40
        Neighbours used per prediction.
    min_k : int, default 1
        With fewer usable neighbours the prediction is the user's mean.
    similarity, centring, shrinkage, min_support : see :class:`UserKNN`
        Default ``centring="common"`` is surprise's Pearson over co-rated items.
    max_neighbours : int or None, default None
        Similarities kept per user (None: all); ``k`` is chosen among them.
    rating_range : (float, float) or None
        Clip bounds; None uses the training minimum and maximum.

    Attributes
    ----------
    X_ : csr_matrix, shape (n_users, n_items), float32
        Training ratings (a stored entry is a rating).
    means_ : ndarray, shape (n_users,), float64
    global_mean_ : float
    similarity_ : csr_matrix, shape (n_users, n_users), float32
    """

    def __init__(
        self,
        k: int = 40,
        min_k: int = 1,
        similarity: str = "pearson",
        centring: str = "common",
        shrinkage: float = 0.0,
        min_support: int = 1,
        max_neighbours: int | None = None,
        rating_range: tuple[float, float] | None = None,
        n_threads: int | None = None,
        block_flops: int = DEFAULT_BLOCK_FLOPS,
    ) -> None:
        self.k = k
        self.min_k = min_k
        self.similarity = similarity
        self.centring = centring
        self.shrinkage = shrinkage
        self.min_support = min_support
        self.max_neighbours = max_neighbours
        self.rating_range = rating_range
        self.n_threads = n_threads
        self.block_flops = block_flops

    @property
    def K(self) -> int:  # type: ignore[override]
        return int(self.k)

    def fit(self, X: Any, **fit_params: Any) -> UserKNNRating:
        """Learn from a users x items rating matrix (stored entry = rating), shape (n_users, n_items)."""
        X = check_csr(X)
        self.X_ = X
        counts = np.diff(X.indptr)
        sums = np.asarray(X.sum(axis=1), dtype=np.float64).ravel()
        self.means_ = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
        self.global_mean_ = float(X.data.mean()) if X.nnz else 0.0
        lo, hi = (
            self.rating_range
            if self.rating_range
            else ((float(X.data.min()), float(X.data.max())) if X.nnz else (0.0, 0.0))
        )
        self.rating_min_, self.rating_max_ = float(lo), float(hi)
        self._fit_neighbours(X, self.max_neighbours)
        self.n_items_ = int(X.shape[1])
        return self

    def predict(self, user_idx: Any, item_idx: Any) -> np.ndarray:
        """Predicted ratings for (user, item) pairs.

        Parameters
        ----------
        user_idx, item_idx : array-like of int, shape (n,)
            Training indices; ``-1`` or out of range = unknown.

        Returns
        -------
        ndarray, shape (n,), float64
        """
        self._check_fitted()
        u = np.atleast_1d(np.asarray(user_idx, dtype=np.int64))
        i = np.atleast_1d(np.asarray(item_idx, dtype=np.int64))
        n_users = self.X_.shape[0]
        est = np.full(u.size, self.global_mean_, dtype=np.float64)
        known = (u >= 0) & (u < n_users) & (i >= 0) & (i < self.n_items_)
        Xc = sp.csc_matrix(self.X_)
        S = self.similarity_
        order = np.flatnonzero(known)
        order = order[np.argsort(i[order], kind="stable")]
        items_sorted = i[order]
        starts = np.flatnonzero(np.r_[True, items_sorted[1:] != items_sorted[:-1]])
        ends = np.r_[starts[1:], items_sorted.size]
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            pos = order[s:e]
            item = int(items_sorted[s])
            raters = Xc.indices[Xc.indptr[item] : Xc.indptr[item + 1]]
            ratings = Xc.data[Xc.indptr[item] : Xc.indptr[item + 1]].astype(np.float64)
            users = u[pos]
            base = self.means_[users]
            if raters.size == 0:
                est[pos] = base
                continue
            sims = S[users][:, raters].toarray().astype(np.float64)  # (n_pairs, n_raters)
            dev = ratings - self.means_[raters]
            k = int(self.k)
            if raters.size > k:
                top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
                sims = np.take_along_axis(sims, top, axis=1)
                dev_sel = dev[top]
            else:
                dev_sel = np.broadcast_to(dev, sims.shape)
            pos_sim = np.where(sims > 0, sims, 0.0)
            actual_k = (sims > 0).sum(axis=1)
            num = (pos_sim * dev_sel).sum(axis=1)
            den = pos_sim.sum(axis=1)
            adj = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
            adj[actual_k < self.min_k] = 0.0
            est[pos] = base + adj
        return np.clip(est, self.rating_min_, self.rating_max_)

    def _score(self, user_ids: np.ndarray, X_rows: sp.csr_matrix) -> np.ndarray:
        # Ranking by predicted rating; unknown shoppers fall back on neighbour-weighted deviations.
        S = self._neighbours_of_rows(user_ids, X_rows)
        dev = self.X_.copy().astype(np.float64)
        dev.data -= np.repeat(self.means_, np.diff(dev.indptr))
        num = (S @ dev).toarray()
        mask = self.X_.copy()
        mask.data = np.ones_like(mask.data)
        den = (S @ mask).toarray()
        counts = np.diff(X_rows.indptr)
        sums = np.asarray(X_rows.sum(axis=1), dtype=np.float64).ravel()
        mean = np.divide(sums, counts, out=np.full_like(sums, self.global_mean_), where=counts > 0)
        return mean[:, None] + np.divide(num, den, out=np.zeros_like(num), where=den > 0)
