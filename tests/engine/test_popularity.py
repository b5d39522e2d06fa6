"""Popularity and trending against the formulas written out event by event."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

from shop_reco.engine.popularity import PopularityRecommender, TrendingRecommender

DAY = 86_400.0


@pytest.fixture
def events():
    rng = np.random.default_rng(3)
    n_events, n_items = 400, 12
    items = rng.integers(0, n_items, n_events)
    # Item 0 sells mostly in the last week, item 1 mostly two months ago: opposite trends.
    ages_days = rng.uniform(0, 90, n_events)
    ages_days[items == 0] = rng.uniform(0, 7, (items == 0).sum())
    ages_days[items == 1] = rng.uniform(50, 70, (items == 1).sum())
    now = 1_700_000_000.0
    timestamps = now - ages_days * DAY
    weights = rng.choice([1.0, 3.0, -1.0], n_events, p=[0.7, 0.2, 0.1])
    matrix = sp.csr_matrix(np.ones((1, n_items), dtype=np.float32))
    return items, timestamps, weights, now, n_items, matrix


def brute_decayed(items, timestamps, weights, now, n_items, half_life):
    totals = [0.0] * n_items
    for item, t, w in zip(items, timestamps, weights, strict=True):
        if t <= now:
            totals[item] += w * 0.5 ** ((now - t) / (half_life * DAY))
    return np.array(totals)


def test_decayed_popularity_matches_the_event_sum(events):
    items, timestamps, weights, now, n_items, matrix = events
    model = PopularityRecommender(half_life_days=10).fit(
        matrix, item_idx=items, timestamps=timestamps, weights=weights, now=now
    )
    expected = brute_decayed(items, timestamps, weights, now, n_items, 10)
    np.testing.assert_allclose(model.popularity_, expected, rtol=1e-9)
    top, _ = model.top_items(3)
    assert list(top) == list(np.argsort(-expected, kind="stable")[:3])


def test_trending_score_matches_its_formula_and_ranks_the_rising_item_first(events):
    items, timestamps, weights, now, n_items, matrix = events
    model = TrendingRecommender(short_half_life_days=7, long_half_life_days=28, prior=0.5).fit(
        matrix, item_idx=items, timestamps=timestamps, weights=weights, now=now
    )
    expected = []
    for item in range(n_items):
        short = brute_decayed(items, timestamps, weights, now, n_items, 7)[item] * math.log(2) / 7
        long = brute_decayed(items, timestamps, weights, now, n_items, 28)[item] * math.log(2) / 28
        short, long = max(short, 0.0), max(long, 0.0)
        expected.append((short + 0.5) / (long + 0.5) * math.log1p(short))
    np.testing.assert_allclose(model.popularity_, expected, rtol=1e-9)
    top, _ = model.top_items(n_items)
    assert top[0] == 0
    assert list(top).index(1) > list(top).index(0)
