"""The report's statistics against scipy.stats computed independently on the same data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from shop_reco.services import stats


@given(
    n=st.integers(min_value=1, max_value=5000),
    fraction=st.floats(min_value=0, max_value=1),
    confidence=st.sampled_from([0.9, 0.95, 0.99]),
)
@settings(max_examples=200, deadline=None)
def test_wilson_matches_scipy(n, fraction, confidence):
    k = round(n * fraction)
    ours = stats.wilson_interval(k, n, confidence)
    theirs = sps.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    assert ours.low == pytest.approx(theirs.low, abs=1e-9)
    assert ours.high == pytest.approx(theirs.high, abs=1e-9)
    assert ours.estimate == pytest.approx(k / n)


@pytest.mark.parametrize(
    ("k1", "n1", "k2", "n2"),
    [(30, 1000, 45, 1000), (5, 80, 12, 95), (400, 4000, 380, 4100), (1, 20, 0, 25), (990, 1000, 999, 1000)],
)
def test_two_proportion_and_chi_square_match_scipy(k1, n1, k2, n2):
    table = np.array([[k1, n1 - k1], [k2, n2 - k2]])
    chi2, p_value, dof, _ = sps.chi2_contingency(table, correction=False)
    z = stats.two_proportion_test(k1, n1, k2, n2)
    chi = stats.chi_square_test(k1, n1, k2, n2)
    assert z.p_value == pytest.approx(p_value, rel=1e-9)
    assert chi.statistic == pytest.approx(chi2, rel=1e-9)
    assert chi.p_value == pytest.approx(p_value, rel=1e-9)
    assert chi.df == dof
    # The sign says which way: positive when the second group converts more.
    assert (z.statistic > 0) == (k2 / n2 > k1 / n1)


def test_two_proportion_degenerate_tables():
    assert stats.two_proportion_test(0, 100, 0, 100).p_value == 1.0
    assert stats.two_proportion_test(0, 0, 3, 10).p_value == 1.0


@given(seed=st.integers(min_value=0, max_value=10_000), zeros=st.floats(min_value=0, max_value=0.98))
@settings(max_examples=60, deadline=None)
def test_welch_and_mean_interval_match_scipy(seed, zeros):
    """Revenue per visitor: mostly zeros, a few skewed order values, as in a real shop."""
    rng = np.random.default_rng(seed)
    a = rng.lognormal(3, 1, 300) * (rng.random(300) > zeros)
    b = rng.lognormal(3.1, 1, 250) * (rng.random(250) > zeros)
    if a.var() == 0 or b.var() == 0:
        return
    ours = stats.welch_test(stats.MeanSummary.of(list(a)), stats.MeanSummary.of(list(b)))
    theirs = sps.ttest_ind(b, a, equal_var=False)
    assert ours.statistic == pytest.approx(theirs.statistic, rel=1e-6)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-6, abs=1e-12)
    interval = stats.mean_interval(stats.MeanSummary.of(list(a)), 0.95)
    low, high = sps.t.interval(0.95, len(a) - 1, loc=a.mean(), scale=sps.sem(a))
    assert interval.low == pytest.approx(low, rel=1e-6)
    assert interval.high == pytest.approx(high, rel=1e-6)


def test_mean_summary_variance_is_the_sample_variance():
    values = [0.0, 0.0, 12.5, 0.0, 40.0]
    summary = stats.MeanSummary.of(values)
    assert summary.mean == pytest.approx(np.mean(values))
    assert summary.variance == pytest.approx(np.var(values, ddof=1))
