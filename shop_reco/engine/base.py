"""The one base class every shop_reco recommender implements.

The Django layer lists algorithms by dotted path (``"shop_reco.engine.item_knn.ItemKNN"``), builds
them with keyword hyperparameters, calls ``fit`` on a users x items CSR matrix and then
``recommend`` / ``similar_items``. Everything here is numpy/scipy only.

Conventions (scikit-learn's, and implicit's ``RecommenderBase``):

- ``__init__`` stores hyperparameters only, under the same names as its arguments;
- ``fit(X, **fit_params) -> self``; learned state lives in attributes ending in ``_``;
- randomness goes through a ``random_state`` hyperparameter;
- ``recommend`` has one code path: a single user is a batch of one;
- ``save``/``load`` use ``np.savez`` and ``allow_pickle=False`` (never pickle).
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

__all__ = [
    "BaseRecommender",
    "NotFittedError",
    "check_csr",
    "import_recommender",
    "top_n",
]

# Users are scored in chunks so a batch over a large catalogue never allocates more than about
# this many float32 scores at once.
_SCORE_CHUNK_CELLS = 8_000_000


class NotFittedError(RuntimeError):
    """Raised when a recommender is used before ``fit``."""


def check_csr(X: Any, *, n_cols: int | None = None, dtype: Any = np.float32) -> sp.csr_matrix:
    """Return ``X`` as a canonical ``scipy.sparse.csr_matrix`` of ``dtype``.

    Parameters
    ----------
    X : sparse matrix, dense array or array-like, shape (n_rows, n_cols)
    n_cols : int, optional
        Expected number of columns; a mismatch raises ``ValueError``.
    dtype : numpy dtype, default float32

    Raises
    ------
    ValueError
        When ``X`` holds NaN or infinity, or has the wrong number of columns.
    """
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=dtype)
    else:
        X = sp.csr_matrix(np.atleast_2d(np.asarray(X, dtype=dtype)))
    if not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
    if not np.isfinite(X.data).all():
        # NaN or infinity would spread through every similarity and score without an error.
        raise ValueError("X contains NaN or infinity; interaction strengths must be finite")
    if n_cols is not None and X.shape[1] != n_cols:
        raise ValueError(f"expected {n_cols} item columns, got {X.shape[1]}")
    return X


def top_n(scores: np.ndarray, N: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``N`` columns per row of a dense score matrix, best first.

    Parameters
    ----------
    scores : ndarray, shape (n_rows, n_items), float
        ``-inf`` marks a column that must not be returned.
    N : int

    Returns
    -------
    ids : ndarray, shape (n_rows, min(N, n_items)), int32
        Column indices, ``-1`` where fewer than ``N`` columns were allowed.
    values : ndarray, shape (n_rows, min(N, n_items)), float32
        Their scores, ``-inf`` where ``ids`` is ``-1``.
    """
    n_rows, n_items = scores.shape
    n = max(0, min(int(N), n_items))
    if n == 0:
        return np.empty((n_rows, 0), np.int32), np.empty((n_rows, 0), np.float32)
    if n < n_items:
        part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    else:
        part = np.broadcast_to(np.arange(n_items), (n_rows, n_items))
    vals = np.take_along_axis(scores, part, axis=1)
    # Sort by score, ties by item index, so the order never depends on the partition's whims.
    order = np.lexsort((part, -vals), axis=1) if n_rows else np.empty((0, n), np.intp)
    ids = np.take_along_axis(part, order, axis=1).astype(np.int32)
    vals = np.take_along_axis(vals, order, axis=1).astype(np.float32)
    ids[~np.isfinite(vals) & (vals < 0)] = -1
    return ids, vals


def import_recommender(dotted_path: str) -> type[BaseRecommender]:
    """Import a recommender class from its dotted path, e.g. ``shop_reco.engine.item_knn.ItemKNN``."""
    module_name, _, attr = dotted_path.rpartition(".")
    if not module_name:
        raise ImportError(f"{dotted_path!r} is not a dotted path")
    cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, BaseRecommender)):
        raise TypeError(f"{dotted_path!r} is not a BaseRecommender subclass")
    return cls


