"""Ranking metrics against hand-computed values; splits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from shop_reco.engine.evaluation import (
    basket_completion_split,
    evaluate,
    format_table,
    ranking_metrics,
    temporal_split,
)
from shop_reco.engine.popularity import PopularityRecommender


def test_metrics_on_a_hand_built_case():
    recs = np.array([[3, 1, 7, -1], [5, 6, 8, 9], [2, 0, 4, 1]])
    truth = [{1, 7, 9}, {0}, {2, 4}]
    got = ranking_metrics(recs, truth, k=4, n_items=10)
    # user 0: hits at ranks 2, 3; user 1: none; user 2: hits at 1, 3.
    d = [1 / math.log2(p + 1) for p in range(1, 5)]
    ndcg0 = (d[1] + d[2]) / (d[0] + d[1] + d[2])
    ndcg2 = (d[0] + d[2]) / (d[0] + d[1])
    assert got["ndcg"] == pytest.approx((ndcg0 + 0 + ndcg2) / 3)
    assert got["precision"] == pytest.approx((2 / 4 + 0 + 2 / 4) / 3)
    assert got["recall"] == pytest.approx((2 / 3 + 0 + 2 / 2) / 3)
    ap0 = (1 / 2 + 2 / 3) / 3
    ap2 = (1 / 1 + 2 / 3) / 2
    assert got["map"] == pytest.approx((ap0 + 0 + ap2) / 3)
    assert got["hit_rate"] == pytest.approx(2 / 3)
    assert got["mrr"] == pytest.approx((1 / 2 + 0 + 1) / 3)
    assert got["coverage"] == pytest.approx(len({3, 1, 7, 5, 6, 8, 9, 2, 0, 4}) / 10)
    assert got["users"] == 3


def test_users_without_truth_are_skipped_and_sparse_truth_works():
    recs = np.array([[0, 1], [1, 0]])
    truth = sp.csr_matrix(np.array([[0, 1, 0], [0, 0, 0]], dtype=np.float32))
    got = ranking_metrics(recs, truth, k=2)
    assert got["users"] == 1
    assert got["hit_rate"] == 1.0
    assert got["mrr"] == pytest.approx(0.5)
    assert got["ndcg"] == pytest.approx((1 / math.log2(3)) / 1.0)


def test_ndcg_at_k_caps_the_ideal_list():
    recs = np.array([[0, 1]])
    got = ranking_metrics(recs, [{0, 1, 2, 3}], k=2, n_items=4)
    assert got["ndcg"] == pytest.approx(1.0)
    assert got["map"] == pytest.approx(1.0)
    assert got["recall"] == pytest.approx(0.5)


def test_temporal_split_and_basket_completion():
    u = [0, 0, 1, 1, 2]
    i = [0, 1, 1, 2, 0]
    t = [1.0, 5.0, 2.0, 9.0, 10.0]
    train, test = temporal_split(u, i, t, split_time=5.0, end_time=10.0, n_users=3, n_items=3)
    assert train.toarray().tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]
    assert test.toarray().tolist() == [[0, 1, 0], [0, 0, 1], [0, 0, 0]]
    B = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 0], [1, 1, 1]], dtype=np.float32))
    carts, hidden, rows = basket_completion_split(B, seed=42)
    assert rows.tolist() == [0, 2]
    for c, h, r in zip(carts.toarray(), hidden, rows, strict=True):
        original = B[r].toarray().ravel()
        assert original[h] == 1 and c[h] == 0
        assert (c + np.eye(3)[h] == original).all()


def test_evaluate_and_table():
    X = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 1, 0]], dtype=np.float32))
    model = PopularityRecommender().fit(X)
    res = evaluate(model, X[:2], [2, 2], k=2)
    assert res["hit_rate"] == 1.0
    table = format_table({"popularity": res})
    assert "ndcg@10" in table.splitlines()[0] and "popularity" in table
