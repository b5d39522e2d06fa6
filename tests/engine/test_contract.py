"""One contract, run on every recommender (implicit's RecommenderBaseTestMixin)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from shop_reco.engine import ALGORITHMS, import_recommender
from shop_reco.engine.association import CartRulesRecommender, CoOccurrenceRecommender
from shop_reco.engine.base import BaseRecommender
from shop_reco.engine.content import ContentRecommender
from shop_reco.engine.factors import ImplicitALS, PureSVD
from shop_reco.engine.hybrid import HybridRecommender
from shop_reco.engine.item_knn import ItemKNN
from shop_reco.engine.popularity import BuyItAgainRecommender, PopularityRecommender, TrendingRecommender
from shop_reco.engine.user_knn import UserKNN, UserKNNRating

N_ITEMS = 50


def checkerboard(n: int = N_ITEMS) -> sp.csr_matrix:
    """User i likes every item of its parity except item i (held out)."""
    D = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        D[i, i % 2 :: 2] = 1.0
    D -= np.eye(n, dtype=np.float32)
    return sp.csr_matrix(D)


def parity_features(n: int = N_ITEMS) -> sp.csr_matrix:
    F = np.zeros((n, 2 + n), dtype=np.float32)
    F[np.arange(n), np.arange(n) % 2] = 1.0
    F[np.arange(n), 2 + np.arange(n)] = 0.1
    return sp.csr_matrix(F)


def fit_params(name: str) -> dict[str, Any]:
    return {"content": {"item_features": parity_features()}}.get(name, {})


# name -> (factory, recommends the held-out checkerboard item first)
CASES: dict[str, tuple[Callable[[], BaseRecommender], bool]] = {
    "item_knn": (lambda: ItemKNN(K=50), True),
    "item_knn_bm25": (lambda: ItemKNN(K=50, weighting="bm25"), True),
    "item_knn_adjusted_all": (lambda: ItemKNN(K=50, similarity="adjusted_cosine", centring="all"), True),
    "user_knn": (lambda: UserKNN(K=10, centring="all"), True),
    "user_knn_rating": (lambda: UserKNNRating(k=10), False),
    "content": (lambda: ContentRecommender(K=10), True),
    "cart_rules": (lambda: CartRulesRecommender(min_support=0.02, min_confidence=0.1, max_len=2), True),
    "cooccurrence": (lambda: CoOccurrenceRecommender(), True),
    "popularity": (lambda: PopularityRecommender(), False),
    "trending": (lambda: TrendingRecommender(), False),
    "buy_it_again": (lambda: BuyItAgainRecommender(), False),
    "als": (lambda: ImplicitALS(factors=4, iterations=10, regularization=0.1, random_state=0), True),
    "pure_svd": (lambda: PureSVD(factors=4), True),
    "hybrid": (
        lambda: HybridRecommender(
            sources=[("cf", ItemKNN(K=50)), ("pop", PopularityRecommender())], weights={"cf": 1.0, "pop": 0.1}
        ),
        True,
    ),
}


def test_every_registered_algorithm_is_under_contract():
    classes = {type(factory()) for factory, _ in CASES.values()}
    for path in ALGORITHMS.values():
        assert import_recommender(path) in classes


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> tuple[str, BaseRecommender, bool]:
    name = request.param
    factory, checker = CASES[name]
    model = factory()
    X = checkerboard()
    model.fit(X, **fit_params(name.split("_bm25")[0] if name.startswith("content") else name))
    return name, model, checker


def test_init_stores_hyperparameters_only(case):
    name, _, _ = case
    fresh = CASES[name][0]()
    assert not [k for k in vars(fresh) if k.endswith("_")]
    assert set(fresh.get_params()) == set(type(fresh)._param_names())


def test_checkerboard_held_out_item_first(case):
    name, model, checker = case
    if not checker:
        pytest.skip(f"{name} is not personalised by co-occurrence")
    X = checkerboard()
    ids, _ = model.recommend(np.arange(N_ITEMS), X, N=1)
    assert ids[:, 0].tolist() == list(range(N_ITEMS))


def test_batch_equals_single(case):
    _, model, _ = case
    X = checkerboard()
    users = np.arange(N_ITEMS)
    batch_ids, batch_scores = model.recommend(users, X, N=7)
    assert batch_ids.shape == (N_ITEMS, 7)
    for u in (0, 1, 17, N_ITEMS - 1):
        ids, scores = model.recommend(int(u), X[u], N=7)
        assert ids.shape == (7,)
        np.testing.assert_array_equal(ids, batch_ids[u])
        np.testing.assert_allclose(scores, batch_scores[u], rtol=1e-5, atol=1e-6)


def test_filters(case):
    _, model, _ = case
    X = checkerboard()
    blocked = np.arange(0, N_ITEMS, 3)
    ids, _ = model.recommend(np.arange(N_ITEMS), X, N=10, filter_items=blocked)
    assert not np.isin(ids, blocked).any()
    ids, _ = model.recommend(np.arange(N_ITEMS), X, N=N_ITEMS, filter_already_liked=True)
    for u in range(N_ITEMS):
        liked = X[u].indices
        assert not np.isin(ids[u], liked).any()
    ids, _ = model.recommend(np.arange(N_ITEMS), X, N=N_ITEMS, filter_already_liked=False)
    assert (ids >= 0).all()


def test_n_larger_than_catalogue(case):
    _, model, _ = case
    X = checkerboard()
    ids, scores = model.recommend(3, X[3], N=10 * N_ITEMS)
    assert ids.shape == (N_ITEMS,)
    valid = ids >= 0
    # Every allowed item is returned exactly once, the rest is padding at the end.
    assert valid.sum() == N_ITEMS - X[3].nnz
    assert len(set(ids[valid].tolist())) == valid.sum()
    assert not valid[valid.sum() :].any()
    assert np.all(np.isneginf(scores[~valid]))
    assert np.all(np.diff(scores[valid]) <= 1e-6)


def test_empty_history(case):
    _, model, _ = case
    empty = sp.csr_matrix((2, N_ITEMS), dtype=np.float32)
    ids, scores = model.recommend(np.array([-1, -1]), empty, N=5)
    assert ids.shape == (2, 5)
    assert np.isfinite(scores[ids >= 0]).all()
    ids, _ = model.recommend(None, empty, N=5)
    assert ids.shape == (2, 5)


def test_similar_items(case):
    _, model, _ = case
    ids, _ = model.similar_items(np.array([0, 1]), N=4)
    assert ids.shape == (2, 4)
    assert 0 not in ids[0] and 1 not in ids[1]
    single, _ = model.similar_items(0, N=4)
    np.testing.assert_array_equal(single, ids[0])


def test_save_load_round_trip(case, tmp_path):
    name, model, _ = case
    path = tmp_path / f"{name}.npz"
    model.save(path)
    loaded = BaseRecommender.load(path)
    assert type(loaded) is type(model)
    assert loaded.get_params().keys() == model.get_params().keys()
    X = checkerboard()
    a = model.recommend(np.arange(N_ITEMS), X, N=5)
    b = loaded.recommend(np.arange(N_ITEMS), X, N=5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], rtol=1e-6)
    with np.load(path, allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)


def test_unfitted_model_raises():
    from shop_reco.engine.base import NotFittedError

    with pytest.raises(NotFittedError):
        ItemKNN().recommend(0, checkerboard()[0])
