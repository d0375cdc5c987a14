"""The statistics a ranking rests on: seed summaries with confidence intervals, Welch's t-test with
Holm's correction, and tests against chance.

Greff et al. (2017) compare LSTM variants with Welch's t-test; with several cells compared at once the
p-values are Holm-corrected (family-wise error 5 %), so that a shared rank is never claimed apart.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

ALPHA = 0.05


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation, n and a 95 % t confidence interval of a metric over seeds."""

    mean: float
    std: float
    n: int
    low: float  # the interval's ends; equal to the mean when n < 2 (no interval)
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        if not values:
            raise ValueError("a summary needs at least one value")
        mean = statistics.fmean(values)
        if len(values) < 2:
            return cls(mean, 0.0, len(values), mean, mean)
        from scipy import stats

        std = statistics.stdev(values)
        half = stats.t.ppf(1 - ALPHA / 2, len(values) - 1) * std / math.sqrt(len(values))
        return cls(mean, std, len(values), mean - half, mean + half)


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t-test that ``a`` and ``b`` have the same mean (1.0 when either has
    fewer than two values, or both are constant and equal: no evidence of a difference)."""
    if len(a) < 2 or len(b) < 2:
        return 1.0
    if statistics.pvariance(a) == 0 and statistics.pvariance(b) == 0:
        return 1.0 if statistics.fmean(a) == statistics.fmean(b) else 0.0
    from scipy import stats

    with warnings.catch_warnings():  # scipy warns of precision loss when one side is nearly constant
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def above_p(values: Sequence[float], level: float) -> float:
    """One-sided p-value that the mean of ``values`` (seeds) is above ``level`` (one-sample t-test)."""
    if len(values) < 2:
        return 1.0
    if statistics.pvariance(values) == 0:
        return 0.0 if values[0] > level else 1.0
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_1samp(values, level, alternative="greater").pvalue)


def binomial_above_p(accuracy: float, count: int, chance: float) -> float:
    """One-sided p-value that a model scoring ``accuracy`` on ``count`` test examples is above ``chance``
    (what a single run can say: this model beats chance on this test set)."""
    if count < 1:
        return 1.0
    from scipy import stats

    return float(stats.binomtest(round(accuracy * count), count, chance, alternative="greater").pvalue)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
