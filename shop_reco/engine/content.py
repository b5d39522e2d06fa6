"""Content-based recommendations: TF-IDF text + one-hot attributes, centred-cosine profiles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from .base import BaseRecommender, check_csr, top_n
from .similarity import block_bounds, blockwise_topk, l2_normalise_rows, prepare_rows, similarity_block

__all__ = ["ContentRecommender", "build_item_features", "centred_cosine"]

# (key, text, attributes, category, price)
Product = tuple[str, str, Mapping[str, Any], str | None, float | None]


def build_item_features(
    products: Sequence[Product],
    *,
    text_weight: float = 1.0,
    attribute_weight: float = 1.0,
    category_weight: float = 1.0,
    price_bands: int = 5,
    max_features: int | None = 20_000,
    min_df: int = 1,
) -> tuple[sp.csr_matrix, list[str]]:
    """Item feature matrix from product records, in the order given.

    Each block (text TF-IDF, one-hot attributes, one-hot category, one-hot price quantile band)
    is L2-normalised per item and scaled by its weight before stacking.

    Parameters
    ----------
    products : sequence of (key, text, attributes, category, price)
    text_weight, attribute_weight, category_weight : float
    price_bands : int
        Quantile bands of price (0 disables).
    max_features, min_df : TF-IDF vocabulary limits.

    Returns
    -------
    features : csr_matrix, shape (n_items, n_features), float32
    names : list of str, length n_features
    """
    n = len(products)
    blocks: list[sp.csr_matrix] = []
    names: list[str] = []
    texts = [p[1] or "" for p in products]
    if text_weight and any(t.strip() for t in texts):
        vec = TfidfVectorizer(max_features=max_features, min_df=min_df, sublinear_tf=True)
        try:
            T = vec.fit_transform(texts)
            blocks.append(l2_normalise_rows(T) * text_weight)
            names += [f"text:{w}" for w in vec.get_feature_names_out()]
        except ValueError:  # empty vocabulary
            pass

    def one_hot(values: list[list[str]], prefix: str, weight: float) -> None:
        vocab: dict[str, int] = {}
        r, c = [], []
        for row, vals in enumerate(values):
            for v in vals:
                r.append(row)
                c.append(vocab.setdefault(v, len(vocab)))
        if not vocab or not weight:
            return
        M = sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(n, len(vocab)))
        blocks.append(l2_normalise_rows(M) * weight)
        names.extend(f"{prefix}:{v}" for v in vocab)

    one_hot(
        [[f"{k}={v}" for k, v in sorted((p[2] or {}).items())] for p in products], "attr", attribute_weight
    )
    one_hot([[str(p[3])] if p[3] is not None else [] for p in products], "category", category_weight)
    prices = np.array([np.nan if p[4] is None else float(p[4]) for p in products], dtype=np.float64)
    if price_bands and np.isfinite(prices).any():
        edges = np.nanquantile(prices, np.linspace(0, 1, price_bands + 1)[1:-1])
        bands = [
            [f"band{int(np.searchsorted(edges, x, side='right'))}"] if np.isfinite(x) else [] for x in prices
        ]
        one_hot(bands, "price", category_weight)
    if not blocks:
        return sp.csr_matrix((n, 0), dtype=np.float32), []
    return sp.csr_matrix(sp.hstack(blocks), dtype=np.float32), names


def centred_cosine(P: np.ndarray, F: sp.csr_matrix) -> np.ndarray:
    """Design notes' centred cosine of profile rows against item rows, means over all features.

    ``sum_k (u_k - mean(u)) (i_k - mean(i)) / (|u - mean(u)| |i - mean(i)|)``, computed without
    densifying ``F``. The profiles are dense, so they are centred outright; then the dot with an uncentred
    item row is already the centred dot (the centred profile sums to zero). Item norms add the squared
    deviations of the stored entries and ``mean(i)^2`` for each implicit zero: sums of non-negative terms, so
    near-constant rows lose no precision (``|i|^2 - D mean(i)^2`` cancels to noise on them).

    Parameters
    ----------
    P : ndarray, shape (n, D), float
    F : csr_matrix, shape (n_items, D)

    Returns
    -------
    ndarray, shape (n, n_items), float64
    """
    D = F.shape[1]
    P = np.asarray(P, dtype=np.float64)
    Fd = sp.csr_matrix(F, dtype=np.float64)
    if not Fd.has_canonical_format:  # duplicates would count twice as stored entries below
        Fd = Fd.copy()  # never reorder the caller's arrays, which a same-dtype conversion shares
        Fd.sum_duplicates()
    stored = np.diff(Fd.indptr)
    mu_f = np.asarray(Fd.sum(axis=1)).ravel() / max(D, 1)
    centred = P - P.mean(axis=1, keepdims=True)
    # The last term only takes back what rounding left in the centred rows' sums (zero in exact arithmetic).
    dots = np.asarray((Fd @ centred.T).T) - centred.sum(axis=1)[:, None] * mu_f[None, :]
    np_ = np.sqrt((centred**2).sum(axis=1))
    deviations = Fd.data - np.repeat(mu_f, stored)
    rows = np.repeat(np.arange(Fd.shape[0]), stored)
    nf = np.sqrt(np.bincount(rows, weights=deviations**2, minlength=Fd.shape[0]) + (D - stored) * mu_f**2)
    den = np_[:, None] * nf[None, :]
    return np.divide(dots, den, out=np.zeros_like(dots), where=den > 0)


class ContentRecommender(BaseRecommender):
    """Content-based scores from item features.

    A shopper's profile is the strength-weighted mean of the (L2-normalised) feature rows of the
    items in their history; items are scored with the design notes' centred cosine.
    ``similar_items`` uses the blockwise top-``K`` item-item cosine.

    Parameters
    ----------
    K : int, default 50
        Neighbours kept per item for ``similar_items``.
    text_weight, attribute_weight, category_weight, price_bands, max_features, min_df
        Passed to :func:`build_item_features` when ``fit`` gets ``products``.

    Attributes
    ----------
    item_features_ : csr_matrix, shape (n_items, n_features), float32
    similarity_ : csr_matrix, shape (n_items, n_items), float32
    """

    def __init__(
        self,
        K: int = 50,
        text_weight: float = 1.0,
        attribute_weight: float = 1.0,
        category_weight: float = 1.0,
        price_bands: int = 5,
        max_features: int | None = 20_000,
        min_df: int = 1,
    ) -> None:
        self.K = K
        self.text_weight = text_weight
        self.attribute_weight = attribute_weight
        self.category_weight = category_weight
        self.price_bands = price_bands
        self.max_features = max_features
        self.min_df = min_df

    def fit(
        self, X: Any, item_features: Any = None, products: Sequence[Product] | None = None, **fit_params: Any
    ) -> ContentRecommender:
        """Store item features (given, or built from ``products`` in item-index order).

        Parameters
        ----------
        X : csr_matrix, shape (n_users, n_items)
            Only its item count is used.
        item_features : csr_matrix, shape (n_items, n_features), optional
        products : sequence of (key, text, attributes, category, price), optional
        """
        X = check_csr(X)
        if item_features is None:
            if products is None:
                raise ValueError("ContentRecommender.fit needs item_features or products")
            item_features, _ = build_item_features(
                products,
                text_weight=self.text_weight,
                attribute_weight=self.attribute_weight,
                category_weight=self.category_weight,
                price_bands=self.price_bands,
                max_features=self.max_features,
                min_df=self.min_df,
            )
        F = l2_normalise_rows(sp.csr_matrix(item_features))
        if F.shape[0] != X.shape[1]:
            raise ValueError("item_features needs one row per item column of X")
        self.item_features_ = F
        spec = prepare_rows(F, None)
        assert spec.ET is not None
        bounds = block_bounds(spec.E, spec.ET)
        self.similarity_ = blockwise_topk(
            F.shape[0], F.shape[0], bounds, lambda s, e: similarity_block(spec.rows(s, e), spec), self.K
        )
        self.n_items_ = int(X.shape[1])
        return self

    def profiles(self, X_rows: sp.csr_matrix) -> np.ndarray:
        """Strength-weighted mean feature vector per history row, shape (n, n_features), float64."""
        W = sp.csr_matrix(X_rows, dtype=np.float64)
        totals = np.asarray(W.sum(axis=1)).ravel()
        P = np.asarray((W @ self.item_features_.astype(np.float64)).todense())
        return np.divide(P, totals[:, None], out=np.zeros_like(P), where=totals[:, None] > 0)

    def _score(self, user_ids: np.ndarray, X_rows: sp.csr_matrix) -> np.ndarray:
        return centred_cosine(self.profiles(X_rows), self.item_features_)

    def similar_items(self, item_ids: Any, N: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Stored top-``K`` cosine neighbours, best first."""
        self._check_fitted()
        single = np.ndim(item_ids) == 0
        items = np.atleast_1d(np.asarray(item_ids, dtype=np.int64))
        S = self.similarity_[items]
        scores = np.full(S.shape, -np.inf, dtype=np.float32)
        coo = S.tocoo()
        scores[coo.row, coo.col] = coo.data
        ids, vals = top_n(scores, N)
        return (ids[0], vals[0]) if single else (ids, vals)
