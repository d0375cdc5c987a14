"""Every statistic a claim of rnnbench rests on, in one place, each with its reference.

- Seed summaries: mean, standard deviation and a 95 % t confidence interval.
- Differences: Welch's t-test and its 95 % CI (Greff et al. 2017 compare LSTM variants this way),
  Holm's correction when several cells are compared at once (family-wise error 5 %).
- Equivalence: two one-sided tests (TOST, Schuirmann 1987) within a stated margin; "no difference"
  is claimed only from them, never from a failed difference test.
- Power: the smallest difference a comparison could have detected with 80 % power (the noncentral t).
- Paired comparisons on shared configurations: Wilcoxon's signed-rank test, a paired bootstrap CI of
  the mean difference, a paired TOST.
- Budget curves (Dodge et al. 2019, "Show Your Work"): the expected best validation score after n
  trials, E[max of n] = sum_i v_(i) [(i/N)^n - ((i-1)/N)^n], and the test score of that pick.
- Across set-ups (Agarwal et al. 2021, "Deep RL at the edge of the statistical precipice"): the
  interquartile mean (IQM) of normalised scores with stratified bootstrap CIs, and the probability
  of improvement P(X > Y).
"""

from __future__ import annotations

import functools
import math
import statistics
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

ALPHA = 0.05
POWER = 0.80
MARGIN = 0.02  # the default equivalence margin on accuracy-like metrics (both ranked metrics lie in [0, 1])
BOOTSTRAP = 2000
KINDS = ("better", "worse", "equivalent", "inconclusive")
NOT_LEARNED = "did not learn at this budget"


def _scipy_stats() -> Any:
    from scipy import stats

    return stats


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
        std = statistics.stdev(values)
        half = _scipy_stats().t.ppf(1 - ALPHA / 2, len(values) - 1) * std / math.sqrt(len(values))
        return cls(mean, std, len(values), mean - half, mean + half)


def _constant(values: Sequence[float]) -> bool:
    return statistics.pvariance(values) == 0


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t-test that ``a`` and ``b`` have the same mean.

    1.0 (no evidence) when either has fewer than two values or both are constant: with no spread
    there is no error to test a difference against (5 x 1.000 against 5 x 0.999 is not "significant")."""
    if len(a) < 2 or len(b) < 2 or (_constant(a) and _constant(b)):
        return 1.0
    with warnings.catch_warnings():  # scipy warns of precision loss when one side is nearly constant
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(_scipy_stats().ttest_ind(a, b, equal_var=False).pvalue)


def welch_se_df(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """The standard error of mean(a) - mean(b) and Welch-Satterthwaite's degrees of freedom."""
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return 0.0, float(len(a) + len(b) - 2)
    df = (va + vb) ** 2 / ((va**2 / (len(a) - 1) if va else 0.0) + (vb**2 / (len(b) - 1) if vb else 0.0))
    return se, df


def difference_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """mean(a) - mean(b) and its Welch confidence interval (the difference itself twice when untestable)."""
    diff = statistics.fmean(a) - statistics.fmean(b)
    if len(a) < 2 or len(b) < 2:
        return diff, diff, diff
    se, df = welch_se_df(a, b)
    half = _scipy_stats().t.ppf(0.5 + level / 2, df) * se
    return diff, diff - half, diff + half


def _tost(diff: float, se: float, df: float, margin: float) -> float:
    """TOST p-value for a difference with standard error ``se``: both one-sided tests must reject."""
    if se == 0 or not math.isfinite(df) or df <= 0:
        return 1.0  # no error estimate: equivalence cannot be shown
    t = _scipy_stats().t
    p_lower = t.sf((diff + margin) / se, df)  # H0: diff <= -margin
    p_upper = t.cdf((diff - margin) / se, df)  # H0: diff >= +margin
    return float(max(p_lower, p_upper))


def tost_p(a: Sequence[float], b: Sequence[float], margin: float = MARGIN) -> float:
    """Welch TOST p-value that |mean(a) - mean(b)| < ``margin`` (small: equivalent within the margin)."""
    if len(a) < 2 or len(b) < 2:
        return 1.0
    se, df = welch_se_df(a, b)
    return _tost(statistics.fmean(a) - statistics.fmean(b), se, df, margin)


