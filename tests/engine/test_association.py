"""Association rules: exact integer thresholds, published Groceries counts, mlxtend agreement."""

from __future__ import annotations

import csv
import itertools
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from shop_reco.engine.association import (
    CartRulesRecommender,
    as_fraction,
    association_rules,
    frequent_itemsets,
)


def load_groceries(root: Path) -> tuple[sp.csr_matrix, list[str]]:
    with open(root / "groceries" / "groceries.csv", encoding="utf-8") as fh:
        rows = [line.rstrip("\n").split(",") for line in fh if line.strip()]
    items = sorted({i for r in rows for i in r})
    index = {k: n for n, k in enumerate(items)}
    r = np.repeat(np.arange(len(rows)), [len(x) for x in rows])
    c = np.array([index[i] for x in rows for i in x])
    return sp.csr_matrix((np.ones(c.size, np.float32), (r, c)), shape=(len(rows), len(items))), items


@pytest.fixture(scope="module")
def groceries(shared_data: Path) -> tuple[sp.csr_matrix, list[str]]:
    return load_groceries(shared_data)


def brute_force_rules(B: np.ndarray, supp: Fraction, conf: Fraction, min_len: int, max_len: int) -> set:
    n, m = B.shape
    min_count = math.ceil(supp * n)
    out = set()
    for size in range(1, max_len + 1):
        for items in itertools.combinations(range(m), size):
            cnt = int(B[:, list(items)].all(axis=1).sum())
            if cnt < min_count or size < max(min_len, 1):
                continue
            for y in items:
                lhs = tuple(i for i in items if i != y)
                lhs_cnt = int(B[:, list(lhs)].all(axis=1).sum()) if lhs else n
                if cnt * conf.denominator >= conf.numerator * lhs_cnt:
                    out.add((lhs, y, cnt))
    return out


def rule_set(rules) -> set:
    return {
        (tuple(rules.lhs_items(r).tolist()), int(rules.rhs[r]), int(rules.count[r]))
        for r in range(len(rules))
    }


@pytest.mark.parametrize("seed", range(6))
def test_rules_match_brute_force_with_exact_thresholds(seed):
    rng = np.random.default_rng(seed)
    B = (rng.random((40, 7)) < rng.uniform(0.2, 0.6)).astype(np.float32)
    supp, conf = Fraction(1, 10), Fraction(1, 2)
    for min_len in (1, 2, 3):
        got = association_rules(sp.csr_matrix(B), supp, conf, min_len=min_len, max_len=4)
        assert rule_set(got) == brute_force_rules(B, supp, conf, min_len, 4)


def test_confidence_equal_to_threshold_counts():
    # {a} in 10 baskets, {a, b} in 8: confidence exactly 0.8 (float ratio of supports is not).
    rows = [[0, 1]] * 8 + [[0]] * 2 + [[2]] * 90
    r = np.repeat(np.arange(len(rows)), [len(x) for x in rows])
    B = sp.csr_matrix((np.ones(r.size), (r, [i for x in rows for i in x])), shape=(len(rows), 3))
    rules = association_rules(B, 0.08, 0.8, min_len=2)
    assert ((0,), 1, 8) in rule_set(rules)
    assert as_fraction(0.001) == Fraction(1, 1000)
    # Support exactly at the threshold counts too: 8/100 >= 0.08.
    assert frequent_itemsets(B, 0.08).lookup()[(0, 1)] == 8


def test_groceries_published_rule_counts(groceries, shared_data):
    B, _ = groceries
    with open(shared_data / "groceries" / "groceries_published_rule_counts.csv", encoding="utf-8") as fh:
        published = list(csv.DictReader(fh))
    assert published
    cache: dict[tuple[str, str], object] = {}
    for row in published:
        key = (row["min_support"], row["maxlen"])
        if key not in cache:
            cache[key] = frequent_itemsets(B, row["min_support"], int(row["maxlen"]))
        rules = association_rules(
            B,
            row["min_support"],
            row["min_confidence"],
            min_len=int(row["minlen"]),
            max_len=int(row["maxlen"]),
            itemsets=cache[key],
        )
        assert len(rules) == int(row["n_rules"]), row
        dist = " ".join(f"{k}:{v}" for k, v in sorted(rules.length_distribution().items()))
        assert dist == row["rule_length_distribution"], row


