"""Association rules from baskets: frequent itemsets (Eclat on bitsets) and exact-threshold rules.

Thresholds are compared on integer counts with exact rationals, as arules does in effect:

- support ``>= s``  <=>  ``count >= ceil(s * n_baskets)``;
- confidence ``>= c`` with ``c = p / q``  <=>  ``count(X u Y) * q >= p * count(X)``.

A threshold given as a float is read through its shortest decimal repr (``0.001 -> 1/1000``), so
a rule whose confidence is exactly the threshold counts. ``min_len`` / ``max_len`` count the
items of the whole rule (lhs + rhs), as arules' ``minlen`` / ``maxlen``; with ``min_len <= 1``
rules with an empty left-hand side ``{} => {y}`` are produced when ``support(y) >= c``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import scipy.sparse as sp

from .base import BaseRecommender, check_csr

__all__ = [
    "AssociationRules",
    "CartRulesRecommender",
    "CoOccurrenceRecommender",
    "FrequentItemsets",
    "as_fraction",
    "association_rules",
    "frequent_itemsets",
]


def as_fraction(value: float | int | str | Fraction) -> Fraction:
    """Exact rational of a threshold; floats go through their shortest repr (0.1 -> 1/10)."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, float):
        return Fraction(repr(value))
    return Fraction(value)


