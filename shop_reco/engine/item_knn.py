"""Item-based collaborative filtering with top-K neighbours computed blockwise."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from .base import BaseRecommender, check_csr, top_n
from .similarity import (
    DEFAULT_BLOCK_FLOPS,
    SimilaritySpec,
    block_bounds,
    blockwise_topk,
    bm25_weight,
    cancel,
    centre_rows,
    default_threads,
    prepare_rows,
    similarity_block,
    tfidf_weight,
)

__all__ = ["ItemKNN", "item_similarity_spec"]

SIMILARITIES = ("cosine", "adjusted_cosine", "pearson", "dot")
WEIGHTINGS = (None, "tfidf", "bm25")
CENTRINGS = ("interacted", "all")


def item_similarity_spec(
    X: sp.csr_matrix,
    similarity: str = "cosine",
    centring: str = "interacted",
    weighting: str | None = None,
    bm25_K1: float = 1.2,
    bm25_B: float = 0.75,
    shrinkage: float = 0.0,
) -> SimilaritySpec:
    """Item rows (items x users) prepared for the chosen similarity.

    Parameters
    ----------
    X : csr_matrix, shape (n_users, n_items)
    similarity : {"cosine", "adjusted_cosine", "pearson", "dot"}
        ``adjusted_cosine`` centres each user's values by the user's mean (design notes);
        ``pearson`` centres each item's values by the item's mean.
    centring : {"interacted", "all"}
        Mean over the stored entries only, or over every entry with zeros included.
    weighting : {None, "tfidf", "bm25"}
        Applied to the items x users matrix first (implicit's weighting).
    shrinkage : float
        With 0 the rows can be normalised up front.
    """
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {SIMILARITIES}")
    if centring not in CENTRINGS:
        raise ValueError(f"centring must be one of {CENTRINGS}")
    # Work on the users x items orientation (W) and convert once: items are the entities.
    W = sp.csr_matrix(X, dtype=np.float32)
    if weighting == "tfidf":
        W = tfidf_weight(W, entities_are_rows=False)
    elif weighting == "bm25":
        W = bm25_weight(W, bm25_K1, bm25_B, entities_are_rows=False)
    elif weighting is not None:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}")
    if similarity == "adjusted_cosine" and centring == "interacted":
        W = sp.csr_matrix(centre_rows(W), dtype=np.float32)
    E = sp.csr_matrix(W.T)  # items x users
    if similarity in ("cosine", "dot") or (similarity == "adjusted_cosine" and centring == "interacted"):
        return prepare_rows(E, None, ET=W, shrinkage=shrinkage if similarity != "dot" else 1.0)
    if similarity == "pearson":
        if centring == "interacted":
            return prepare_rows(E, "interacted", shrinkage=shrinkage)
        return prepare_rows(E, "all", ET=W)
    # adjusted cosine centred over all items, zeros included:
    # sum_u (r_ui - m_u)(r_uj - m_u) = G_ij - a_i - a_j + c,  a = W.T m,  c = sum_u m_u^2.
    m = np.asarray(W.sum(axis=1), dtype=np.float64).ravel() / max(W.shape[1], 1)
    a = np.asarray(E @ m).ravel()
    c = float(np.sum(m**2))
    sq_raw = np.bincount(
        np.repeat(np.arange(E.shape[0]), np.diff(E.indptr)),
        weights=E.data.astype(np.float64) ** 2,
        minlength=E.shape[0],
    )
    return SimilaritySpec(E=E, ET=W, lin=-a, const=c, sq=cancel(sq_raw + c, 2 * a))


class ItemKNN(BaseRecommender):
    """Item-based nearest neighbours.

    ``similarity_[i, j]`` is the similarity of item ``j`` to item ``i`` for the ``K`` best ``j``;
    a shopper with history row ``x`` gets ``score = x @ similarity_`` (each item in the history
    votes for its neighbours with its strength).

    Parameters
    ----------
    K : int, default 50
        Neighbours kept per item.
    similarity : {"cosine", "adjusted_cosine", "pearson", "dot"}, default "cosine"
    centring : {"interacted", "all"}, default "interacted"
        For ``adjusted_cosine`` / ``pearson``: which entries the mean runs over.
    weighting : {None, "tfidf", "bm25"}, default None
    shrinkage : float, default 0.0
        Added to the denominator of the similarity.
    bm25_K1, bm25_B : float
        BM25 parameters.
    alpha : float, default 1.0
        Scores use ``x ** alpha`` (``alpha < 1`` damps heavy repeat buyers).
    normalise_scores : bool, default False
        Divide each score by the summed similarity mass it came from (rating-style average).
    n_threads : int or None
        Threads for the blockwise fit; None uses the available cores (at most 4).
    block_flops : int
        Multiply-adds per block, the memory bound of the fit.

    Attributes
    ----------
    similarity_ : csr_matrix, shape (n_items, n_items), float32
    n_items_ : int
    """

    def __init__(
        self,
        K: int = 50,
        similarity: str = "cosine",
        centring: str = "interacted",
        weighting: str | None = None,
        shrinkage: float = 0.0,
        bm25_K1: float = 1.2,
        bm25_B: float = 0.75,
        alpha: float = 1.0,
        normalise_scores: bool = False,
        n_threads: int | None = None,
        block_flops: int = DEFAULT_BLOCK_FLOPS,
    ) -> None:
        self.K = K
        self.similarity = similarity
        self.centring = centring
        self.weighting = weighting
        self.shrinkage = shrinkage
        self.bm25_K1 = bm25_K1
        self.bm25_B = bm25_B
        self.alpha = alpha
        self.normalise_scores = normalise_scores
        self.n_threads = n_threads
        self.block_flops = block_flops

    def fit(self, X: Any, **fit_params: Any) -> ItemKNN:
        """Compute the top-``K`` item neighbours of a users x items matrix, shape (n_users, n_items)."""
        X = check_csr(X)
        spec = item_similarity_spec(
            X, self.similarity, self.centring, self.weighting, self.bm25_K1, self.bm25_B, self.shrinkage
        )
        assert spec.ET is not None
        bounds = block_bounds(spec.E, spec.ET, self._budget(spec))
        normalise = self.similarity != "dot"

        def block(start: int, stop: int) -> sp.csr_matrix:
            return similarity_block(
                spec.rows(start, stop), spec, shrinkage=self.shrinkage, normalise=normalise
            )

        n_items = X.shape[1]
        self.similarity_ = blockwise_topk(
            n_items, n_items, bounds, block, max(1, int(self.K)), n_threads=self.n_threads
        )
        self.n_items_ = n_items
        return self

    def _budget(self, spec: SimilaritySpec) -> int:
        # At least four blocks per thread: the selection of one overlaps the matmul of the next, and
        # smaller dense blocks stay in cache.
        assert spec.ET is not None
        total = int(np.diff(spec.ET.indptr).astype(np.int64)[spec.E.indices].sum())
        return max(100_000, min(int(self.block_flops), total // (4 * default_threads(self.n_threads)) + 1))

    def _score(self, user_ids: np.ndarray, X_rows: sp.csr_matrix) -> np.ndarray:
        rows = X_rows
        if self.alpha != 1.0:
            rows = rows.copy()
            rows.data = np.power(np.maximum(rows.data, 0), self.alpha, dtype=np.float32)
        scores = (rows @ self.similarity_).toarray()
        if self.normalise_scores:
            mass = rows.copy()
            mass.data = np.ones_like(mass.data)
            S = abs(self.similarity_)
            den = (mass @ S).toarray()
            scores = np.divide(scores, den, out=np.zeros_like(scores), where=den > 0)
        return scores

    def similar_items(self, item_ids: Any, N: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Stored neighbours of each item, best first (see :meth:`BaseRecommender.similar_items`)."""
        self._check_fitted()
        single = np.ndim(item_ids) == 0
        items = np.atleast_1d(np.asarray(item_ids, dtype=np.int64))
        X_rows = sp.csr_matrix(
            (np.ones(items.size, np.float32), (np.arange(items.size), items)),
            shape=(items.size, self.n_items_),
        )
        scores = (X_rows @ self.similarity_).toarray()
        # Only stored neighbours count; everything else is "not similar".
        mask = (X_rows @ (self.similarity_ != 0).astype(np.float32)).toarray() == 0
        scores[mask] = -np.inf
        scores[np.arange(items.size), items] = -np.inf
        ids, vals = top_n(scores, N)
        return (ids[0], vals[0]) if single else (ids, vals)