def detectable_difference(se: float, df: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true difference a two-sided t-test with standard error ``se`` and ``df`` degrees of
    freedom detects with probability ``power`` at level ``alpha`` (NaN when untestable)."""
    if se == 0 or not math.isfinite(se) or df <= 0:
        return math.nan
    stats = _scipy_stats()
    from scipy.optimize import brentq

    crit = stats.t.ppf(1 - alpha / 2, df)

    def shortfall(delta: float) -> float:
        nc = delta / se
        found = stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc)
        return (1.0 if math.isnan(found) else found) - power  # scipy's nct gives NaN far in the tail

    # The normal approximation (crit + t_power) * se is close; the bracket leaves room on both sides.
    high = se * (crit + stats.t.ppf(power, df)) * 2
    return float(brentq(shortfall, 0.0, high, xtol=1e-10 * max(se, 1e-12)))


@dataclass(frozen=True)
class Verdict:
    """A three-way comparison of a cell with its reference (difference = cell - reference)."""

    kind: str  # better | worse | equivalent | inconclusive
    difference: float
    low: float  # 95 % CI of the difference
    high: float
    p: float  # two-sided difference test (Holm-adjusted within its family)
    p_equivalence: float  # TOST within +-margin (Holm-adjusted within its family)
    margin: float
    detectable: float  # the smallest difference detectable with 80 % power (NaN: untestable)
    test: str  # "Welch", "Wilcoxon"
    n: int  # values (seeds, trials or pairs) behind the comparison
    reason: str = ""

    @property
    def label(self) -> str:
        """One line: the kind, the difference and its CI, and what could have been detected."""
        ci = f"{self.difference:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"
        if self.reason:
            return f"inconclusive: {self.reason}"
        if self.kind == "equivalent":
            return f"equivalent within ±{self.margin:g}: {ci}"
        if self.kind in ("better", "worse"):
            return f"{self.kind}: {ci}"
        if math.isnan(self.detectable):
            return f"inconclusive: {ci}, no spread to test against"
        return f"inconclusive: {ci}, detectable {self.detectable:.3f}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "label": self.label}


def decide(
    difference: float,
    ci: tuple[float, float],
    p: float,
    p_equivalence: float,
    *,
    margin: float,
    detectable: float,
    test: str,
    n: int,
    learned: bool = True,
    alpha: float = ALPHA,
) -> Verdict:
    """The verdict from (adjusted) p-values: better/worse when the difference test rejects, equivalent when
    TOST rejects, inconclusive otherwise, and always inconclusive when the models did not learn."""
    if not learned:
        kind, reason = "inconclusive", NOT_LEARNED
    elif p < alpha:
        kind, reason = ("better" if difference > 0 else "worse"), ""
    elif p_equivalence < alpha:
        kind, reason = "equivalent", ""
    else:
        kind, reason = "inconclusive", ""
    return Verdict(kind, difference, ci[0], ci[1], p, p_equivalence, margin, detectable, test, n, reason)


def welch_verdicts(
    cells: Sequence[Sequence[float]], reference: Sequence[float], margin: float = MARGIN,
    learned: Sequence[bool] | None = None,
) -> list[Verdict]:  # fmt: skip
    """Each of ``cells`` against ``reference`` (Welch), both families Holm-adjusted."""
    ps = holm([welch_p(c, reference) for c in cells])
    equivalences = holm([tost_p(c, reference, margin) for c in cells])
    verdicts = []
    for k, values in enumerate(cells):
        diff, low, high = difference_ci(values, reference)
        testable = len(values) >= 2 and len(reference) >= 2
        se, df = welch_se_df(values, reference) if testable else (0.0, 0.0)
        verdicts.append(decide(diff, (low, high), ps[k], equivalences[k], margin=margin,
                               detectable=detectable_difference(se, df), test="Welch",
                               n=len(values), learned=True if learned is None else learned[k]))  # fmt: skip
    return verdicts


@dataclass(frozen=True)
class Paired:
    """A paired comparison's raw numbers, before Holm: the differences' mean, bootstrap CI, Wilcoxon p,
    TOST p and detectable difference."""

    difference: float
    low: float
    high: float
    p: float
    p_equivalence: float
    detectable: float
    n: int


def wilcoxon_p(differences: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value that the differences are centred on 0 (1.0 if all are 0)."""
    nonzero = [d for d in differences if d != 0]
    if len(nonzero) < 1:
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(_scipy_stats().wilcoxon(differences, zero_method="wilcox").pvalue)


def paired(differences: Sequence[float], margin: float = MARGIN, seed: int = 0) -> Paired:
    """The paired statistics of per-configuration differences (cell - reference)."""
    import numpy as np

    d = np.asarray(differences, dtype=float)
    mean = float(d.mean())
    if len(d) < 2:
        return Paired(mean, mean, mean, 1.0, 1.0, math.nan, len(d))
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(BOOTSTRAP, len(d)))].mean(axis=1)
    low, high = (float(x) for x in np.percentile(means, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)]))
    se, df = float(d.std(ddof=1) / math.sqrt(len(d))), float(len(d) - 1)
    return Paired(mean, low, high, wilcoxon_p(d.tolist()), _tost(mean, se, df, margin),
                  detectable_difference(se, df), len(d))  # fmt: skip


