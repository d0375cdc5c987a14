"""rnnbench.analysis.stats against scipy, brute force or simulation: TOST, power, Dodge's expectation, IQM and its
bootstrap, the probability of improvement, Wilcoxon, and the three-way verdicts built on them."""

from __future__ import annotations

import itertools
import math
import random
import statistics

import numpy as np
import pytest
from scipy import stats as sp

from rnnbench.analysis import stats


def test_welch_difference_ci_matches_scipy():
    a, b = [0.91, 0.93, 0.90, 0.95, 0.92], [0.85, 0.88, 0.86, 0.90]
    diff, low, high = stats.difference_ci(a, b)
    found = sp.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert diff == pytest.approx(statistics.fmean(a) - statistics.fmean(b))
    assert (low, high) == pytest.approx((found.low, found.high))


def test_tost_is_the_larger_of_two_one_sided_welch_tests():
    a, b, margin = [0.90, 0.91, 0.905, 0.92, 0.915, 0.90], [0.905, 0.91, 0.90, 0.915, 0.92, 0.908], 0.02
    lower = sp.ttest_ind(a, [x - margin for x in b], equal_var=False, alternative="greater").pvalue
    upper = sp.ttest_ind(a, [x + margin for x in b], equal_var=False, alternative="less").pvalue
    assert stats.tost_p(a, b, margin) == pytest.approx(max(lower, upper))
    assert stats.tost_p(a, b, margin) < 0.05, "close and precise: equivalent within 0.02"
    assert stats.tost_p(a, [x + 0.05 for x in b], margin) > 0.5, "5 points apart: not equivalent"
    assert stats.tost_p([1.0] * 5, [0.999] * 5) == 1.0, "no spread: equivalence cannot be shown either"


def test_the_detectable_difference_is_detected_with_80_percent_power():
    """Simulate Welch's test at the returned difference: it rejects in about 80 % of the draws."""
    n, sigma = 8, 0.05
    se, df = sigma * math.sqrt(2 / n), 2 * n - 2
    delta = stats.detectable_difference(se, df)
    assert 2.8 * se < delta < 3.2 * se, "about (t_0.975 + t_0.8) standard errors"
    rng = np.random.default_rng(0)
    hits = sum(
        sp.ttest_ind(rng.normal(delta, sigma, n), rng.normal(0, sigma, n)).pvalue < 0.05 for _ in range(4000)
    )
    assert hits / 4000 == pytest.approx(0.80, abs=0.025)
    assert math.isnan(stats.detectable_difference(0.0, 4))


def test_verdicts_are_three_way_and_never_equivalence_from_a_failed_test():
    # The case: vanilla's best three 0.313, 0.356, 0.998 against a variant's 1.0, 1.0, 1.0.
    (verdict,) = stats.welch_verdicts([[1.0, 1.0, 1.0]], [0.313, 0.356, 0.998])
    assert verdict.kind == "inconclusive" and verdict.p > 0.05 and verdict.p_equivalence > 0.05
    assert verdict.detectable > 0.5, "three seeds this spread out could only see a huge difference"
    assert verdict.label.startswith("inconclusive: +0.444 [")
    better, equal, worse = stats.welch_verdicts(
        [[0.95, 0.96, 0.94, 0.95, 0.96], [0.901, 0.899, 0.9, 0.902, 0.898], [0.5, 0.52, 0.51, 0.49, 0.5]],
        [0.9, 0.902, 0.899, 0.901, 0.898],
    )
    assert (better.kind, equal.kind, worse.kind) == ("better", "equivalent", "worse")
    assert better.low > 0 and worse.high < 0 and -0.02 < equal.low < equal.high < 0.02
    (unlearned,) = stats.welch_verdicts([[0.95] * 3], [0.25, 0.26, 0.24], learned=[False])
    assert (
        unlearned.kind == "inconclusive" and unlearned.label == "inconclusive: did not learn at this budget"
    )


def test_holm_adjusts_both_families():
    cells = [[0.5 + 0.01 * k for k in range(5)], [0.52 + 0.01 * k for k in range(5)]]
    reference = [0.5 + 0.01 * k + 0.001 for k in range(5)]
    verdicts = stats.welch_verdicts(cells, reference)
    raw = [stats.welch_p(c, reference) for c in cells]
    assert [v.p for v in verdicts] == pytest.approx(stats.holm(raw))


def test_paired_comparisons_wilcoxon_and_bootstrap():
    rng = random.Random(0)
    shifted = [0.1 + rng.gauss(0, 0.01) for _ in range(12)]
    found = stats.paired(shifted)
    assert found.p == pytest.approx(sp.wilcoxon(shifted).pvalue)
    assert found.low < statistics.fmean(shifted) < found.high and found.low > 0
    noise = [rng.gauss(0, 0.004) for _ in range(20)]
    better, equal, few = stats.paired_verdicts([shifted, noise, [0.3, -0.2, 0.1]])
    assert (better.kind, equal.kind, few.kind) == ("better", "equivalent", "inconclusive")
    assert better.test == "Wilcoxon" and better.n == 12
    assert stats.wilcoxon_p([0.0, 0.0, 0.0]) == 1.0


def _brute_force_max(values: list[float], n: int) -> float:
    """E[max of n draws with replacement], enumerating every ordered draw."""
    draws = list(itertools.product(values, repeat=n))
    return sum(max(d) for d in draws) / len(draws)


