"""Latent-factor candidate sources: implicit ALS (Hu, Koren, Volinsky 2008) and PureSVD."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.utils.extmath import randomized_svd

from .base import BaseRecommender, check_csr

__all__ = ["ImplicitALS", "PureSVD"]


def _cg_solve(
    X: sp.csr_matrix, Y: np.ndarray, factors: np.ndarray, reg: float, alpha: float, steps: int
) -> np.ndarray:
    """A few conjugate-gradient steps of every row's HKV normal equations at once.

    Row ``u`` solves ``(Y^T C_u Y + reg I) x_u = Y^T C_u p_u`` with ``C_u = 1 + alpha * x_u``
    (confidence) and ``p_u`` the 0/1 preference, warm-started at ``factors[u]``.

    Parameters
    ----------
    X : csr_matrix, shape (n_rows, n_cols), float32
    Y : ndarray, shape (n_cols, f), float64
    factors : ndarray, shape (n_rows, f), float64
    """
    YtY = Y.T @ Y + reg * np.eye(Y.shape[1])
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    cols = X.indices
    conf_minus_1 = alpha * X.data.astype(np.float64)

    def apply(V: np.ndarray) -> np.ndarray:
        # A_u v = YtY v + sum_i (c_ui - 1) (y_i . v) y_i
        d = conf_minus_1 * np.einsum("nf,nf->n", Y[cols], V[rows])
        return V @ YtY + sp.csr_matrix((d, (rows, cols)), shape=X.shape) @ Y

    b = sp.csr_matrix(((1.0 + conf_minus_1), (rows, cols)), shape=X.shape) @ Y
    x = factors
    r = b - apply(x)
    p = r.copy()
    rs = np.einsum("uf,uf->u", r, r)
    for _ in range(steps):
        Ap = apply(p)
        pAp = np.einsum("uf,uf->u", p, Ap)
        a = np.divide(rs, pAp, out=np.zeros_like(rs), where=pAp > 1e-20)
        x = x + a[:, None] * p
        r = r - a[:, None] * Ap
        rs_new = np.einsum("uf,uf->u", r, r)
        beta = np.divide(rs_new, rs, out=np.zeros_like(rs), where=rs > 1e-20)
        p = r + beta[:, None] * p
        rs = rs_new
    return x


class ImplicitALS(BaseRecommender):
    """Implicit-feedback matrix factorisation by alternating least squares with CG.

    Parameters
    ----------
    factors : int, default 64
    regularization : float, default 0.01
    alpha : float, default 1.0
        Confidence ``c = 1 + alpha * x``.
    iterations : int, default 15
    cg_steps : int, default 3
    random_state : int or None

    Attributes
    ----------
    user_factors_ : ndarray, shape (n_users, factors), float32
    item_factors_ : ndarray, shape (n_items, factors), float32
    """

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.01,
        alpha: float = 1.0,
        iterations: int = 15,
        cg_steps: int = 3,
        random_state: int | None = None,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.cg_steps = cg_steps
        self.random_state = random_state

    def fit(self, X: Any, **fit_params: Any) -> ImplicitALS:
        """Factorise a users x items matrix, shape (n_users, n_items)."""
        X = check_csr(X)
        rng = np.random.default_rng(self.random_state)
        n_users, n_items = X.shape
        U = rng.normal(scale=0.01, size=(n_users, self.factors))
        V = rng.normal(scale=0.01, size=(n_items, self.factors))
        XT = sp.csr_matrix(X.T)
        for _ in range(int(self.iterations)):
            U = _cg_solve(X, V, U, self.regularization, self.alpha, self.cg_steps)
            V = _cg_solve(XT, U, V, self.regularization, self.alpha, self.cg_steps)
        self.user_factors_ = U.astype(np.float32)
        self.item_factors_ = V.astype(np.float32)
        self.n_items_ = n_items
        return self

    def _user_vectors(self, user_ids: np.ndarray, X_rows: sp.csr_matrix) -> np.ndarray:
        # Always fold in from the given history (exact solve), so known and new shoppers share a path.
        V = self.item_factors_.astype(np.float64)
        x0 = np.zeros((X_rows.shape[0], V.shape[1]))
        return _cg_solve(X_rows, V, x0, self.regularization, self.alpha, max(self.factors, 8))

    def _score(self, user_ids: np.ndarray, X_rows: sp.csr_matrix) -> np.ndarray:
        return self._user_vectors(user_ids, X_rows) @ self.item_factors_.T.astype(np.float64)

    def similar_items(self, item_ids: Any, N: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Cosine of item factors, the item itself excluded."""
        self._check_fitted()
        from .base import top_n

        single = np.ndim(item_ids) == 0
        items = np.atleast_1d(np.asarray(item_ids, dtype=np.int64))
        V = self.item_factors_.astype(np.float64)
        norms = np.linalg.norm(V, axis=1)
        norms[norms == 0] = 1.0
        scores = (V[items] @ V.T) / norms[items, None] / norms[None, :]
        scores[np.arange(items.size), items] = -np.inf
        ids, vals = top_n(scores, N)
        return (ids[0], vals[0]) if single else (ids, vals)


class PureSVD(BaseRecommender):
    """Truncated SVD of the interaction matrix; ``score = x V V^T`` (Cremonesi et al. 2010).

    The design notes factorise with ``scipy.sparse.linalg.svds``; a randomised SVD gives the same
    subspace faster and deterministically through ``random_state``.

    Parameters
    ----------
    factors : int, default 50
    random_state : int or None

    Attributes
    ----------
    item_factors_ : ndarray, shape (n_items, factors), float32
        Right singular vectors.
    singular_values_ : ndarray, shape (factors,), float32
    """

    def __init__(self, factors: int = 50, random_state: int | None = 0) -> None:
        self.factors = factors
        self.random_state = random_state

    def fit(self, X: Any, **fit_params: Any) -> PureSVD:
        """Decompose a users x items matrix, shape (n_users, n_items)."""
        X = check_csr(X)
        k = max(1, min(int(self.factors), min(X.shape) - 1 if min(X.shape) > 1 else 1))
        _, s, VT = randomized_svd(X.astype(np.float64), k, random_state=self.random_state)
        self.item_factors_ = VT.T.astype(np.float32)
        self.singular_values_ = s.astype(np.float32)
        self.n_items_ = int(X.shape[1])
        return self

    def _score(self, user_ids: np.ndarray, X_rows: sp.csr_matrix) -> np.ndarray:
        V = self.item_factors_.astype(np.float64)
        return np.asarray(X_rows @ V) @ V.T