def paired_verdicts(
    differences: Sequence[Sequence[float]], margin: float = MARGIN, learned: Sequence[bool] | None = None
) -> list[Verdict]:
    """Each cell's per-configuration differences to the reference, Wilcoxon and TOST Holm-adjusted."""
    found = [paired(d, margin) for d in differences]
    ps, equivalences = holm([f.p for f in found]), holm([f.p_equivalence for f in found])
    return [decide(f.difference, (f.low, f.high), ps[k], equivalences[k], margin=margin,
                   detectable=f.detectable, test="Wilcoxon", n=f.n,
                   learned=True if learned is None else learned[k])
            for k, f in enumerate(found)]  # fmt: skip


def above_p(values: Sequence[float], level: float) -> float:
    """One-sided p-value that the mean of ``values`` (seeds) is above ``level`` (one-sample t-test)."""
    if len(values) < 2:
        return 1.0
    if _constant(values):
        return 0.0 if values[0] > level else 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(_scipy_stats().ttest_1samp(values, level, alternative="greater").pvalue)


def binomial_above_p(accuracy: float, count: int, chance: float) -> float:
    """One-sided p-value that a model scoring ``accuracy`` on ``count`` test examples is above ``chance``
    (what a single run can say: this model beats chance on this test set)."""
    if count < 1:
        return 1.0
    return _binomial_p(min(max(round(accuracy * count), 0), count), count, chance)


@functools.lru_cache(maxsize=65536)
def _binomial_p(hits: int, count: int, chance: float) -> float:
    # A leaderboard asks this of every trial (5,400 in Greff's study), from few distinct (hits, count).
    return float(_scipy_stats().binomtest(hits, count, chance, alternative="greater").pvalue)


def left_chance(accuracy: float | None, count: int, chance: float | None) -> bool:
    """Whether one trial's test accuracy is significantly above chance (binomial, one-sided, 5 %)."""
    if accuracy is None or chance is None or count < 1:
        return False
    return binomial_above_p(accuracy, count, chance) < ALPHA


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


# --- budget curves (Dodge et al. 2019) ----------------------------------------------------------------


def expected_max_weights(count: int, n: int) -> list[float]:
    """Weights w_i = (i/N)^n - ((i-1)/N)^n of the i-th smallest of N values in E[max of n draws]."""
    return [(i / count) ** n - ((i - 1) / count) ** n for i in range(1, count + 1)]


def expected_best(
    selection: Sequence[float], test: Sequence[float] | None = None, n: int = 1, mode: str = "max"
) -> tuple[float, float | None]:
    """The expected best selection value after ``n`` trials drawn (with replacement) from these trials,
    and the expected test value of that pick (``test`` aligned with ``selection``)."""
    if not selection:
        raise ValueError("a budget curve needs at least one trial")
    sign = 1.0 if mode == "max" else -1.0
    order = sorted(range(len(selection)), key=lambda i: sign * selection[i])
    weights = expected_max_weights(len(selection), n)
    best = sum(w * selection[i] for w, i in zip(weights, order, strict=True))
    picked = None if test is None else sum(w * test[i] for w, i in zip(weights, order, strict=True))
    return best, picked


@dataclass(frozen=True)
class BudgetPoint:
    n: int
    best: float  # expected best selection (validation) value
    low: float  # bootstrap 95 % band
    high: float
    test: float | None  # expected test value of the pick