def test_dodge_expected_maximum_equals_brute_force():
    values = [0.2, 0.9, 0.5, 0.7, 0.35]
    tests = [0.1, 0.8, 0.6, 0.65, 0.3]
    for n in (1, 2, 3, 4):
        best, picked = stats.expected_best(values, tests, n)
        assert best == pytest.approx(_brute_force_max(values, n))
        draws = list(itertools.product(range(5), repeat=n))
        assert picked == pytest.approx(sum(tests[max(d, key=values.__getitem__)] for d in draws) / len(draws))
    low, _ = stats.expected_best(values, None, 3, mode="min")
    assert low == pytest.approx(-_brute_force_max([-v for v in values], 3)), "a loss: the expected minimum"
    assert stats.expected_best(values, None, 1)[0] == pytest.approx(statistics.fmean(values))


def test_budget_curve_rises_with_n_and_its_band_holds_it():
    rng = random.Random(1)
    values = [rng.random() for _ in range(20)]
    curve = stats.budget_curve(values, values)
    assert [p.n for p in curve] == list(range(1, 21))
    assert all(a.best <= b.best for a, b in itertools.pairwise(curve))
    assert all(p.low <= p.best <= p.high for p in curve)
    assert curve[-1].best < max(values), "N draws with replacement rarely all include the maximum"
    tests = [rng.random() for _ in range(20)]
    for mode in ("max", "min"):  # every n at once equals the expected best one n at a time
        for point in stats.budget_curve(values, tests, mode=mode):
            best, picked = stats.expected_best(values, tests, point.n, mode)
            assert (point.best, point.test) == (pytest.approx(best), pytest.approx(picked))


def test_iqm_and_its_stratified_bootstrap():
    assert stats.iqm([1, 2, 3, 4, 5, 6, 7, 8]) == pytest.approx(4.5)
    scores = {"a": [0.9, 0.8, 0.85, 0.95], "b": [0.1, 0.2, 0.15, 0.12]}
    value, low, high = stats.iqm_ci(scores)
    assert value == pytest.approx(sp.trim_mean([v for s in scores.values() for v in s], 0.25))
    assert low <= value <= high
    constant = stats.iqm_ci({"a": [0.5] * 4, "b": [0.5] * 4})
    assert constant == pytest.approx((0.5, 0.5, 0.5))


def test_probability_of_improvement_counts_every_pair():
    x, y = {"s1": [0.9, 0.8, 0.7], "s2": [0.5, 0.5]}, {"s1": [0.75, 0.6], "s2": [0.5, 0.4]}
    brute = statistics.fmean([
        statistics.fmean([(a > b) + 0.5 * (a == b) for a in x[s] for b in y[s]]) for s in ("s1", "s2")
    ])  # fmt: skip
    p, low, high = stats.probability_of_improvement(x, y)
    assert p == pytest.approx(brute) and low <= p <= high
    assert stats.probability_of_improvement({"s": [1.0]}, {"s": [0.0]})[0] == 1.0
    with pytest.raises(ValueError, match="no set-up in common"):
        stats.probability_of_improvement({"s": [1.0]}, {"t": [0.0]})


def test_the_bootstraps_are_the_intervals_of_one_resample_at_a_time():
    """The bootstraps compute over all their rounds at once: the intervals are exactly those of the plain loop
    that draws one stratified resample at a time (runs within each set-up, set-up after set-up)."""

    def resample(groups, rng):
        return [{k: np.asarray(v)[rng.integers(0, len(v), len(v))] for k, v in g.items()} for g in groups]

    def loop_iqm_ci(scores, seed=0):
        rng = np.random.default_rng(seed)
        boot = [sp.trim_mean(np.concatenate(list(resample([scores], rng)[0].values())), 0.25)
                for _ in range(stats.BOOTSTRAP)]  # fmt: skip
        return tuple(float(v) for v in np.percentile(boot, [2.5, 97.5]))

    def loop_improvement(x, y, seed=0):
        rng, shared = np.random.default_rng(seed), sorted(set(x) & set(y))
        boot = []
        for _ in range(stats.BOOTSTRAP // 2):
            a, b = resample([{s: x[s] for s in shared}, {s: y[s] for s in shared}], rng)
            boot.append(np.mean([stats.improvement_probability(a[s], b[s]) for s in shared]))
        return tuple(float(v) for v in np.percentile(boot, [2.5, 97.5]))

    rng = np.random.default_rng(3)

    def scores(keys, most=12):  # ties from rounding; a set-up of one run; unequal runs
        return {k: list(np.round(rng.random(int(rng.integers(1, most))), 2)) for k in keys}

    # 1 to 4 set-ups; 11 inserted unsorted (numpy sums 8 or more values in another order), one only x has; then
    # set-ups large enough that the pairs are counted a chunk of rounds at a time.
    keys = [[f"s{k}" for k in range(n)] for n in (1, 2, 3, 4)] + [
        [f"s{k}" for k in (10, 2, 7, 1, 9, 0, 3, 8, 5, 4, 6)]
    ]
    cases = [(scores(k), scores(k)) for k in keys] + [(scores(["a", "b"]), scores(["b", "c"]))]
    cases.append(({"a": list(np.round(rng.random(60), 2))}, {"a": list(np.round(rng.random(70), 2))}))
    for case, (x, y) in enumerate(cases):
        assert stats.iqm_ci(x, seed=case)[1:] == loop_iqm_ci(x, seed=case)
        assert stats.probability_of_improvement(x, y, seed=case)[1:] == loop_improvement(x, y, seed=case)


def test_normalised_score_and_left_chance():
    assert stats.normalised(0.25, 0.25) == 0.0 and stats.normalised(1.0, 0.1) == 1.0
    assert stats.left_chance(0.30, 1000, 0.25) and not stats.left_chance(0.251, 1000, 0.25)
    assert not stats.left_chance(0.9, 0, 0.25) and not stats.left_chance(None, 100, 0.25)