def test_groceries_has_no_empty_lhs_rule_at_published_thresholds(groceries):
    B, items = groceries
    rules = association_rules(B, "0.001", "0.5", min_len=1)
    assert (np.diff(rules.lhs.indptr) == 0).sum() == 0
    # whole milk, the most frequent item, has support 2513/9835 = 0.2555 < 0.5.
    assert int(np.asarray(B.sum(axis=0)).max()) == 2513
    low = association_rules(B, "0.001", "0.25", min_len=1)
    empty = np.flatnonzero(np.diff(low.lhs.indptr) == 0)
    assert [items[low.rhs[e]] for e in empty] == ["whole milk"]


def test_groceries_matches_mlxtend(groceries):
    pd = pytest.importorskip("pandas")
    mlx = pytest.importorskip("mlxtend.frequent_patterns")
    B, items = groceries
    df = pd.DataFrame(B.toarray().astype(bool), columns=items)
    fi = mlx.fpgrowth(df, min_support=0.005, use_colnames=False, max_len=10)
    ref = mlx.association_rules(fi, metric="confidence", min_threshold=0.3)
    ref = ref[ref["consequents"].apply(len) == 1]
    ref_set = {
        (tuple(sorted(a)), next(iter(c))) for a, c in zip(ref["antecedents"], ref["consequents"], strict=True)
    }
    ours = association_rules(B, 0.005, 0.3, min_len=2)
    ours_set = {(tuple(ours.lhs_items(r).tolist()), int(ours.rhs[r])) for r in range(len(ours))}
    # mlxtend compares float ratios; allow only rules within rounding of the threshold to differ.
    diff = ours_set ^ ref_set
    conf = dict(
        zip(
            ((tuple(ours.lhs_items(r).tolist()), int(ours.rhs[r])) for r in range(len(ours))),
            ours.confidence,
            strict=True,
        )
    )
    assert all(abs(conf.get(d, 0.3) - 0.3) < 1e-9 for d in diff)
    assert len(ours_set) > 100
    lift = dict(zip(ref_set, ref["lift"], strict=False))
    assert lift  # measures: compare lift/conviction of common rules
    mine = {
        (tuple(ours.lhs_items(r).tolist()), int(ours.rhs[r])): (ours.lift[r], ours.conviction[r])
        for r in range(len(ours))
    }
    for (a, c), lf, cv in zip(
        (
            (tuple(sorted(a)), next(iter(c)))
            for a, c in zip(ref["antecedents"], ref["consequents"], strict=True)
        ),
        ref["lift"],
        ref["conviction"],
        strict=True,
    ):
        assert mine[(a, c)][0] == pytest.approx(lf, rel=1e-9)
        if np.isfinite(cv):
            assert mine[(a, c)][1] == pytest.approx(cv, rel=1e-9)


def test_cart_recommender_aggregates_rules_over_the_whole_cart():
    # Baskets: {0,1} -> 2 strongly, {3} -> 4.
    rows = [[0, 1, 2]] * 5 + [[0, 1]] * 1 + [[3, 4]] * 4 + [[0]] * 3 + [[1]] * 3
    r = np.repeat(np.arange(len(rows)), [len(x) for x in rows])
    B = sp.csr_matrix((np.ones(r.size, np.float32), (r, [i for x in rows for i in x])), shape=(len(rows), 5))
    model = CartRulesRecommender(min_support=0.05, min_confidence=0.3, max_len=3).fit(B)
    ids, scores = model.recommend(-1, sp.csr_matrix(([1.0, 1.0], ([0, 0], [0, 1])), shape=(1, 5)), N=2)
    assert ids[0] == 2
    assert scores[0] == pytest.approx(5 / 6, rel=1e-5)
    cart = sp.csr_matrix(([1.0, 1.0, 1.0], ([0, 0, 0], [0, 1, 3])), shape=(1, 5))
    ids, scores = model.recommend(-1, cart, N=5)
    assert ids[:2].tolist() == [4, 2]  # 3 => 4 (confidence 1) beats {0, 1} => 2 (5/6)