def budget_curve(
    selection: Sequence[float], test: Sequence[float] | None = None, ns: Sequence[int] | None = None,
    mode: str = "max", seed: int = 0,
) -> list[BudgetPoint]:  # fmt: skip
    """Dodge's curve at each n (default 1..N) with a bootstrap band over the trials: every n at once, as
    one weight matrix (a cell of Greff's study has 600 trials, so 600 points of 600 weights each)."""
    import numpy as np

    count = len(selection)
    if not count:
        raise ValueError("a budget curve needs at least one trial")
    points_n = list(ns) if ns is not None else list(range(1, count + 1))
    sign = 1.0 if mode == "max" else -1.0
    order = sorted(range(count), key=lambda i: sign * selection[i])  # expected_best's order, ties included
    # Row k: expected_max_weights(count, ns[k]). Powers by repeated multiplication and sums by numpy's own
    # reduction, not pow() and BLAS, which may round differently on another CPU: a published page must
    # rebuild to the same digits on any host.
    upper = np.cumprod(np.tile(np.arange(1, count + 1) / count, (max(points_n), 1)), axis=0)
    lower = np.cumprod(np.tile(np.arange(0, count) / count, (max(points_n), 1)), axis=0)
    rows = np.asarray(points_n) - 1
    weights = upper[rows] - lower[rows]
    best = (weights * np.asarray(selection, dtype=float)[order]).sum(axis=1)
    picked = None if test is None else (weights * np.asarray(test, dtype=float)[order]).sum(axis=1)
    rng = np.random.default_rng(seed)
    values = np.asarray(selection, dtype=float)
    samples = np.sort(values[rng.integers(0, count, size=(BOOTSTRAP // 4, count))], axis=1)
    if mode != "max":
        samples = samples[:, ::-1]
    low, high = np.percentile(samples @ weights.T, [2.5, 97.5], axis=0)
    return [
        BudgetPoint(
            int(n),
            float(best[k]),
            float(low[k]),
            float(high[k]),
            None if picked is None else float(picked[k]),
        )
        for k, n in enumerate(points_n)
    ]


# --- across set-ups (Agarwal et al. 2021) -------------------------------------------------------------


def normalised(score: float, chance: float) -> float:
    """(score - chance) / (1 - chance): 0 at chance, 1 perfect."""
    return (score - chance) / (1.0 - chance) if chance < 1 else math.nan


def iqm(values: Sequence[float]) -> float:
    """The interquartile mean: the mean of the middle 50 % (scipy's 25 % trimmed mean)."""
    return float(_scipy_stats().trim_mean(values, 0.25))


def _stratified(groups: Sequence[Mapping[str, Sequence[float]]], rng: Any, rounds: int) -> list[list[Any]]:
    """``rounds`` stratified resamples of each group's set-ups (runs resampled within each set-up): per group,
    one array a set-up, rounds x runs.

    The draws are those a resample at a time made, in its order (each round, group after group, set-up after
    set-up), so the intervals are the same numbers; the statistics over them then run once over all rounds
    rather than in a Python loop (2,000 scipy calls a cell were a third of a leaderboard test's time, py-spy)."""
    import numpy as np

    arrays = [[np.asarray(v) for v in group.values()] for group in groups]
    draws = [[[rng.integers(0, len(a), len(a)) for a in group] for group in arrays] for _ in range(rounds)]
    return [
        [a[np.stack([round_[g][k] for round_ in draws])] for k, a in enumerate(group)]
        for g, group in enumerate(arrays)
    ]


def iqm_ci(scores: Mapping[str, Sequence[float]], seed: int = 0) -> tuple[float, float, float]:
    """The IQM over every run of every set-up, and its stratified bootstrap 95 % CI (runs resampled
    within each set-up)."""
    import numpy as np

    flat = [v for values in scores.values() for v in values]
    (resampled,) = _stratified([scores], np.random.default_rng(seed), BOOTSTRAP)
    boot = _scipy_stats().trim_mean(np.concatenate(resampled, axis=1), 0.25, axis=1)  # one IQM a round
    low, high = np.percentile(boot, [2.5, 97.5])
    return iqm(flat), float(low), float(high)


def improvement_probability(x: Sequence[float], y: Sequence[float]) -> float:
    """P(X > Y) + P(X = Y) / 2 for one set-up (the Mann-Whitney statistic over all pairs)."""
    import numpy as np

    a, b = np.asarray(x)[:, None], np.asarray(y)[None, :]
    return float(((a > b) + 0.5 * (a == b)).mean())


def _improvement_by_round(x: Any, y: Any) -> Any:
    """Each round's P(X > Y) + P(X = Y) / 2 over all pairs, from rounds x runs arrays of one set-up: a chunk
    of rounds at a time, holding at most about a million pairs (all rounds at once held rounds x n x m)."""
    import numpy as np

    step = max(1, 2**20 // (x.shape[1] * y.shape[1]))
    found = []
    for start in range(0, len(x), step):
        a, b = x[start : start + step, :, None], y[start : start + step, None, :]
        found.append(((a > b) + 0.5 * (a == b)).mean(axis=(1, 2)))
    return np.concatenate(found)


def probability_of_improvement(
    x: Mapping[str, Sequence[float]], y: Mapping[str, Sequence[float]], seed: int = 0
) -> tuple[float, float, float]:
    """P(X > Y) averaged over the set-ups both have, with a stratified bootstrap 95 % CI."""
    import numpy as np

    shared = sorted(set(x) & set(y))
    if not shared:
        raise ValueError("no set-up in common")

    xs, ys = {s: x[s] for s in shared}, {s: y[s] for s in shared}
    point = float(np.mean([improvement_probability(xs[s], ys[s]) for s in shared]))
    rx, ry = _stratified([xs, ys], np.random.default_rng(seed), BOOTSTRAP // 2)
    per_setup = [_improvement_by_round(a, b) for a, b in zip(rx, ry, strict=True)]
    boot = np.mean(np.stack(per_setup, axis=1), axis=1)  # each round's mean over the set-ups
    low, high = np.percentile(boot, [2.5, 97.5])
    return point, float(low), float(high)
