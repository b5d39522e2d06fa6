"""Every similarity against a dense brute-force reference (the design notes' formulas)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shop_reco.engine.content import centred_cosine
from shop_reco.engine.item_knn import ItemKNN
from shop_reco.engine.similarity import bm25_weight, tfidf_weight, topk_per_row
from shop_reco.engine.user_knn import UserKNN

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def matrices(draw: st.DrawFn, max_rows: int = 14, max_cols: int = 12) -> np.ndarray:
    n = draw(st.integers(2, max_rows))
    m = draw(st.integers(2, max_cols))
    seed = draw(st.integers(0, 2**31 - 1))
    density = draw(st.floats(0.15, 0.8))
    rng = np.random.default_rng(seed)
    values = rng.integers(1, 6, size=(n, m)).astype(np.float64)
    return np.where(rng.random((n, m)) < density, values, 0.0)


def _cosine_of_columns(Z: np.ndarray, shrink: float = 0.0) -> np.ndarray:
    G = Z.T @ Z
    n = np.sqrt(np.clip(np.diag(G), 0, None))
    den = np.outer(n, n) + shrink
    return np.divide(G, den, out=np.zeros_like(G), where=den > 0)


def _mean_over(D: np.ndarray, axis: int, interacted: bool) -> np.ndarray:
    if not interacted:
        return D.mean(axis=axis, keepdims=True)
    cnt = (D != 0).sum(axis=axis, keepdims=True)
    return np.divide(D.sum(axis=axis, keepdims=True), cnt, out=np.zeros_like(cnt, dtype=float), where=cnt > 0)


def item_reference(D: np.ndarray, similarity: str, centring: str, shrink: float = 0.0) -> np.ndarray:
    """Dense reference on the co-occurrence pattern, diagonal and non-positive values removed."""
    interacted = centring == "interacted"
    if similarity == "cosine":
        Z = D
    elif similarity == "adjusted_cosine":  # sim(i,j) with r_ui - mean_u (design notes)
        m = _mean_over(D, 1, interacted)
        Z = np.where(D != 0, D - m, 0.0) if interacted else D - m
    else:  # pearson: item means
        m = _mean_over(D, 0, interacted)
        Z = np.where(D != 0, D - m, 0.0) if interacted else D - m
    S = _cosine_of_columns(Z, shrink)
    B = (D != 0).astype(float)
    S[(B.T @ B) == 0] = 0.0
    np.fill_diagonal(S, 0.0)
    S[S < 0] = 0.0
    return S


@SETTINGS
@given(
    D=matrices(),
    similarity=st.sampled_from(["cosine", "adjusted_cosine", "pearson"]),
    centring=st.sampled_from(["interacted", "all"]),
    shrink=st.sampled_from([0.0, 2.5]),
    block=st.sampled_from([1, 7, 10_000]),
)
def test_item_similarities_match_dense_reference(D, similarity, centring, shrink, block):
    X = sp.csr_matrix(D, dtype=np.float32)
    model = ItemKNN(
        K=D.shape[1], similarity=similarity, centring=centring, shrinkage=shrink, block_flops=block
    )
    S = model.fit(X).similarity_.toarray()
    ref = item_reference(D, similarity, centring, shrink)
    np.testing.assert_allclose(S, ref, atol=2e-5)


@SETTINGS
@given(D=matrices(), K=st.integers(1, 4))
def test_item_topk_keeps_the_k_largest(D, K):
    X = sp.csr_matrix(D, dtype=np.float32)
    S = ItemKNN(K=K, block_flops=5).fit(X).similarity_
    ref = item_reference(D, "cosine", "interacted")
    for i in range(D.shape[1]):
        row = S[i].toarray().ravel()
        assert (row > 0).sum() == min(K, (ref[i] > 0).sum())
        kth = np.sort(ref[i])[::-1][min(K, D.shape[1]) - 1]
        assert np.all(row[row > 0] >= kth - 1e-6)


def user_reference(D: np.ndarray, centring: str) -> np.ndarray:
    n = D.shape[0]
    S = np.zeros((n, n))
    B = D != 0
    if centring == "common":  # Pearson over co-rated items, means over them (surprise)
        for u in range(n):
            for v in range(n):
                c = B[u] & B[v]
                if u == v or c.sum() == 0:
                    continue
                a, b = D[u, c] - D[u, c].mean(), D[v, c] - D[v, c].mean()
                den = np.sqrt((a**2).sum() * (b**2).sum())
                S[u, v] = (a * b).sum() / den if den > 0 else 0.0
    else:  # design notes' formula with mean(u) over interacted / all items
        m = _mean_over(D, 1, centring == "interacted")
        Z = np.where(D != 0, D - m, 0.0) if centring == "interacted" else D - m
        S = _cosine_of_columns(Z.T)
        S[(B.astype(float) @ B.T) == 0] = 0.0
        np.fill_diagonal(S, 0.0)
    S[S < 0] = 0.0
    return S


@SETTINGS
@given(D=matrices(), centring=st.sampled_from(["common", "interacted", "all"]))
def test_user_pearson_matches_dense_reference(D, centring):
    X = sp.csr_matrix(D, dtype=np.float32)
    S = UserKNN(K=D.shape[0], centring=centring, block_flops=3).fit(X).similarity_.toarray()
    np.testing.assert_allclose(S, user_reference(D, centring), atol=2e-5)


@SETTINGS
@given(D=matrices(), seed=st.integers(0, 1000))
def test_centred_cosine_matches_dense_formula(D, seed):
    rng = np.random.default_rng(seed)
    P = rng.random((3, D.shape[1]))
    F = sp.csr_matrix(D)
    got = centred_cosine(P, F)
    for u in range(P.shape[0]):
        for i in range(D.shape[0]):
            a, b = P[u] - P[u].mean(), D[i] - D[i].mean()
            den = np.sqrt((a**2).sum() * (b**2).sum())
            assert got[u, i] == pytest.approx((a * b).sum() / den if den > 0 else 0.0, abs=1e-9)


@SETTINGS
@given(D=matrices())
def test_item_scores_aggregate_neighbours(D):
    X = sp.csr_matrix(D, dtype=np.float32)
    model = ItemKNN(K=3).fit(X)
    S = model.similarity_.toarray()
    np.testing.assert_allclose(model.score(np.arange(D.shape[0]), X), D @ S, rtol=1e-5, atol=1e-5)


def test_weightings_match_implicit_formulas():
    rng = np.random.default_rng(0)
    D = np.where(rng.random((6, 9)) < 0.5, rng.integers(1, 4, (6, 9)), 0).astype(float)
    E = sp.csr_matrix(D)
    N = D.shape[0]
    df = (D != 0).sum(axis=0)
    idf = np.log(N) - np.log1p(df)
    np.testing.assert_allclose(tfidf_weight(E).toarray(), np.sqrt(D) * idf, rtol=1e-5)
    K1, B = 1.2, 0.75
    ln = (1 - B) + B * D.sum(1) / D.sum(1).mean()
    ref = np.where(D != 0, D * (K1 + 1) / (K1 * ln[:, None] + D) * idf, 0.0)
    np.testing.assert_allclose(bm25_weight(E, K1, B).toarray(), ref, rtol=1e-5)
    # Same weighting seen from the transposed side.
    np.testing.assert_allclose(
        bm25_weight(sp.csr_matrix(D.T), K1, B, entities_are_rows=False).toarray(), ref.T, rtol=1e-5
    )


def test_topk_per_row_handles_long_and_short_rows():
    rng = np.random.default_rng(3)
    D = np.where(
        rng.random((5, 300)) < np.array([[0.01], [0.5], [1.0], [0.0], [0.2]]), rng.random((5, 300)), 0
    )
    cols, vals = topk_per_row(sp.csr_matrix(D), 4, exclude_self=False)
    for r in range(5):
        expected = np.sort(D[r][D[r] > 0])[::-1][:4]
        got = vals[r][cols[r] >= 0]
        np.testing.assert_allclose(got, expected, rtol=1e-6)
        np.testing.assert_allclose(D[r, cols[r][cols[r] >= 0]], got, rtol=1e-6)


def topk_reference(S: np.ndarray, K: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute force: per row the positive entries off the diagonal, by value then column, first K."""
    cols = np.full((S.shape[0], K), -1, dtype=np.int32)
    vals = np.full((S.shape[0], K), -np.inf, dtype=np.float32)
    for r in range(S.shape[0]):
        cand = [(-S[r, c], c) for c in range(S.shape[1]) if S[r, c] > 0 and c != r + offset]
        for j, (v, c) in enumerate(sorted(cand)[:K]):
            cols[r, j], vals[r, j] = c, -v
    return cols, vals


