"""Every recommender on odd matrices: empty, one row, one column, negative values, NaN and infinity.

Non-finite input is a clear ValueError; everything else fits and recommends finite scores or -1 padding.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.engine.test_contract import CASES


def make(name: str):
    factory, _ = CASES[name]
    return factory()


def fit_params(name: str, X: sp.csr_matrix) -> dict:
    if name == "content":  # one feature per item: the identity
        return {"item_features": sp.identity(X.shape[1], dtype=np.float32, format="csr")}
    return {}


def check_output(model, X: sp.csr_matrix, N: int = 3) -> None:
    ids, scores = model.recommend(None, X, N=N)
    assert ids.shape == scores.shape == (X.shape[0], min(N, X.shape[1]))
    assert ((ids >= -1) & (ids < X.shape[1])).all()
    assert np.isfinite(scores[ids >= 0]).all()
    for row in range(X.shape[0]):  # never an item twice, never an item already in the history
        chosen = ids[row][ids[row] >= 0]
        assert len(set(chosen.tolist())) == chosen.size
        assert not set(chosen.tolist()) & set(X[row].indices.tolist())


ODD = {
    "no_users": sp.csr_matrix((0, 5), dtype=np.float32),
    "all_zero": sp.csr_matrix((3, 5), dtype=np.float32),
    "one_row": sp.csr_matrix(np.array([[1, 0, 2, 0, 1]], np.float32)),
    "one_item": sp.csr_matrix(np.array([[1], [2], [0]], np.float32)),
    "negative": sp.csr_matrix(np.array([[1, -1, 0, 2], [-2, 1, 1, 0], [0, 0, -1, 3]], np.float32)),
    # Far past any decayed, weighted count (weights are at most 100); float32's own limit is not a goal.
    "large": sp.csr_matrix(np.array([[1e6, 1, 0], [1, 1e6, 1]], np.float32)),
}


@pytest.mark.parametrize("matrix", sorted(ODD))
@pytest.mark.parametrize("name", sorted(CASES))
def test_odd_matrices_fit_and_recommend_or_raise_a_value_error(name, matrix):
    X = ODD[matrix]
    model = make(name)
    try:
        model.fit(X, **fit_params(name, X))
    except ValueError as exc:  # allowed, if it says why (e.g. PureSVD needs at least one user)
        assert str(exc)
        assert matrix in ("no_users", "one_item", "all_zero")
        return
    check_output(model, X)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", sorted(CASES))
def test_non_finite_values_are_a_clear_value_error(name, bad):
    X = sp.csr_matrix(np.array([[1, bad, 0], [0, 1, 1]], np.float32))
    with pytest.raises(ValueError, match="NaN or infinity"):
        make(name).fit(X, **fit_params(name, X))
    # ... and in the histories given to recommend.
    good = sp.csr_matrix(np.array([[1, 0, 0], [0, 1, 1]], np.float32))
    model = make(name).fit(good, **fit_params(name, good))
    with pytest.raises(ValueError, match="NaN or infinity"):
        model.recommend(None, X, N=2)


def test_a_history_of_the_wrong_width_is_a_value_error():
    X = sp.csr_matrix(np.eye(4, dtype=np.float32))
    model = make("item_knn").fit(X)
    with pytest.raises(ValueError, match="columns"):
        model.recommend(None, sp.csr_matrix(np.ones((1, 5), np.float32)), N=2)


matrices = hnp.arrays(
    np.float32,
    st.tuples(st.integers(1, 6), st.integers(1, 6)),
    elements=st.sampled_from([0.0, 0.0, 0.0, 1.0, 2.0, 5.0, -1.0, 0.5]),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dense=matrices, name=st.sampled_from(sorted(CASES)))
def test_generated_small_matrices(dense, name):
    X = sp.csr_matrix(dense)
    model = make(name)
    try:
        model.fit(X, **fit_params(name, X))
    except ValueError as exc:
        assert str(exc)
        return
    check_output(model, X, N=4)