def _dotted(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


class BaseRecommender:
    """Base class of all shop_reco recommenders.

    A subclass implements ``fit`` and ``_score``; it may override ``similar_items``.

    Attributes
    ----------
    n_items_ : int
        Number of item columns seen in ``fit``.
    """

    #: Whether scores depend on the shopper's history (False for popularity / trending).
    personalised: ClassVar[bool] = True

    n_items_: int

    # -- hyperparameters ---------------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        ]

    def get_params(self) -> dict[str, Any]:
        """Hyperparameters as given to ``__init__``."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> BaseRecommender:
        """Set hyperparameters; unknown names raise ``ValueError``."""
        valid = set(self._param_names())
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"{type(self).__name__} has no hyperparameter {key!r}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- to implement ------------------------------------------------------------------------------
    def fit(self, X: sp.spmatrix, **fit_params: Any) -> BaseRecommender:
        """Learn from a users x items matrix.

        Parameters
        ----------
        X : csr_matrix, shape (n_users, n_items), float32
            Interaction strengths (see :mod:`shop_reco.engine.interactions`).
        """
        raise NotImplementedError

    def _score(self, user_ids: np.ndarray, X_rows: sp.csr_matrix) -> np.ndarray:
        """Scores of every item for a chunk of users.

        Parameters
        ----------
        user_ids : ndarray, shape (n,), int64
            Row indices into the training matrix, ``-1`` for a shopper unknown at fit time.
        X_rows : csr_matrix, shape (n, n_items), float32
            Their current histories.

        Returns
        -------
        ndarray, shape (n, n_items), float32 or float64
        """
        raise NotImplementedError

    # -- shared API --------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "n_items_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(X) first")

    def score(self, user_ids: Any, X_user_rows: Any) -> np.ndarray:
        """Raw scores of every item, shape (n_users, n_items), float32 (no filtering)."""
        self._check_fitted()
        ids, X_rows, _ = self._prepare_users(user_ids, X_user_rows)
        return np.asarray(self._score(ids, X_rows), dtype=np.float32)

    def _prepare_users(self, user_ids: Any, X_user_rows: Any) -> tuple[np.ndarray, sp.csr_matrix, bool]:
        X_rows = check_csr(X_user_rows, n_cols=self.n_items_)
        if user_ids is None:
            return np.full(X_rows.shape[0], -1, np.int64), X_rows, False
        single = np.ndim(user_ids) == 0
        ids = np.atleast_1d(np.asarray(user_ids, dtype=np.int64))
        if X_rows.shape[0] != ids.size:
            raise ValueError("X_user_rows must have one row per user id")
        return ids, X_rows, single

    def recommend(
        self,
        user_ids: int | Sequence[int] | np.ndarray | None,
        X_user_rows: Any,
        N: int = 10,
        filter_already_liked: bool = True,
        filter_items: Iterable[int] | np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``N`` items for one shopper or a batch.

        Parameters
        ----------
        user_ids : int or array-like of int, shape (n_users,)
            Training row of each shopper, ``-1`` (or ``None`` for all) when unknown at fit time.
        X_user_rows : csr_matrix, shape (n_users, n_items), float32
            Each shopper's current history; for a single ``user_ids`` a single row.
        N : int, default 10
        filter_already_liked : bool, default True
            Leave out items with a stored (non-zero) entry in the shopper's row.
        filter_items : array-like of int, optional
            Items never to return (e.g. out of stock).

        Returns
        -------
        ids : ndarray, shape (n_users, min(N, n_items)), int32
            Best first; ``-1`` pads rows with fewer allowed items. 1-D for a scalar ``user_ids``.
        scores : ndarray, same shape, float32
            ``-inf`` where ``ids`` is ``-1``.
        """
        self._check_fitted()
        ids, X_rows, single = self._prepare_users(user_ids, X_user_rows)
        n_items = self.n_items_
        blocked = None
        if filter_items is not None:
            blocked = np.asarray(
                list(filter_items) if not isinstance(filter_items, np.ndarray) else filter_items
            )
            blocked = blocked.astype(np.int64).ravel()
        chunk = max(1, _SCORE_CHUNK_CELLS // max(1, n_items))
        out_ids, out_scores = [], []
        for start in range(0, ids.size, chunk):
            stop = min(ids.size, start + chunk)
            rows = X_rows[start:stop]
            scores = np.array(self._score(ids[start:stop], rows), dtype=np.float32, copy=True)
            scores[~np.isfinite(scores)] = np.float32(-np.finfo(np.float32).max)
            if filter_already_liked:
                r = np.repeat(np.arange(stop - start), np.diff(rows.indptr))
                scores[r, rows.indices] = -np.inf
            if blocked is not None and blocked.size:
                scores[:, blocked] = -np.inf
            i, s = top_n(scores, N)
            out_ids.append(i)
            out_scores.append(s)
        if out_ids:
            all_ids, all_scores = np.vstack(out_ids), np.vstack(out_scores)
        else:
            n = max(0, min(int(N), n_items))
            all_ids, all_scores = np.empty((0, n), np.int32), np.empty((0, n), np.float32)
        if single:
            return all_ids[0], all_scores[0]
        return all_ids, all_scores

    def similar_items(
        self, item_ids: int | Sequence[int] | np.ndarray, N: int = 10
    ) -> tuple[np.ndarray, np.ndarray]:
        """Most similar items to each given item, the item itself excluded.

        The default scores an item as a one-item history, which suits every model.

        Parameters
        ----------
        item_ids : int or array-like of int, shape (n,)
        N : int, default 10

        Returns
        -------
        ids, scores : ndarray, shape (n, min(N, n_items)) (1-D for a scalar), int32 / float32
        """
        self._check_fitted()
        single = np.isscalar(item_ids)
        items = np.atleast_1d(np.asarray(item_ids, dtype=np.int64))
        X_rows = sp.csr_matrix(
            (np.ones(items.size, np.float32), (np.arange(items.size), items)),
            shape=(items.size, self.n_items_),
        )
        ids, scores = self.recommend(np.full(items.size, -1), X_rows, N=N, filter_already_liked=True)
        if single:
            return ids[0], scores[0]
        return ids, scores

    # -- persistence -------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write hyperparameters and learned state to an ``.npz`` file (no pickle).

        Learned attributes may be ndarrays (not of object dtype), CSR matrices, numbers, strings,
        ``None`` or JSON-able dicts / lists; nested recommenders (hybrid sources) are stored inline.
        """
        arrays: dict[str, np.ndarray] = {}
        _dump(self, "", arrays)
        np.savez(path, allow_pickle=False, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BaseRecommender:
        """Read a model written by :meth:`save`; the stored class must be a ``cls`` subclass."""
        path = os.fspath(path)
        if not path.endswith(".npz") and not os.path.exists(path):
            path += ".npz"
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        model = _restore("", arrays)
        if not isinstance(model, cls):
            raise TypeError(f"{path} holds a {type(model).__name__}, not a {cls.__name__}")
        return model


# -- (de)serialisation helpers -----------------------------------------------------------------------
def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def _encode_param(value: Any, prefix: str, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, BaseRecommender):
        _dump(value, prefix, arrays)
        return {"__estimator__": prefix}
    if (
        isinstance(value, list | tuple)
        and value
        and all(
            isinstance(v, list | tuple) and len(v) == 2 and isinstance(v[1], BaseRecommender) for v in value
        )
    ):
        out = []
        for i, (name, est) in enumerate(value):
            _dump(est, f"{prefix}{i}/", arrays)
            out.append([name, f"{prefix}{i}/"])
        return {"__estimators__": out}
    return value


def _decode_param(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, dict) and set(value) == {"__estimator__"}:
        return _restore(value["__estimator__"], arrays)
    if isinstance(value, dict) and set(value) == {"__estimators__"}:
        return [(name, _restore(p, arrays)) for name, p in value["__estimators__"]]
    return value


def _dump(model: BaseRecommender, prefix: str, arrays: dict[str, np.ndarray]) -> None:
    params = {k: _encode_param(v, f"{prefix}param.{k}/", arrays) for k, v in model.get_params().items()}
    arrays[prefix + "__class__"] = np.array(_dotted(model))
    arrays[prefix + "__params__"] = np.array(json.dumps(params, default=_json_default))
    scalars: dict[str, Any] = {}
    for name, value in vars(model).items():
        if not name.endswith("_") or name.startswith("_"):
            continue
        key = prefix + "attr." + name
        if sp.issparse(value):
            value = sp.csr_matrix(value)
            arrays[key + ".csr_data"] = value.data
            arrays[key + ".csr_indices"] = value.indices
            arrays[key + ".csr_indptr"] = value.indptr
            arrays[key + ".csr_shape"] = np.asarray(value.shape, np.int64)
        elif isinstance(value, np.ndarray):
            if value.dtype == object:
                raise TypeError(f"{name} is an object array; store a plain dtype")
            arrays[key + ".npy"] = value
        elif isinstance(value, BaseRecommender):
            _dump(value, key + "/", arrays)
            scalars[name] = {"__estimator__": key + "/"}
        else:
            scalars[name] = value
    arrays[prefix + "__scalars__"] = np.array(json.dumps(scalars, default=_json_default))


def _restore(prefix: str, arrays: dict[str, np.ndarray]) -> BaseRecommender:
    cls = import_recommender(str(arrays[prefix + "__class__"]))
    params = json.loads(str(arrays[prefix + "__params__"]))
    model = cls(**{k: _decode_param(v, arrays) for k, v in params.items()})
    for name, value in json.loads(str(arrays[prefix + "__scalars__"])).items():
        setattr(model, name, _decode_param(value, arrays))
    head = prefix + "attr."
    for key, value in arrays.items():
        if not key.startswith(head) or "/" in key[len(head) :]:
            continue
        rest = key[len(head) :]
        if rest.endswith(".npy"):
            setattr(model, rest[:-4], value)
        elif rest.endswith(".csr_data"):
            name = rest[: -len(".csr_data")]
            base = head + name
            shape = tuple(int(s) for s in arrays[base + ".csr_shape"])
            setattr(
                model,
                name,
                sp.csr_matrix(
                    (value, arrays[base + ".csr_indices"], arrays[base + ".csr_indptr"]), shape=shape
                ),
            )
    if hasattr(model, "_after_load"):
        model._after_load()
    return model