@contextmanager
def selection_path(path: str) -> Iterator[None]:
    """Force topk_per_row's dense or sparse selection for every block."""
    import shop_reco.engine.similarity as sim

    saved = sim.DENSE_MIN_DENSITY
    sim.DENSE_MIN_DENSITY = 0.0 if path == "dense" else 2.0
    try:
        yield
    finally:
        sim.DENSE_MIN_DENSITY = saved


@SETTINGS
@given(D=matrices(), K=st.integers(1, 5), offset=st.integers(0, 3), ties=st.booleans())
def test_dense_and_sparse_selection_match_brute_force_ties_included(D, K, offset, ties):
    if ties:  # few distinct values: many ties at the K-th place
        D = np.minimum(D, 2.0)
    S = sp.csr_matrix(D - 2.5 * (D == 3), dtype=np.float32)  # some negative entries too
    S.sort_indices()
    shuffled = S.copy()  # columns out of order within rows, as a sparse product leaves them
    for r in range(S.shape[0]):
        lo, hi = S.indptr[r], S.indptr[r + 1]
        order = np.random.default_rng(r).permutation(hi - lo) + lo
        shuffled.indices[lo:hi], shuffled.data[lo:hi] = S.indices[order], S.data[order]
    shuffled.has_sorted_indices = False
    ref = topk_reference(S.toarray(), K, offset)
    for path in ("dense", "sparse"):
        for M in (S, shuffled):
            with selection_path(path):
                cols, vals = topk_per_row(M, K, row_offset=offset)
            np.testing.assert_array_equal(cols, ref[0])
            np.testing.assert_array_equal(vals, ref[1])


