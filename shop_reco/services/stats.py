"""Statistics for experiment reports, from counts and sums only (no Django, no raw per-visitor arrays).

Rates use the Wilson score interval and the pooled two-proportion z-test (equal to Pearson's chi-square on the
2x2 table without continuity correction: chi2 = z**2). Means use the t interval and Welch's unequal-variance
t-test with the Welch-Satterthwaite degrees of freedom. Distribution tails come from scipy.stats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any


@cache
def _distributions() -> Any:
    # scipy.stats takes seconds and ~100,000 objects to import: only the experiments' report needs it, so
    # shop pages (which import this module through the experiments service) never load it.
    from scipy import stats

    return stats


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class TestResult:
    statistic: float
    p_value: float
    df: float | None = None  # degrees of freedom for t and chi-square tests

    def significant(self, confidence: float = 0.95) -> bool:
        return self.p_value < 1.0 - confidence


@dataclass(frozen=True)
class MeanSummary:
    """A sample summarised by size, sum and sum of squares (zeros included: a visitor who bought nothing)."""

    n: int
    total: float
    total_squares: float

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        """Unbiased sample variance (ddof=1); 0 for fewer than two observations."""
        if self.n < 2:
            return 0.0
        # max(): rounding can make a zero variance slightly negative.
        return max(0.0, (self.total_squares - self.n * self.mean**2) / (self.n - 1))

    @classmethod
    def of(cls, values: list[float]) -> MeanSummary:
        return cls(len(values), float(sum(values)), float(sum(v * v for v in values)))


def _z(confidence: float) -> float:
    return float(_distributions().norm.ppf(0.5 + confidence / 2))


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a binomial proportion; good near 0 and 1 and for small samples."""
    if trials <= 0:
        return Interval(0.0, 0.0, 0.0)
    successes = min(max(successes, 0), trials)
    z = _z(confidence)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half))


def two_proportion_test(successes_a: int, trials_a: int, successes_b: int, trials_b: int) -> TestResult:
    """Two-sided pooled z-test of p_a == p_b; ``statistic`` is z (positive when b is higher)."""
    if trials_a <= 0 or trials_b <= 0:
        return TestResult(0.0, 1.0)
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    variance = pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b)
    if variance <= 0:  # both all-successes or all-failures: no evidence of a difference
        return TestResult(0.0, 1.0)
    z = (successes_b / trials_b - successes_a / trials_a) / math.sqrt(variance)
    return TestResult(z, float(2 * _distributions().norm.sf(abs(z))))


def chi_square_test(successes_a: int, trials_a: int, successes_b: int, trials_b: int) -> TestResult:
    """Pearson's chi-square on the 2x2 table (one degree of freedom, no continuity correction)."""
    z = two_proportion_test(successes_a, trials_a, successes_b, trials_b)
    chi2 = z.statistic**2
    return TestResult(chi2, float(_distributions().chi2.sf(chi2, 1)) if chi2 else 1.0, df=1.0)


def mean_interval(sample: MeanSummary, confidence: float = 0.95) -> Interval:
    """Student t interval for a mean."""
    if sample.n < 2:
        return Interval(sample.mean, sample.mean, sample.mean)
    half = float(_distributions().t.ppf(0.5 + confidence / 2, sample.n - 1)) * math.sqrt(
        sample.variance / sample.n
    )
    return Interval(sample.mean, sample.mean - half, sample.mean + half)


def welch_test(a: MeanSummary, b: MeanSummary) -> TestResult:
    """Two-sided Welch t-test of mean_a == mean_b; ``statistic`` is t (positive when b is higher)."""
    if a.n < 2 or b.n < 2:
        return TestResult(0.0, 1.0)
    va, vb = a.variance / a.n, b.variance / b.n
    if va + vb <= 0:
        return TestResult(0.0, 1.0)
    t = (b.mean - a.mean) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
    return TestResult(t, float(2 * _distributions().t.sf(abs(t), df)), df=df)