def _bitsets(B: sp.csr_matrix) -> np.ndarray:
    """Per item, the baskets containing it as packed bits: shape (n_items, n_words), uint64."""
    n_baskets, n_items = B.shape
    n_words = max(1, (n_baskets + 63) // 64)
    C = sp.csc_matrix(B)
    bits = np.zeros((n_items, n_words * 64), dtype=bool)
    cols = np.repeat(np.arange(n_items), np.diff(C.indptr))
    bits[cols, C.indices] = True
    return np.packbits(bits, axis=1, bitorder="little").view(np.uint64)


def _popcount_rows(bits: np.ndarray) -> np.ndarray:
    """Set bits per row of a uint64 array, shape (n,), int64 (numpy < 2 has no bitwise_count)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(bits).sum(axis=1, dtype=np.int64)
    return np.unpackbits(bits.view(np.uint8), axis=1).sum(axis=1, dtype=np.int64)  # pragma: no cover


@dataclass
class FrequentItemsets:
    """Frequent itemsets with their absolute counts.

    Attributes
    ----------
    itemsets : list of ndarray
        ``itemsets[k]`` has shape (n_k, k + 1), int32: the sorted itemsets of length ``k + 1``.
    counts : list of ndarray
        ``counts[k]`` has shape (n_k,), int64.
    n_baskets : int
    """

    itemsets: list[np.ndarray]
    counts: list[np.ndarray]
    n_baskets: int

    def __len__(self) -> int:
        return sum(len(c) for c in self.counts)

    def lookup(self) -> dict[tuple[int, ...], int]:
        """``{itemset tuple: count}`` for every frequent itemset."""
        out: dict[tuple[int, ...], int] = {}
        for sets, counts in zip(self.itemsets, self.counts, strict=True):
            out.update(zip(map(tuple, sets.tolist()), counts.tolist(), strict=True))
        return out


def frequent_itemsets(
    baskets: Any, min_support: float | Fraction | str, max_len: int = 10, chunk: int = 200_000
) -> FrequentItemsets:
    """All itemsets with support ``>= min_support`` (exact), up to ``max_len`` items.

    Level-wise Eclat: each frequent k-itemset keeps its basket bitset; candidates of length k+1
    join two k-itemsets sharing their first k-1 items, and their count is the popcount of an AND
    of bitsets, vectorised over all candidates of a level.

    Parameters
    ----------
    baskets : csr_matrix, shape (n_baskets, n_items)
        Non-zero = item present.
    min_support : float, Fraction or str
        Fraction of baskets; ``count >= ceil(min_support * n_baskets)``.
    max_len : int
    chunk : int
        Candidates evaluated at once (bounds memory).
    """
    B = check_csr(baskets)
    n_baskets, n_items = B.shape
    min_count = max(1, math.ceil(as_fraction(min_support) * n_baskets))
    B.data = np.ones_like(B.data)
    counts1 = np.bincount(B.indices, minlength=n_items).astype(np.int64)
    items1 = np.flatnonzero(counts1 >= min_count).astype(np.int32)
    itemsets = [items1[:, None]]
    counts = [counts1[items1]]
    if max_len < 2 or items1.size == 0:
        return FrequentItemsets(itemsets[: max(1, max_len)], counts[: max(1, max_len)], n_baskets)
    item_bits = _bitsets(B)
    level_sets = items1[:, None]
    level_bits = item_bits[items1]
    while level_sets.shape[1] < max_len and len(level_sets) > 1:
        k = level_sets.shape[1]
        # Itemsets are sorted lexicographically, so each prefix class is a contiguous run.
        prefix = level_sets[:, :-1]
        if k > 1:
            new_class = np.any(prefix[1:] != prefix[:-1], axis=1)
            class_id = np.concatenate(([0], np.cumsum(new_class)))
        else:
            class_id = np.zeros(len(level_sets), dtype=np.int64)
        class_start = np.searchsorted(class_id, class_id, side="left")
        class_end = np.searchsorted(class_id, class_id, side="right")
        # Pair each itemset a with every later b of its class.
        n_partners = class_end - np.arange(len(level_sets)) - 1
        left = np.repeat(np.arange(len(level_sets)), n_partners)
        offsets = np.arange(left.size) - np.repeat(np.cumsum(n_partners) - n_partners, n_partners)
        right = left + 1 + offsets
        del class_start
        new_sets, new_counts, new_bits = [], [], []
        for s in range(0, left.size, chunk):
            lft, rgt = left[s : s + chunk], right[s : s + chunk]
            bits = level_bits[lft] & item_bits[level_sets[rgt, -1]]
            cnt = _popcount_rows(bits)
            ok = cnt >= min_count
            if ok.any():
                new_sets.append(np.hstack([level_sets[lft[ok]], level_sets[rgt[ok], -1:]]))
                new_counts.append(cnt[ok])
                new_bits.append(bits[ok])
        if not new_sets:
            break
        level_sets = np.vstack(new_sets).astype(np.int32)
        level_bits = np.vstack(new_bits)
        itemsets.append(level_sets)
        counts.append(np.concatenate(new_counts))
    return FrequentItemsets(itemsets, counts, n_baskets)


@dataclass
class AssociationRules:
    """Single-consequent rules ``lhs => rhs`` with integer counts and the usual measures.

    Attributes
    ----------
    lhs : csr_matrix, shape (n_rules, n_items), float32
        Binary left-hand sides (an empty row is the empty set).
    rhs : ndarray, shape (n_rules,), int32
    count, lhs_count, rhs_count : ndarray, shape (n_rules,), int64
        Baskets containing lhs u rhs, lhs, rhs.
    n_baskets : int
    """

    lhs: sp.csr_matrix
    rhs: np.ndarray
    count: np.ndarray
    lhs_count: np.ndarray
    rhs_count: np.ndarray
    n_baskets: int

    def __len__(self) -> int:
        return int(self.rhs.size)

    @property
    def length(self) -> np.ndarray:
        """Items per rule (lhs + rhs), shape (n_rules,), int64."""
        return np.diff(self.lhs.indptr).astype(np.int64) + 1

    @property
    def support(self) -> np.ndarray:
        return self.count / self.n_baskets

    @property
    def confidence(self) -> np.ndarray:
        return self.count / np.maximum(self.lhs_count, 1)

    @property
    def lift(self) -> np.ndarray:
        return self.confidence / (self.rhs_count / self.n_baskets)

    @property
    def conviction(self) -> np.ndarray:
        """``(1 - supp(rhs)) / (1 - conf)``; ``inf`` for confidence 1."""
        conf = self.confidence
        num = 1.0 - self.rhs_count / self.n_baskets
        with np.errstate(divide="ignore"):
            return np.where(conf < 1.0, num / np.maximum(1.0 - conf, 0.0), np.inf)

    def lhs_items(self, rule: int) -> np.ndarray:
        """Sorted item indices of one rule's left-hand side, int32."""
        return self.lhs.indices[self.lhs.indptr[rule] : self.lhs.indptr[rule + 1]]

    def length_distribution(self) -> dict[int, int]:
        """``{rule length: number of rules}``, as arules' ``summary``."""
        values, counts = np.unique(self.length, return_counts=True)
        return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


def association_rules(
    baskets: Any,
    min_support: float | Fraction | str,
    min_confidence: float | Fraction | str,
    min_len: int = 1,
    max_len: int = 10,
    itemsets: FrequentItemsets | None = None,
) -> AssociationRules:
    """Mine single-consequent association rules with exact integer thresholds.

    Parameters
    ----------
    baskets : csr_matrix, shape (n_baskets, n_items)
    min_support, min_confidence : float, Fraction or str
    min_len, max_len : int
        Bounds on rule length, lhs + rhs (arules' ``minlen`` / ``maxlen``).
    itemsets : FrequentItemsets, optional
        Reuse itemsets mined with the same support and ``max_len``.
    """
    B = check_csr(baskets)
    n_baskets, n_items = B.shape
    conf = as_fraction(min_confidence)
    p, q = conf.numerator, conf.denominator
    fi = itemsets if itemsets is not None else frequent_itemsets(B, min_support, max_len)
    item_count = np.zeros(n_items, dtype=np.int64)
    item_count[fi.itemsets[0][:, 0]] = fi.counts[0]
    lookup = fi.lookup()
    lhs_rows: list[np.ndarray] = []
    rhs_l, cnt_l, lcnt_l = [], [], []
    if min_len <= 1:
        # {} => {y}: confidence = support(y).
        ok = fi.counts[0] * q >= p * n_baskets
        for y, c in zip(fi.itemsets[0][ok, 0].tolist(), fi.counts[0][ok].tolist(), strict=True):
            lhs_rows.append(np.empty(0, np.int32))
            rhs_l.append(y)
            cnt_l.append(c)
            lcnt_l.append(n_baskets)
    for k in range(1, len(fi.itemsets)):
        length = k + 1
        if length < min_len or length > max_len:
            continue
        sets, counts = fi.itemsets[k], fi.counts[k]
        for drop in range(length):
            lhs = np.delete(sets, drop, axis=1)
            rhs = sets[:, drop]
            if k == 1:
                lhs_cnt = item_count[lhs[:, 0]]
            else:
                lhs_cnt = np.fromiter((lookup[t] for t in map(tuple, lhs.tolist())), np.int64, len(lhs))
            ok = counts * q >= p * lhs_cnt
            if not ok.any():
                continue
            lhs_rows.extend(lhs[ok])
            rhs_l.extend(rhs[ok].tolist())
            cnt_l.extend(counts[ok].tolist())
            lcnt_l.extend(lhs_cnt[ok].tolist())
    n_rules = len(rhs_l)
    lens = np.fromiter((len(r) for r in lhs_rows), np.int64, n_rules)
    indptr = np.concatenate(([0], np.cumsum(lens))).astype(np.int64)
    indices = np.concatenate(lhs_rows).astype(np.int32) if n_rules else np.empty(0, np.int32)
    lhs_mat = sp.csr_matrix((np.ones(indices.size, np.float32), indices, indptr), shape=(n_rules, n_items))
    rhs_arr = np.asarray(rhs_l, dtype=np.int32)
    return AssociationRules(
        lhs=lhs_mat,
        rhs=rhs_arr,
        count=np.asarray(cnt_l, dtype=np.int64),
        lhs_count=np.asarray(lcnt_l, dtype=np.int64),
        rhs_count=item_count[rhs_arr] if n_rules else np.empty(0, np.int64),
        n_baskets=n_baskets,
    )


_MEASURES = ("confidence", "lift", "support", "conviction", "count")


class CartRulesRecommender(BaseRecommender):
    """Whole-cart recommendations from association rules.

    Every rule whose left-hand side lies inside the cart votes for its right-hand side; votes are
    aggregated per item by ``max`` (the best applicable rule, ties broken by the sum) or ``sum``.

    Parameters
    ----------
    min_support, min_confidence : float or str
        Exact thresholds (see module docstring).
    max_len : int, default 3
        Longest rule (lhs + rhs).
    measure : {"confidence", "lift", "support", "conviction", "count"}
    aggregate : {"max", "sum"}

    Attributes
    ----------
    rules_ : AssociationRules arrays flattened into ``rule_lhs_`` (csr), ``rule_rhs_``,
        ``rule_count_``, ``rule_lhs_count_``, ``rule_rhs_count_``.
    """

    def __init__(
        self,
        min_support: float | str = 0.001,
        min_confidence: float | str = 0.1,
        max_len: int = 3,
        measure: str = "confidence",
        aggregate: str = "max",
    ) -> None:
        self.min_support = min_support
        self.min_confidence = min_confidence
        self.max_len = max_len
        self.measure = measure
        self.aggregate = aggregate

    def fit(self, X: Any, **fit_params: Any) -> CartRulesRecommender:
        """Mine rules from baskets, shape (n_baskets, n_items)."""
        B = check_csr(X)
        rules = association_rules(B, self.min_support, self.min_confidence, min_len=2, max_len=self.max_len)
        self.rule_lhs_ = rules.lhs
        self.rule_rhs_ = rules.rhs
        self.rule_count_ = rules.count
        self.rule_lhs_count_ = rules.lhs_count
        self.rule_rhs_count_ = rules.rhs_count
        self.n_baskets_ = int(B.shape[0])
        self.n_items_ = int(B.shape[1])
        return self

    @property
    def rules_(self) -> AssociationRules:
        return AssociationRules(
            self.rule_lhs_,
            self.rule_rhs_,
            self.rule_count_,
            self.rule_lhs_count_,
            self.rule_rhs_count_,
            self.n_baskets_,
        )

    def _score(self, user_ids: np.ndarray, X_rows: sp.csr_matrix) -> np.ndarray:
        if self.measure not in _MEASURES:
            raise ValueError(f"measure must be one of {_MEASURES}")
        rules = self.rules_
        value = np.asarray(getattr(rules, self.measure), dtype=np.float64)
        value = np.where(np.isfinite(value), value, np.finfo(np.float32).max / 4)
        cart = X_rows.copy()
        cart.data = np.ones_like(cart.data)
        lhs_size = np.diff(rules.lhs.indptr)
        # A rule applies when all its lhs items are in the cart: |cart & lhs| == |lhs|.
        hits = sp.coo_matrix(cart @ rules.lhs.T)
        applies = hits.data == lhs_size[hits.col]
        r, c = hits.row[applies], hits.col[applies]
        scores = np.zeros((X_rows.shape[0], self.n_items_), dtype=np.float64)
        total = np.zeros_like(scores)
        np.add.at(total, (r, rules.rhs[c]), value[c])
        if self.aggregate == "sum":
            return total
        np.maximum.at(scores, (r, rules.rhs[c]), value[c])
        # Ties on the best rule are broken by the total evidence.
        return scores * (1.0 + 1e-6 * total / (1.0 + total.max(initial=0.0)))


class CoOccurrenceRecommender(BaseRecommender):
    """Pairwise "bought together" scores from a baskets x items matrix.

    ``score(cart, j) = aggregate over cart items i of measure(i -> j)`` with

    - ``count``: baskets containing i and j;
    - ``confidence``: ``count / count(i)``;
    - ``lift``: ``confidence / P(j)``;
    - ``jaccard``: ``count / (count(i) + count(j) - count)``;
    - ``cosine``: ``count / sqrt(count(i) count(j))``.

    Parameters
    ----------
    measure : str, default "confidence"
    aggregate : {"sum", "max"}
    min_count : int, default 1
        Pairs seen in fewer baskets are ignored.
    popularity_prior : float, default 0.0
        ``confidence`` is smoothed as ``count / (count(i) + prior)`` (shrinks rare antecedents).

    Attributes
    ----------
    cooccurrence_ : csr_matrix, shape (n_items, n_items), float32
        The measure ``i -> j`` (row i), diagonal removed.
    item_counts_ : ndarray, shape (n_items,), float64
    """

    def __init__(
        self,
        measure: str = "confidence",
        aggregate: str = "sum",
        min_count: int = 1,
        popularity_prior: float = 0.0,
    ) -> None:
        self.measure = measure
        self.aggregate = aggregate
        self.min_count = min_count
        self.popularity_prior = popularity_prior

    def fit(self, X: Any, **fit_params: Any) -> CoOccurrenceRecommender:
        """Count co-occurrences in baskets, shape (n_baskets, n_items)."""
        B = check_csr(X)
        B.data = np.ones_like(B.data)
        C = sp.csr_matrix(B.T @ B, dtype=np.float64)
        C.setdiag(0)
        C.eliminate_zeros()
        C.data[C.data < self.min_count] = 0
        C.eliminate_zeros()
        n = np.asarray(B.sum(axis=0), dtype=np.float64).ravel()
        r = np.repeat(np.arange(C.shape[0]), np.diff(C.indptr))
        c = C.indices
        cnt = C.data
        n_baskets = max(B.shape[0], 1)
        if self.measure == "count":
            val = cnt
        elif self.measure == "confidence":
            val = cnt / (n[r] + self.popularity_prior)
        elif self.measure == "lift":
            val = cnt / (n[r] + self.popularity_prior) / (n[c] / n_baskets)
        elif self.measure == "jaccard":
            val = cnt / (n[r] + n[c] - cnt)
        elif self.measure == "cosine":
            val = cnt / np.sqrt(n[r] * n[c])
        else:
            raise ValueError(f"unknown measure {self.measure!r}")
        self.cooccurrence_ = sp.csr_matrix((val.astype(np.float32), C.indices, C.indptr), shape=C.shape)
        self.item_counts_ = n
        self.n_items_ = int(B.shape[1])
        return self

    def _score(self, user_ids: np.ndarray, X_rows: sp.csr_matrix) -> np.ndarray:
        cart = X_rows.copy()
        cart.data = np.ones_like(cart.data)
        if self.aggregate == "sum":
            return (cart @ self.cooccurrence_).toarray()
        out = np.zeros((X_rows.shape[0], self.n_items_), dtype=np.float32)
        sub = sp.coo_matrix(cart)
        for row, item in zip(sub.row.tolist(), sub.col.tolist(), strict=True):
            lo, hi = self.cooccurrence_.indptr[item], self.cooccurrence_.indptr[item + 1]
            cols = self.cooccurrence_.indices[lo:hi]
            out[row, cols] = np.maximum(out[row, cols], self.cooccurrence_.data[lo:hi])
        return out