@SETTINGS
@given(D=matrices(max_rows=30, max_cols=14), K=st.integers(1, 8), block=st.sampled_from([1, 40, 10_000]))
def test_item_knn_dense_and_sparse_paths_agree_with_brute_force(D, K, block):
    # Three identical copies of every item: each similarity has exact twins (bit-identical, the
    # same operands in the same order), so ties at the K-th place are the rule, not the exception.
    m = D.shape[1]
    D3 = np.hstack([D, D, D])
    X = sp.csr_matrix(D3, dtype=np.float32)
    with selection_path("dense"):
        dense = ItemKNN(K=K, block_flops=block).fit(X).similarity_
    with selection_path("sparse"):
        sparse = ItemKNN(K=K, block_flops=block).fit(X).similarity_
    assert dense.shape == sparse.shape
    assert (dense != sparse).nnz == 0  # same neighbours, ties included
    ref = item_reference(D3, "cosine", "interacted")
    S = dense.toarray()
    for i in range(ref.shape[0]):
        chosen = np.flatnonzero(S[i])
        best = np.sort(ref[i][ref[i] > 0])[::-1][:K]
        np.testing.assert_allclose(np.sort(S[i, chosen])[::-1], best, atol=2e-6)
        np.testing.assert_allclose(S[i, chosen], ref[i, chosen], atol=2e-6)
        # Among twins (equal similarity) the lower column wins: a chosen copy's lower twin is
        # chosen too, unless it is the item itself.
        for c in chosen[chosen >= m]:
            assert c - m in chosen or c - m == i


def dense_centred_cosine(P: np.ndarray, D: np.ndarray) -> np.ndarray:
    """The formula as written: centre, then cosine (stable: no large terms cancel)."""
    a = P - P.mean(axis=1, keepdims=True)
    b = D - D.mean(axis=1, keepdims=True)
    den = np.sqrt((a**2).sum(axis=1))[:, None] * np.sqrt((b**2).sum(axis=1))[None, :]
    return np.divide(a @ b.T, den, out=np.zeros_like(den), where=den > 0)


def test_centred_cosine_keeps_its_precision_on_near_constant_rows():
    # Profiles and items whose spread is a millionth of their level: |u|^2 - D mean(u)^2 would cancel to noise.
    rng = np.random.default_rng(3)
    P = 0.5 + 1e-6 * rng.random((4, 6))
    D = np.where(rng.random((5, 6)) < 0.9, 3.0 + 1e-6 * rng.random((5, 6)), 0.0)
    D[0] = 7.0 + 1e-6 * rng.random(6)  # fully stored, nearly constant
    np.testing.assert_allclose(centred_cosine(P, sp.csr_matrix(D)), dense_centred_cosine(P, D), atol=1e-9)


def test_centred_cosine_sums_duplicate_entries_and_leaves_the_callers_matrix_alone():
    F = sp.csr_matrix((np.array([1.0, 2.0, 3.0]), np.array([0, 0, 1]), np.array([0, 3])), shape=(1, 3))
    data, indices = F.data.copy(), F.indices.copy()
    P = np.array([[0.2, 0.9, 0.1]])
    np.testing.assert_allclose(centred_cosine(P, F), dense_centred_cosine(P, F.toarray()), atol=1e-12)
    assert np.array_equal(F.data, data) and np.array_equal(F.indices, indices)
