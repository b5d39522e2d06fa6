"""From raw events to matrices: id maps, users x items strengths, baskets x items.

Kept apart from the models (lightfm's ``Dataset``): models see integer indices only; the
:class:`IdMap` objects translate shop keys (strings) to rows / columns and back.

Inputs are plain sequences or numpy arrays, one entry per event, as the Django layer reads them
from ``Event`` rows: ``event_type`` (str), user key (str), ``product_key`` (str), ``quantity``,
``occurred_at`` (datetime or epoch seconds) and ``basket_ref`` (str).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = [
    "DEFAULT_EVENT_WEIGHTS",
    "Baskets",
    "IdMap",
    "Interactions",
    "build_baskets",
    "build_interactions",
    "to_epoch_seconds",
]

DEFAULT_EVENT_WEIGHTS: dict[str, float] = {"view": 1.0, "cart": 3.0, "wishlist": 2.0, "purchase": 5.0}
DAY = 86_400.0


def to_epoch_seconds(values: Any) -> np.ndarray:
    """Epoch seconds (float64) from datetimes (naive = UTC), datetime64 or numbers.

    Parameters
    ----------
    values : sequence, shape (n,)

    Returns
    -------
    ndarray, shape (n,), float64
    """
    arr = np.asarray(values)
    if arr.dtype.kind == "M":
        return arr.astype("datetime64[us]").astype(np.int64) / 1e6
    if arr.dtype.kind in "fiu":
        return arr.astype(np.float64)
    out = np.empty(arr.size, dtype=np.float64)
    for i, v in enumerate(arr.ravel().tolist()):
        if isinstance(v, _dt.datetime):
            if v.tzinfo is None:
                v = v.replace(tzinfo=_dt.UTC)
            out[i] = v.timestamp()
        elif isinstance(v, _dt.date):
            out[i] = _dt.datetime(v.year, v.month, v.day, tzinfo=_dt.UTC).timestamp()
        elif isinstance(v, str):
            out[i] = to_epoch_seconds(np.array([np.datetime64(v)]))[0]
        else:
            out[i] = float(v)
    return out


class IdMap:
    """Bidirectional map between string keys and contiguous indices ``0..n-1``.

    Parameters
    ----------
    keys : iterable of str, optional
        Initial keys, indexed in order of first appearance.
    """

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self.keys: list[str] = []
        self.index: dict[str, int] = {}
        self.add(keys)

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: object) -> bool:
        return key in self.index

    def add(self, keys: Iterable[str]) -> IdMap:
        """Append unseen keys (in order); returns self."""
        for k in keys:
            k = str(k)
            if k not in self.index:
                self.index[k] = len(self.keys)
                self.keys.append(k)
        return self

    def transform(self, keys: Iterable[str]) -> np.ndarray:
        """Indices of ``keys``, ``-1`` for unknown ones; shape (n,), int64."""
        get = self.index.get
        return np.fromiter((get(str(k), -1) for k in keys), dtype=np.int64)

    def inverse(self, indices: Iterable[int]) -> list[str | None]:
        """Keys of ``indices`` (None for ``-1`` / out of range)."""
        n = len(self.keys)
        return [self.keys[i] if 0 <= i < n else None for i in map(int, indices)]

    def to_array(self) -> np.ndarray:
        """The keys as a unicode array (for ``np.savez``)."""
        return np.asarray(self.keys, dtype=str)

    @classmethod
    def from_array(cls, arr: np.ndarray) -> IdMap:
        return cls(arr.tolist())


@dataclass
class Interactions:
    """A users x items strength matrix with its id maps.

    Attributes
    ----------
    matrix : csr_matrix, shape (len(user_map), len(item_map)), float32
    user_map, item_map : IdMap
    """

    matrix: sp.csr_matrix
    user_map: IdMap
    item_map: IdMap


@dataclass
class Baskets:
    """A baskets x items binary matrix with its id maps.

    Attributes
    ----------
    matrix : csr_matrix, shape (len(basket_map), len(item_map)), float32
    basket_map, item_map : IdMap
    """

    matrix: sp.csr_matrix
    basket_map: IdMap
    item_map: IdMap


def build_interactions(
    user_keys: Sequence[str],
    item_keys: Sequence[str],
    event_types: Sequence[str] | None = None,
    timestamps: Any = None,
    quantities: Any = None,
    basket_refs: Sequence[str] | None = None,
    *,
    event_weights: Mapping[str, float] | None = None,
    half_life_days: float | None = None,
    now: Any = None,
    dedupe_seconds: float | None = None,
    distinct_baskets: bool = False,
    max_events_per_pair: int | None = None,
    quantity_mode: str = "ignore",
    cap: float | None = None,
    user_map: IdMap | None = None,
    item_map: IdMap | None = None,
    add_unknown: bool = True,
) -> Interactions:
    """Aggregate events into per (user, item) strengths.

    Each kept event adds ``event_weights[type] * q * 0.5 ** (age / half_life)``, where ``q`` is 1,
    the quantity (``quantity_mode="linear"``) or ``1 + log(quantity)`` (``"log"``).

    Parameters
    ----------
    user_keys, item_keys : sequence of str, shape (n_events,)
    event_types : sequence of str, optional
        Unknown types get weight 0 (dropped); None = every event weighs 1.
    timestamps : datetimes or epoch seconds, shape (n_events,), optional
    quantities : numbers, shape (n_events,), optional
    basket_refs : sequence of str, optional
        With ``distinct_baskets=True`` a (user, item, type) counts once per basket: "number of
        distinct orders containing the item".
    event_weights : dict type -> float
        Default :data:`DEFAULT_EVENT_WEIGHTS`.
    half_life_days : float, optional
        Time decay; needs ``timestamps``.
    now : datetime or epoch seconds, optional
        Decay reference; default the latest event. Later events are dropped.
    dedupe_seconds : float, optional
        An event repeating the previous (user, item, type) within this many seconds is dropped
        (double clicks, reloads).
    max_events_per_pair : int, optional
        Keep at most this many (the most recent) events per (user, item, type).
    quantity_mode : {"ignore", "linear", "log"}
    cap : float, optional
        Upper bound on each final strength.
    user_map, item_map : IdMap, optional
        Existing maps; with ``add_unknown`` unseen keys are appended, else their events dropped.

    Returns
    -------
    Interactions
    """
    n = len(user_keys)
    if len(item_keys) != n:
        raise ValueError("user_keys and item_keys must have the same length")
    user_map = user_map if user_map is not None else IdMap()
    item_map = item_map if item_map is not None else IdMap()
    if add_unknown:
        user_map.add(user_keys)
        item_map.add(item_keys)
    u = user_map.transform(user_keys)
    i = item_map.transform(item_keys)
    types = np.asarray(event_types if event_types is not None else [""] * n, dtype=str)
    if event_types is None:
        w = np.ones(n)
    else:
        weights = dict(DEFAULT_EVENT_WEIGHTS if event_weights is None else event_weights)
        w = np.array([weights.get(t, 0.0) for t in types.tolist()], dtype=np.float64)
    t = to_epoch_seconds(timestamps) if timestamps is not None else np.zeros(n)
    q = np.ones(n) if quantities is None else np.asarray(quantities, dtype=np.float64)
    keep = (u >= 0) & (i >= 0) & (w != 0)
    ref_now = None
    if now is not None:
        ref_now = float(to_epoch_seconds([now])[0])
        keep &= t <= ref_now
    type_codes = np.unique(types, return_inverse=True)[1].astype(np.int64)
    if distinct_baskets and basket_refs is not None:
        ref_codes = np.unique(np.asarray(basket_refs, dtype=str), return_inverse=True)[1]
        key = np.stack([u, i, type_codes, ref_codes])[:, keep]
        _, first = np.unique(key, axis=1, return_index=True)
        idx = np.flatnonzero(keep)[first]
        keep = np.zeros(n, dtype=bool)
        keep[idx] = True
    idx = np.flatnonzero(keep)
    # Sort by pair, type, time: the basis of de-duplication and per-pair caps.
    order = idx[np.lexsort((t[idx], type_codes[idx], i[idx], u[idx]))]
    same_prev = np.zeros(order.size, dtype=bool)
    if order.size > 1:
        same_prev[1:] = (
            (u[order][1:] == u[order][:-1])
            & (i[order][1:] == i[order][:-1])
            & (type_codes[order][1:] == type_codes[order][:-1])
        )
    if dedupe_seconds:
        gap = np.r_[np.inf, np.diff(t[order])]
        order = order[~(same_prev & (gap < dedupe_seconds))]
        same_prev = np.zeros(order.size, dtype=bool)
        if order.size > 1:
            same_prev[1:] = (
                (u[order][1:] == u[order][:-1])
                & (i[order][1:] == i[order][:-1])
                & (type_codes[order][1:] == type_codes[order][:-1])
            )
    if max_events_per_pair:
        group_start = np.flatnonzero(~same_prev)
        group_id = np.cumsum(~same_prev) - 1
        group_end = np.r_[group_start[1:], order.size]
        from_end = group_end[group_id] - np.arange(order.size)  # 1 for the latest event
        order = order[from_end <= max_events_per_pair]
    value = w[order]
    if quantity_mode == "linear":
        value = value * np.maximum(q[order], 0)
    elif quantity_mode == "log":
        value = value * (1.0 + np.log(np.maximum(q[order], 1.0)))
    elif quantity_mode != "ignore":
        raise ValueError("quantity_mode must be 'ignore', 'linear' or 'log'")
    if half_life_days:
        ref = ref_now if ref_now is not None else (float(t[order].max()) if order.size else 0.0)
        value = value * 0.5 ** ((ref - t[order]) / (half_life_days * DAY))
    X = sp.csr_matrix((value.astype(np.float64), (u[order], i[order])), shape=(len(user_map), len(item_map)))
    X.sum_duplicates()
    if cap is not None:
        np.minimum(X.data, cap, out=X.data)
    X.eliminate_zeros()
    return Interactions(sp.csr_matrix(X, dtype=np.float32), user_map, item_map)


def build_baskets(
    basket_refs: Sequence[str],
    item_keys: Sequence[str],
    event_types: Sequence[str] | None = None,
    *,
    basket_event_types: Iterable[str] | None = ("purchase", "cart"),
    item_map: IdMap | None = None,
    basket_map: IdMap | None = None,
    add_unknown: bool = True,
) -> Baskets:
    """Binary baskets x items matrix from order lines or cart events.

    Parameters
    ----------
    basket_refs, item_keys : sequence of str, shape (n_events,)
        Empty / None basket refs are skipped.
    event_types : sequence of str, optional
        With ``basket_event_types`` only those events count (None keeps all).
    item_map, basket_map : IdMap, optional
    add_unknown : bool
        Append unseen item keys to ``item_map`` (else drop their events).

    Returns
    -------
    Baskets
    """
    refs = ["" if r is None else str(r) for r in basket_refs]
    keep = np.array([bool(r) for r in refs], dtype=bool)
    if event_types is not None and basket_event_types is not None:
        allowed = set(basket_event_types)
        keep &= np.array([et in allowed for et in event_types], dtype=bool)
    refs_k = [r for r, k in zip(refs, keep, strict=True) if k]
    items_k = [str(x) for x, k in zip(item_keys, keep, strict=True) if k]
    item_map = item_map if item_map is not None else IdMap()
    basket_map = basket_map if basket_map is not None else IdMap()
    if add_unknown:
        item_map.add(items_k)
    basket_map.add(refs_k)
    b = basket_map.transform(refs_k)
    i = item_map.transform(items_k)
    ok = (b >= 0) & (i >= 0)
    X = sp.csr_matrix(
        (np.ones(int(ok.sum()), np.float32), (b[ok], i[ok])), shape=(len(basket_map), len(item_map))
    )
    X.sum_duplicates()
    X.data[:] = 1.0
    return Baskets(X, basket_map, item_map)
