"""Sparse similarity kernels: weighting, centring and blockwise top-K neighbours.

Everything here works on "entity x observation" CSR matrices: items x users for item-based CF,
users x items for user-based CF, items x features for content. A Gram product is computed one
block of entity rows at a time (``E[block] @ E.T`` with scipy's sparse matmul) and cut to its
``K`` best entries per row right away, so the dense entities x entities matrix never exists and
peak memory is bounded by ``block_flops`` (the multiply-adds of one block), not by the catalogue.

Similarity formulas (``dot`` is the plain sparse dot product of the two rows):

- ``cosine``: ``dot / (|a| |b| + shrinkage)``;
- centring ``interacted``: each row (or column) is centred over its stored entries only, then
  cosine; entries that are not stored stay zero;
- centring ``all``: centred over every column, zeros included (the design notes' literal formula
  with means over the whole vector). It is evaluated in closed form from the sparse dot product
  plus rank-one corrections, and only on pairs whose rows share a stored column; pairs sharing
  nothing are never neighbours;
- ``pearson_common``: the Pearson correlation over the co-rated columns only (means over the
  common columns, scikit-surprise's ``pearson``), from six sparse products with one pattern.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = [
    "SimilaritySpec",
    "block_bounds",
    "blockwise_topk",
    "bm25_weight",
    "centre_rows",
    "l2_normalise_rows",
    "prepare_rows",
    "similarity_block",
    "tfidf_weight",
    "topk_per_row",
]

DEFAULT_BLOCK_FLOPS = 20_000_000
# Blocks at least this dense (and not larger) are selected on a dense copy, see topk_per_row:
# per cell of the block the dense selection costs about a quarter of what the sparse one costs
# per stored entry (measured on the Online Retail item-item blocks), so it wins from ~25% density.
DENSE_MIN_DENSITY = 0.25
DENSE_MAX_CELLS = 16_000_000


def _row_ids(A: sp.csr_matrix) -> np.ndarray:
    return np.repeat(np.arange(A.shape[0], dtype=np.int64), np.diff(A.indptr))


def _entity_obs(E: sp.csr_matrix, entities_are_rows: bool) -> tuple[np.ndarray, np.ndarray, int, int]:
    rows = _row_ids(E)
    if entities_are_rows:
        return rows, E.indices, E.shape[0], E.shape[1]
    return E.indices, rows, E.shape[1], E.shape[0]


def tfidf_weight(E: sp.csr_matrix, entities_are_rows: bool = True) -> sp.csr_matrix:
    """TF-IDF weighting of an entity x observation matrix (implicit's ``tfidf_weight``).

    ``w = sqrt(x) * (log N - log(1 + df_obs))`` with ``N`` the number of entities and ``df_obs``
    the number of entities an observation appears in.

    Parameters
    ----------
    E : csr_matrix, shape (n_entities, n_obs), or (n_obs, n_entities) if not ``entities_are_rows``

    Returns
    -------
    csr_matrix, same shape and orientation, float32
    """
    E = sp.csr_matrix(E, dtype=np.float64, copy=True)
    _, obs, n_ent, n_obs = _entity_obs(E, entities_are_rows)
    idf = np.log(max(n_ent, 1)) - np.log1p(np.bincount(obs, minlength=n_obs))
    E.data = np.sqrt(E.data) * idf[obs]
    return E.astype(np.float32)


def bm25_weight(
    E: sp.csr_matrix, K1: float = 1.2, B: float = 0.75, entities_are_rows: bool = True
) -> sp.csr_matrix:
    """Okapi BM25 weighting of an entity x observation matrix (implicit's ``bm25_weight``).

    Parameters
    ----------
    E : csr_matrix, shape (n_entities, n_obs), or (n_obs, n_entities) if not ``entities_are_rows``
    K1, B : float
        Term-frequency saturation and length normalisation.

    Returns
    -------
    csr_matrix, same shape and orientation, float32
    """
    E = sp.csr_matrix(E, dtype=np.float64, copy=True)
    ent, obs, n_ent, n_obs = _entity_obs(E, entities_are_rows)
    idf = np.log(max(n_ent, 1)) - np.log1p(np.bincount(obs, minlength=n_obs))
    sums = np.bincount(ent, weights=E.data, minlength=n_ent).astype(np.float64)
    avg = sums.mean() if sums.size and sums.mean() > 0 else 1.0
    length_norm = (1.0 - B) + B * sums / avg
    E.data = E.data * (K1 + 1.0) / (K1 * length_norm[ent] + E.data) * idf[obs]
    return E.astype(np.float32)


def l2_normalise_rows(E: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to unit L2 norm (empty rows stay empty); float32 copy."""
    E = sp.csr_matrix(E, dtype=np.float64, copy=True)
    rows = _row_ids(E)
    norms = np.sqrt(np.bincount(rows, weights=E.data**2, minlength=E.shape[0]))
    norms[norms == 0] = 1.0
    E.data /= norms[rows]
    return E.astype(np.float32)


def centre_rows(E: sp.csr_matrix) -> sp.csr_matrix:
    """Subtract from each stored entry its row's mean over stored entries ("interacted" centring).

    Returns
    -------
    csr_matrix, same shape and pattern (entries may become explicit zeros), float64
    """
    E = sp.csr_matrix(E, dtype=np.float64, copy=True)
    rows = _row_ids(E)
    counts = np.diff(E.indptr)
    sums = np.bincount(rows, weights=E.data, minlength=E.shape[0]).astype(np.float64)
    means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    E.data -= means[rows]
    return E


def cancel(total: np.ndarray, minus: np.ndarray) -> np.ndarray:
    """``total - minus`` with cancellation noise (a constant row centred to zero) set to 0."""
    out = total - minus
    out[out <= 1e-9 * np.maximum(np.abs(total), np.abs(minus))] = 0.0
    return out


def _transpose(A: sp.csr_matrix | None) -> sp.csr_matrix | None:
    return None if A is None else sp.csr_matrix(A.T)


@dataclass
class SimilaritySpec:
    """Prepared entity rows of a similarity computation, in both orientations.

    ``dot(a, b) = (E_a . E_b) + lin_a + lin_b + const - outer_a * outer_b``; ``sq`` is the same
    expression for ``a == b`` (the squared norm). ``unit`` means the rows are already L2
    normalised with no correction, so the sparse product is the similarity itself. For
    ``kind == "pearson_common"`` the extra matrices hold the binary pattern and the squares.

    Attributes
    ----------
    E : csr_matrix, shape (n_entities, n_obs)
    ET : csr_matrix, shape (n_obs, n_entities), or None for a row slice
    """

    E: sp.csr_matrix
    ET: sp.csr_matrix | None = None
    kind: str = "dot"  # "dot" or "pearson_common"
    lin: np.ndarray | None = None
    outer: np.ndarray | None = None
    const: float = 0.0
    sq: np.ndarray | None = None
    unit: bool = False
    binary: sp.csr_matrix | None = None
    squares: sp.csr_matrix | None = None
    binary_T: sp.csr_matrix | None = None
    squares_T: sp.csr_matrix | None = None

    def rows(self, start: int, stop: int) -> SimilaritySpec:
        """The spec restricted to entity rows ``start:stop`` (no transposed parts)."""

        def take(a: Any) -> Any:
            return None if a is None else a[start:stop]

        return SimilaritySpec(
            E=self.E[start:stop],
            kind=self.kind,
            lin=take(self.lin),
            outer=take(self.outer),
            const=self.const,
            sq=take(self.sq),
            unit=self.unit,
            binary=take(self.binary),
            squares=take(self.squares),
        )


def prepare_rows(
    E: sp.csr_matrix,
    centring: str | None,
    *,
    ET: sp.csr_matrix | None = None,
    dtype: type = np.float32,
    shrinkage: float = 0.0,
    transposed: bool = True,
) -> SimilaritySpec:
    """Prepare entity rows for :func:`similarity_block`.

    Parameters
    ----------
    E : csr_matrix, shape (n_entities, n_obs)
        Entity vectors (already weighted).
    centring : {None, "interacted", "all", "common"}
        None: plain dot/cosine. "interacted": centre each row over its stored entries. "all":
        centre each row over all ``n_obs`` entries, zeros included. "common": Pearson over the
        co-stored columns of each pair.
    ET : csr_matrix, optional
        ``E.T`` in CSR form when the caller already has it (saves a conversion; used for
        ``centring`` None and "all").
    dtype : numpy float type of the matmul operands.
    shrinkage : float
        With 0 (and no correction) rows are normalised up front (``unit``), so the product needs
        no per-entry arithmetic.
    transposed : bool
        Also build the transposed matrices (needed for the right-hand side).
    """
    E = sp.csr_matrix(E)
    if centring in (None, "interacted"):
        A = centre_rows(E) if centring == "interacted" else E
        if centring == "interacted":
            ET = None
        rows = _row_ids(A)
        sq = np.bincount(rows, weights=A.data.astype(np.float64) ** 2, minlength=A.shape[0])
        sq = sq.astype(np.float64)
        if shrinkage == 0:
            norms = np.sqrt(sq)
            scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
            A = sp.csr_matrix(A, dtype=np.float64, copy=True)
            A.data *= scale[rows]
            A = sp.csr_matrix(A, dtype=dtype)
            if ET is not None:
                ET = sp.csr_matrix(ET, dtype=np.float64, copy=True)
                ET.data *= scale[ET.indices]
                ET = sp.csr_matrix(ET, dtype=dtype)
            elif transposed:
                ET = _transpose(A)
            return SimilaritySpec(E=A, ET=ET, sq=(sq > 0).astype(np.float64), unit=True)
        A = sp.csr_matrix(A, dtype=dtype)
        if ET is None and transposed:
            ET = _transpose(A)
        return SimilaritySpec(E=A, ET=None if ET is None else sp.csr_matrix(ET, dtype=dtype), sq=sq)
    if centring == "all":
        A = sp.csr_matrix(E, dtype=np.float64)
        n_obs = A.shape[1]
        rows = _row_ids(A)
        sums = np.bincount(rows, weights=A.data, minlength=A.shape[0]).astype(np.float64)
        sq_raw = np.bincount(rows, weights=A.data**2, minlength=A.shape[0]).astype(np.float64)
        # sum_k (a_k - m_a)(b_k - m_b) = a.b - n m_a m_b, with m = sum / n.
        outer = sums / np.sqrt(max(n_obs, 1))
        A = sp.csr_matrix(A, dtype=dtype)
        if ET is None and transposed:
            ET = _transpose(A)
        return SimilaritySpec(
            E=A,
            ET=None if ET is None else sp.csr_matrix(ET, dtype=dtype),
            outer=outer,
            sq=cancel(sq_raw, outer**2),
        )
    if centring == "common":
        A = sp.csr_matrix(E, dtype=np.float64)
        binary = A.copy()
        binary.data = np.ones_like(binary.data)
        squares = A.copy()
        squares.data = squares.data**2
        spec = SimilaritySpec(E=A, kind="pearson_common", binary=binary, squares=squares)
        if transposed:
            spec.ET, spec.binary_T, spec.squares_T = _transpose(A), _transpose(binary), _transpose(squares)
        return spec
    raise ValueError(f"unknown centring {centring!r}")


def _matmul(A: sp.csr_matrix, B: sp.csr_matrix, nnz_bound: int | None = None) -> sp.csr_matrix:
    """``A @ B`` for CSR operands.

    With ``nnz_bound`` (an upper bound on the product's stored entries, e.g. its multiply-adds)
    scipy's symbolic pass, about a third of the cost, is skipped by calling its numeric kernel on
    arrays of that size; any failure falls back to the public operator.
    """
    if nnz_bound is not None and _csr_matmat is not None and A.dtype == B.dtype:
        try:
            n_rows, n_cols = A.shape[0], B.shape[1]
            big = max(nnz_bound, A.nnz, B.nnz, n_rows, n_cols) >= np.iinfo(np.int32).max
            idx = np.int64 if big else np.int32
            indptr = np.empty(n_rows + 1, dtype=idx)
            indices = np.empty(max(nnz_bound, 1), dtype=idx)
            data = np.empty(max(nnz_bound, 1), dtype=A.dtype)
            _csr_matmat(
                n_rows, n_cols,
                A.indptr.astype(idx, copy=False), A.indices.astype(idx, copy=False), A.data,
                B.indptr.astype(idx, copy=False), B.indices.astype(idx, copy=False), B.data,
                indptr, indices, data,
            )  # fmt: skip
            nnz = int(indptr[-1])
            # Shrink the buffers in place (realloc): slicing them would leave views of a much
            # larger array, which scipy's constructor then copies.
            indices.resize(nnz, refcheck=False)
            data.resize(nnz, refcheck=False)
            return sp.csr_matrix((data, indices, indptr), shape=(n_rows, n_cols))
        except Exception:  # pragma: no cover - scipy internals changed
            pass
    return sp.csr_matrix(A @ B)


# scipy's internal numeric kernel (optional, see _matmul), checked once on a tiny product.
_csr_matmat: Any = getattr(importlib.import_module("scipy.sparse._sparsetools"), "csr_matmat", None)
try:
    _probe = sp.csr_matrix(np.array([[1.0, 0.0], [2.0, 3.0]]))
    if not np.allclose(_matmul(_probe, _probe, nnz_bound=8).toarray(), (_probe @ _probe).toarray()):
        _csr_matmat = None  # pragma: no cover
except Exception:  # pragma: no cover
    _csr_matmat = None


def _matmul_flops(A: sp.csr_matrix, B: sp.csr_matrix) -> int:
    """Multiply-adds of ``A @ B`` (an upper bound of its stored entries)."""
    return int(np.diff(B.indptr).astype(np.int64)[A.indices].sum())


def similarity_block(
    rows: SimilaritySpec,
    cols: SimilaritySpec,
    *,
    shrinkage: float = 0.0,
    min_support: int = 1,
    normalise: bool = True,
) -> sp.csr_matrix:
    """Similarities of a block of rows against every entity of ``cols``.

    Parameters
    ----------
    rows : SimilaritySpec
        ``b`` prepared entity rows.
    cols : SimilaritySpec
        All ``n`` prepared entities, with the transposed matrices (``ET`` ...) present.
    shrinkage : float
        Added to the denominator, pulling similarities of little-supported pairs towards zero.
        For "pearson_common" the surprise-style factor ``(n - 1) / (n - 1 + shrinkage)``.
    min_support : int
        For "pearson_common": pairs with fewer common columns get similarity 0.
    normalise : bool
        False returns the centred dot products (no division).

    Returns
    -------
    csr_matrix, shape (b, n), float32
        Pattern = pairs sharing at least one stored column.
    """
    assert cols.ET is not None
    if rows.kind == "pearson_common":
        assert rows.binary is not None and rows.squares is not None
        assert cols.binary_T is not None and cols.squares_T is not None
        bound = _matmul_flops(rows.binary, cols.binary_T)
        n = _matmul(rows.binary, cols.binary_T, bound)
        parts = [
            n,
            _matmul(rows.E, cols.binary_T, bound),
            _matmul(rows.binary, cols.ET, bound),
            _matmul(rows.squares, cols.binary_T, bound),
            _matmul(rows.binary, cols.squares_T, bound),
            _matmul(rows.E, cols.ET, bound),
        ]
        for p in parts[1:]:
            # Same operand patterns give the same output pattern; sort if ever not.
            if p.nnz != n.nnz or not np.array_equal(p.indices, n.indices):
                for q in parts:
                    q.sort_indices()
                break
        data = [n.data]
        for p in parts[1:]:
            if p.nnz == n.nnz and np.array_equal(p.indices, n.indices):
                data.append(p.data)
            else:
                # Sums that cancel to exactly 0 (negative entries) are not stored: read p on n's pattern.
                data.append(np.asarray(p[_row_ids(n), n.indices]).ravel())
        n_, sx, sy, sxx, syy, sxy = (d.astype(np.float64) for d in data)
        num = n_ * sxy - sx * sy
        den = np.sqrt(np.maximum(n_ * sxx - sx**2, 0) * np.maximum(n_ * syy - sy**2, 0))
        sim = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        if shrinkage:
            sim *= (n_ - 1) / (n_ - 1 + shrinkage)
        sim[n_ < min_support] = 0.0
        return sp.csr_matrix((sim.astype(np.float32), n.indices, n.indptr), shape=n.shape)
    S = _matmul(rows.E, cols.ET, _matmul_flops(rows.E, cols.ET))
    if rows.unit and cols.unit and normalise:
        return S if S.dtype == np.float32 else S.astype(np.float32)
    r = _row_ids(S)
    c = S.indices
    dots = S.data.astype(np.float64)
    if rows.lin is not None and cols.lin is not None:
        dots += rows.lin[r] + cols.lin[c]
    if rows.outer is not None and cols.outer is not None:
        dots -= rows.outer[r] * cols.outer[c]
    dots += rows.const
    if normalise:
        assert rows.sq is not None and cols.sq is not None
        den = np.sqrt(np.maximum(rows.sq, 0))[r] * np.sqrt(np.maximum(cols.sq, 0))[c] + shrinkage
        dots = np.divide(dots, den, out=np.zeros_like(dots), where=den > 0)
    return sp.csr_matrix((dots.astype(np.float32), S.indices, S.indptr), shape=S.shape)


def block_bounds(E: sp.csr_matrix, ET: sp.csr_matrix, budget: int = DEFAULT_BLOCK_FLOPS) -> np.ndarray:
    """Split the rows of ``E`` into consecutive blocks whose ``E[block] @ ET`` cost ``<= budget``.

    The cost of one row is its multiply-adds: the sum over its stored columns ``k`` of
    ``nnz(ET[k])``. It also bounds the stored entries of the row's product, hence memory. A single
    row dearer than the budget is a block of its own.

    Returns
    -------
    ndarray, shape (n_blocks + 1,), int64
    """
    per_obs = np.diff(ET.indptr).astype(np.float64)
    costs = np.bincount(_row_ids(E), weights=per_obs[E.indices], minlength=E.shape[0])
    cum = np.cumsum(costs)
    bounds = [0]
    n = E.shape[0]
    while bounds[-1] < n:
        start = bounds[-1]
        base = cum[start - 1] if start else 0.0
        stop = int(np.searchsorted(cum, base + budget, side="right"))
        bounds.append(min(n, max(stop, start + 1)))
    return np.asarray(bounds, dtype=np.int64)


def topk_per_row(
    S: sp.csr_matrix,
    K: int,
    *,
    row_offset: int = 0,
    exclude_self: bool = True,
    positive_only: bool = True,
    scratch: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``K`` largest stored entries of each row of a CSR block, best first.

    Each row's ``K``-th largest value is found first (the threshold), then every entry above it
    is kept and, among entries equal to it, those with the lowest columns: the selection is
    deterministic, ties included, and the same on both paths. Blocks with at least
    ``DENSE_MIN_DENSITY`` stored cells (and at most ``DENSE_MAX_CELLS``) are selected on a dense
    copy; sparser ones group their long rows by length (powers of two) and pad them, so one
    ``partition`` call per group finds the thresholds in linear time.

    Parameters
    ----------
    S : csr_matrix, shape (b, n)
    K : int
    row_offset : int
        Global index of row 0 (for ``exclude_self``: entry ``(i, row_offset + i)`` is dropped).
    exclude_self, positive_only : bool
    scratch : dict, optional
        Work buffers of the dense path, reused from block to block by one thread (fresh large
        arrays cost a page fault per 4 KiB, as much as the selection itself).

    Returns
    -------
    cols : ndarray, shape (b, K), int32
        ``-1`` pads rows with fewer than ``K`` kept entries.
    vals : ndarray, shape (b, K), float32
        Sorted descending (ties by column), ``-inf`` padding.
    """
    b, n = S.shape
    K = max(1, int(K))
    if (
        positive_only
        and b
        and S.nnz >= DENSE_MIN_DENSITY * b * n
        and b * n <= DENSE_MAX_CELLS
        and np.isfinite(S.data).all()
    ):
        return _topk_dense(S, K, row_offset, exclude_self, scratch)
    r = _row_ids(S)
    v = S.data
    c = S.indices
    keep = np.isfinite(v)
    if positive_only:
        keep &= v > 0
    if exclude_self:
        keep &= c != r + row_offset
    if not keep.all():
        r, c, v = r[keep], c[keep], v[keep]
    counts = np.bincount(r, minlength=b)
    indptr = np.concatenate(([0], np.cumsum(counts)))
    thr = np.full(b, -np.inf, dtype=v.dtype)
    long_rows = np.flatnonzero(counts > K)
    if long_rows.size:
        groups = np.ceil(np.log2(counts[long_rows])).astype(np.int64)
        for g in np.unique(groups):
            rows = long_rows[groups == g]
            lens = counts[rows]
            width = int(lens.max())
            ar = np.arange(width)
            valid = ar[None, :] < lens[:, None]
            idx = np.where(valid, indptr[rows][:, None] + ar[None, :], 0)
            vals = np.where(valid, -v[idx], np.inf)  # negated: the K smallest are the K largest
            thr[rows] = -np.partition(vals, K - 1, axis=1)[:, K - 1]
        cand = v >= thr[r]
        if not cand.all():
            r, c, v = r[cand], c[cand], v[cand]
    return _place(r, c, v, thr, b, K)


def _place(
    r: np.ndarray,
    c: np.ndarray,
    v: np.ndarray,
    thr: np.ndarray,
    b: int,
    K: int,
    columns_sorted: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    # Entries (r, c, v) grouped by row in ascending row order, every v >= thr[r] with thr the
    # row's K-th largest value: all entries above it stay, ties at it keep the lowest columns up
    # to K per row.
    tie = v == thr[r]
    if tie.any():
        n_above = np.bincount(r[~tie], minlength=b)
        ti = np.flatnonzero(tie)
        if not columns_sorted:
            ti = ti[np.lexsort((c[ti], r[ti]))]
        tr = r[ti]
        rank = np.arange(ti.size) - np.searchsorted(tr, tr, side="left")
        drop = ti[rank >= K - n_above[tr]]
        if drop.size:
            keep = np.ones(r.size, dtype=bool)
            keep[drop] = False
            r, c, v = r[keep], c[keep], v[keep]
    counts = np.bincount(r, minlength=b)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    pos = np.arange(r.size) - starts[r]
    out_c = np.full((b, K), -1, dtype=np.int32)
    out_v = np.full((b, K), -np.inf, dtype=np.float32)
    out_c[r, pos] = c
    out_v[r, pos] = v
    order = np.lexsort((out_c, -out_v), axis=1)
    return np.take_along_axis(out_c, order, axis=1), np.take_along_axis(out_v, order, axis=1)


def _buffer(
    scratch: dict[str, np.ndarray] | None, name: str, shape: tuple[int, int], dtype: Any
) -> np.ndarray:
    size = shape[0] * shape[1]
    if scratch is None:
        return np.empty(shape, dtype=dtype)
    buf = scratch.get(name)
    if buf is None or buf.size < size or buf.dtype != dtype:
        buf = scratch[name] = np.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


def _topk_dense(
    S: sp.csr_matrix,
    K: int,
    row_offset: int,
    exclude_self: bool,
    scratch: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    # A dense enough block (small catalogues, popular items): one partition over the dense rows
    # finds the thresholds, and one comparison picks the entries, instead of padding and masking
    # the sparse entries. The partition runs on a negated copy (numpy selects the K smallest
    # several times faster than the K largest).
    b, n = S.shape
    D = _buffer(scratch, "block", (b, n), S.dtype)
    D.fill(0)
    S.toarray(out=D)
    if exclude_self:
        rows = np.arange(b)
        ok = rows + row_offset < n
        D[rows[ok], rows[ok] + row_offset] = 0.0
    tiny = np.finfo(D.dtype).smallest_subnormal  # positive_only: only values > 0 qualify
    if K < n:
        P = _buffer(scratch, "partition", (b, n), D.dtype)
        np.negative(D, out=P)
        P.partition(K - 1, axis=1)
        thr = np.maximum(-P[:, K - 1], tiny)
    else:
        thr = np.full(b, tiny, dtype=D.dtype)
    # Flat positions are row-major, columns ascending within a row (and much cheaper to find
    # than 2-d indices).
    flat = np.flatnonzero(D >= thr[:, None])
    r, c = np.divmod(flat, n)
    return _place(r, c.astype(np.int32), D.ravel()[flat], thr, b, K, columns_sorted=True)


def default_threads(n_threads: int | None) -> int:
    """``n_threads`` or, when None/0, the usable cores (at most 4)."""
    if n_threads:
        return max(1, int(n_threads))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def blockwise_topk(
    n_rows: int,
    n_cols: int,
    bounds: np.ndarray,
    block_fn: Callable[[int, int], sp.csr_matrix],
    K: int,
    *,
    exclude_self: bool = True,
    positive_only: bool = True,
    n_threads: int | None = None,
) -> sp.csr_matrix:
    """Run ``block_fn`` on each row block and keep the top-``K`` of every row.

    Blocks run on a thread pool: scipy's sparse matmul holds the GIL, but numpy's selection and
    arithmetic of one block overlap with the matmul of the next.

    Parameters
    ----------
    n_rows, n_cols : int
        Shape of the (never materialised) full similarity matrix.
    bounds : ndarray of int
        Block boundaries from :func:`block_bounds`.
    block_fn : callable ``(start, stop) -> csr_matrix (stop - start, n_cols)``
    K : int

    Returns
    -------
    csr_matrix, shape (n_rows, n_cols), float32
        At most ``K`` entries per row, each row sorted best first.
    """
    K = max(1, int(K))

    local = threading.local()  # per-thread work buffers, freed with this call

    def run(b: int) -> tuple[np.ndarray, np.ndarray]:
        start, stop = int(bounds[b]), int(bounds[b + 1])
        S = block_fn(start, stop)
        if not hasattr(local, "scratch"):
            local.scratch = {}
        return topk_per_row(
            S,
            K,
            row_offset=start,
            exclude_self=exclude_self,
            positive_only=positive_only,
            scratch=local.scratch,
        )

    n_blocks = len(bounds) - 1
    threads = min(default_threads(n_threads), n_blocks)
    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(run, range(n_blocks)))
    else:
        parts = [run(b) for b in range(n_blocks)]
    if not parts:
        return sp.csr_matrix((n_rows, n_cols), dtype=np.float32)
    cols = np.vstack([p[0] for p in parts])
    vals = np.vstack([p[1] for p in parts])
    valid = cols >= 0
    indptr = np.concatenate(([0], np.cumsum(valid.sum(axis=1)))).astype(np.int64)
    return sp.csr_matrix((vals[valid], cols[valid], indptr), shape=(n_rows, n_cols))
