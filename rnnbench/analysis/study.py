"""Greff et al.'s analysis of an LSTM-variant study, on rnnbench sweeps, with verdicts the data can carry.

"LSTM: A Search Space Odyssey" compares each variant with the vanilla LSTM by the test metric of its
best 10 % of random-search trials (Welch's t-test), and asks which hyperparameters matter with fANOVA.
Here the best trials are picked by the sweep's own selection metric in its own direction, never by
the test metric they are then compared on. Every comparison is three-way (``rnnbench.analysis.stats``):
better/worse, equivalent within a margin (TOST), or inconclusive with the smallest difference the data
could have detected; models that did not leave chance make it inconclusive. Where the cells trained
the same configurations (a paired sweep), each variant is also compared configuration by
configuration (Wilcoxon), which has far more power than ten best trials. fANOVA is computed over the
trials that left chance only, as main-effect variance fractions (not normalised), the rest named
"interactions and noise". Greff's findings are then reproduced, contradicted or inconclusive.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from rnnbench.analysis.importance import INTERACTIONS, variance_fractions
from rnnbench.analysis.stats import (
    ALPHA,
    MARGIN,
    NOT_LEARNED,
    BudgetPoint,
    Verdict,
    above_p,
    budget_curve,
    left_chance,
    paired_verdicts,
    welch_verdicts,
)
from rnnbench.errors import RnnbenchError
from rnnbench.training.metrics import best_first, selection_metric

VANILLA = "peephole"  # Greff's vanilla LSTM: peepholes, forget gate, tanh in and out
TOP_FRACTION = 0.10
TEST_METRIC = "test_accuracy"
# The paper's hyperparameters, as the `greff` space records them (momentum as 1 - momentum).
HYPERPARAMETERS = ("lr", "width", "momentum_complement", "input_noise")
MIN_IMPORTANCE_TRIALS = 10


class StudyError(RnnbenchError):
    """A study cannot be analysed: unknown sweep, no vanilla cell, too few trials."""


@dataclass
class Trial:
    """One completed trial: its selection (validation) value, test value, configuration and whether it
    left chance."""

    selection: float
    test: float
    config: tuple[tuple[str, str], ...]
    learned: bool
    run: Any = None


@dataclass
class CellTrials:
    """One cell's completed trials in one sweep."""

    cell: str
    trials: list[Trial] = field(default_factory=list)
    mode: str = "max"  # the selection metric's direction
    not_completed: int = 0

    def best(self, fraction: float = TOP_FRACTION) -> list[Trial]:
        """The best ``fraction`` of trials by the selection metric, in its direction (at least two)."""
        count = max(2, math.ceil(fraction * len(self.trials)))
        return best_first(self.trials, lambda t: t.selection, self.mode)[:count]

    @property
    def learned(self) -> int:
        return sum(t.learned for t in self.trials)


@dataclass
class Comparison:
    """One cell against vanilla on one task: Greff's best-10 % Welch and, where configurations are shared,
    the paired comparison."""

    cell: str
    trials: int
    learned: int
    best: list[float]  # test values of the best 10 %
    median: float  # over all completed trials
    greff: Verdict | None = None  # None for vanilla itself
    paired: Verdict | None = None
    budget: list[BudgetPoint] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.best)

    @property
    def std(self) -> float:
        return statistics.stdev(self.best) if len(self.best) > 1 else 0.0


@dataclass
class TaskStudy:
    """The analysis of one sweep (one task)."""

    sweep: str
    task: str
    settings: dict[str, str]
    selection_metric: str
    chance: float | None
    margin: float
    comparisons: list[Comparison]
    importance: dict[str, float] | None  # main-effect variance fractions over the trials that learned
    importance_trials: int

    def comparison(self, cell: str) -> Comparison | None:
        return next((c for c in self.comparisons if c.cell == cell), None)

    @property
    def paired(self) -> bool:
        return any(c.paired is not None for c in self.comparisons)


def collect(client: Any, experiment_id: str, sweep: str) -> tuple[dict[str, str], dict[str, CellTrials]]:
    """The sweep's settings (its parent run's params) and each cell's completed trials."""
    from rnnbench.tracking.run_search import sweep_run, trial_runs

    parent = sweep_run(client, experiment_id, sweep)
    if parent is None:
        raise StudyError(f"no sweep named {sweep!r} in this MLflow store")
    return gather(parent, trial_runs(client, experiment_id, sweep=sweep))


def busy_milliseconds(spans: list[tuple[int, int]]) -> int:
    """How long at least one of the (start, end) spans was running: a sweep stopped and resumed in a later
    sitting counts its trials' time, not the pause between."""
    total, reach = 0, None
    for start, end in sorted(spans):
        if reach is None or start > reach:
            total += end - start
            reach = end
        elif end > reach:
            total += end - reach
            reach = end
    return total


def gather(parent: Any, runs: list[Any]) -> tuple[dict[str, str], dict[str, CellTrials]]:
    """Settings and per-cell trials from a sweep's parent run and its trial runs (MLflow or exported)."""
    settings = {
        **parent.data.params,
        **{k: v for k, v in parent.data.tags.items() if k in ("trials", "machine")},
    }
    spans = [(r.info.start_time, r.info.end_time) for r in runs if r.info.start_time and r.info.end_time]
    if spans:
        settings["wall_minutes"] = f"{busy_milliseconds(spans) / 60000:.0f}"
        seconds = sorted((end - start) / 1000 for start, end in spans)
        settings["trial_seconds"] = f"{statistics.median(seconds):.0f}"
    selection, mode = selection_metric(settings.get("metric", "val_accuracy"))
    cells: dict[str, CellTrials] = {}
    for run in runs:
        name = run.data.tags.get("cell", "?")
        found = cells.setdefault(name, CellTrials(name, mode=mode))
        m = run.data.metrics
        if run.data.tags.get("status") == "completed" and selection in m and TEST_METRIC in m:
            config = tuple(sorted((k, run.data.params[k]) for k in HYPERPARAMETERS if k in run.data.params))
            learned = left_chance(m[TEST_METRIC], int(m.get("test_count", 0)), m.get("chance"))
            found.trials.append(Trial(m[selection], m[TEST_METRIC], config, learned, run))
        else:
            found.not_completed += 1
    settings["selection_metric"] = selection
    settings["selection_mode"] = mode
    chances = [t.run.data.metrics["chance"] for c in cells.values() for t in c.trials
               if t.run is not None and "chance" in t.run.data.metrics]  # fmt: skip
    if chances:
        settings["chance"] = str(chances[0])
    return settings, cells


def analyse(
    sweep: str, settings: dict[str, str], cells: dict[str, CellTrials], margin: float = MARGIN
) -> TaskStudy:
    """Each variant against vanilla (best 10 %: Welch; shared configurations: Wilcoxon), three-way and
    Holm-adjusted; fANOVA over the trials that learned; budget curves."""
    if VANILLA not in cells or len(cells[VANILLA].trials) < 2:
        found = len(cells[VANILLA].trials) if VANILLA in cells else 0
        raise StudyError(
            f"sweep {sweep!r}: the vanilla LSTM ({VANILLA!r}) needs at least 2 completed trials to compare "
            f"against; it has {found}"
        )
    chance = float(settings["chance"]) if settings.get("chance") else None
    ordered = [c for c, t in sorted(cells.items(), key=lambda kv: _order(kv[0], settings)) if t.trials]
    comparisons = [_describe(cells[name], settings.get("selection_mode", "max")) for name in ordered]
    variants = [c for c in comparisons if c.cell != VANILLA]
    _greff(cells, variants, chance, margin)
    _paired(cells, variants, chance, margin)
    learned = [t for trials in cells.values() for t in trials.trials if t.learned]
    found, count = variance_fractions(
        [t.run for t in learned if t.run is not None], TEST_METRIC, MIN_IMPORTANCE_TRIALS
    )
    return TaskStudy(sweep=sweep, task=settings.get("task", "?"), settings=settings,
                     selection_metric=settings["selection_metric"], chance=chance, margin=margin,
                     comparisons=comparisons, importance=found, importance_trials=count)  # fmt: skip


def _describe(trials: CellTrials, mode: str) -> Comparison:
    tests = [t.test for t in trials.trials]
    return Comparison(
        cell=trials.cell, trials=len(trials.trials), learned=trials.learned,
        best=[t.test for t in trials.best()], median=statistics.median(tests),
        budget=budget_curve([t.selection for t in trials.trials], tests, mode=mode),
    )  # fmt: skip


def _reference_learned(values: list[float], chance: float | None) -> bool:
    """The reference's compared values are significantly above chance (one-sample t, 5 %)."""
    return chance is None or above_p(values, chance) < ALPHA


def _mostly_learned(trials: list[Trial]) -> bool:
    return sum(t.learned for t in trials) * 2 > len(trials)


def _greff(
    cells: dict[str, CellTrials], variants: list[Comparison], chance: float | None, margin: float
) -> None:
    reference = cells[VANILLA].best()
    ok = _reference_learned([t.test for t in reference], chance)
    learned = [ok and _mostly_learned(reference + cells[c.cell].best()) for c in variants]
    verdicts = welch_verdicts([c.best for c in variants], [t.test for t in reference], margin, learned)
    for comparison, verdict in zip(variants, verdicts, strict=True):
        comparison.greff = verdict


def _paired(
    cells: dict[str, CellTrials], variants: list[Comparison], chance: float | None, margin: float
) -> None:
    """Configuration by configuration, where the variant trained configurations vanilla trained."""
    reference = {t.config: t for t in cells[VANILLA].trials if t.config}
    pairs = {c.cell: [(t, reference[t.config]) for t in cells[c.cell].trials if t.config in reference]
             for c in variants}  # fmt: skip
    tested = [c for c in variants if len(pairs[c.cell]) >= 2]
    if not tested:
        return
    learned = []
    for c in tested:
        ours, theirs = [p[0] for p in pairs[c.cell]], [p[1] for p in pairs[c.cell]]
        learned.append(
            _reference_learned([t.test for t in theirs], chance) and _mostly_learned(ours + theirs)
        )
    differences = [[a.test - b.test for a, b in pairs[c.cell]] for c in tested]
    for comparison, verdict in zip(tested, paired_verdicts(differences, margin, learned), strict=True):
        comparison.paired = verdict


def _order(cell: str, settings: dict[str, str]) -> tuple[int, int, str]:
    """Vanilla first, then the cells in the sweep's own order (its ``cells`` setting)."""
    try:
        listed = json.loads(settings.get("cells") or "[]")
    except ValueError:
        listed = []
    position = listed.index(cell) if cell in listed else len(listed)
    return (0 if cell == VANILLA else 1, position, cell)


# --- Greff's findings, three-way ---------------------------------------------------------------------

REPRODUCED, CONTRADICTED, INCONCLUSIVE = "reproduced", "contradicted", "inconclusive"


@dataclass
class Finding:
    """One of the paper's findings and its outcome per task and analysis ("best 10 %", "paired")."""

    claim: str
    outcome: dict[str, dict[str, str]]  # task -> analysis -> "reproduced: ..." / "contradicted: ..." / ...

    def text(self, task: str) -> str:
        return "; ".join(f"{analysis}: {outcome}" for analysis, outcome in self.outcome[task].items())


ANALYSES = {"best 10 %": "greff", "paired": "paired"}


def findings(studies: list[TaskStudy]) -> list[Finding]:
    """Greff et al.'s headline findings, checked on each task's verdicts."""
    checks = [
        ("No variant significantly improves on the vanilla LSTM.", _none_better),
        (
            "Removing the forget gate (NFG) or the output activation function (NOAF) hurts most.",
            _nfg_noaf_worst,
        ),
        (
            "Coupling the input and forget gates (CIFG) or removing peepholes (NP) costs nothing.",
            _cifg_np_equal,
        ),
    ]
    found = []
    for claim, check in checks:
        outcome = {}
        for study in studies:
            outcome[study.task] = {
                label: check(study, attribute)
                for label, attribute in ANALYSES.items()
                if attribute == "greff" or study.paired
            }
        found.append(Finding(claim, outcome))
    claim = "The learning rate is by far the most important hyperparameter."
    found.append(Finding(claim, {s.task: {"fANOVA": _lr_first(s)} for s in studies}))
    return found


def _verdicts(study: TaskStudy, attribute: str) -> dict[str, Verdict]:
    return {c.cell: getattr(c, attribute) for c in study.comparisons if getattr(c, attribute) is not None}


def _say(outcome: str, text: str) -> str:
    return f"{outcome}: {text}"


def _kinds(verdicts: dict[str, Verdict], kind: str) -> list[str]:
    return [cell for cell, v in verdicts.items() if v.kind == kind]


def _not_learned(verdicts: dict[str, Verdict]) -> bool:
    return bool(verdicts) and all(v.reason == NOT_LEARNED for v in verdicts.values())


def _none_better(study: TaskStudy, attribute: str) -> str:
    verdicts = _verdicts(study, attribute)
    if _not_learned(verdicts):
        return _say(INCONCLUSIVE, NOT_LEARNED)
    better = _kinds(verdicts, "better")
    if better:
        return _say(CONTRADICTED, f"better than vanilla: {', '.join(better)}")
    open_ = _kinds(verdicts, "inconclusive")
    if open_:
        return _say(INCONCLUSIVE, f"none better, but not shown equivalent or worse: {', '.join(open_)}")
    return _say(REPRODUCED, "every variant equivalent or worse")


def _named(study: TaskStudy, attribute: str, names: tuple[str, str]) -> dict[str, Verdict] | str:
    """The two variants' verdicts, or the inconclusive outcome when one was not compared or did not learn."""
    verdicts = _verdicts(study, attribute)
    if any(n not in verdicts for n in names):
        return _say(INCONCLUSIVE, f"{' or '.join(n.upper() for n in names)} was not compared")
    if any(verdicts[n].reason == NOT_LEARNED for n in names):
        return _say(INCONCLUSIVE, NOT_LEARNED)
    return {n: verdicts[n] for n in names}


def _nfg_noaf_worst(study: TaskStudy, attribute: str) -> str:
    named = _named(study, attribute, ("nfg", "noaf"))
    if isinstance(named, str):
        return named
    not_worse = [n for n, v in named.items() if v.kind in ("better", "equivalent")]
    if not_worse:
        return _say(CONTRADICTED, f"not worse than vanilla: {', '.join(not_worse)}")
    verdicts = _verdicts(study, attribute)
    lowest = sorted(verdicts, key=lambda cell: verdicts[cell].difference)[:2]
    worse = [n for n, v in named.items() if v.kind == "worse"]
    text = f"the two largest drops: {', '.join(lowest)}; worse of NFG/NOAF: {', '.join(worse) or 'neither'}"
    return _say(REPRODUCED if len(worse) == 2 and set(lowest) == {"nfg", "noaf"} else INCONCLUSIVE, text)


def _cifg_np_equal(study: TaskStudy, attribute: str) -> str:
    named = _named(study, attribute, ("cifg", "np"))
    if isinstance(named, str):
        return named
    text = "; ".join(f"{n} {v.label}" for n, v in named.items())
    if any(v.kind == "worse" for v in named.values()):
        return _say(CONTRADICTED, text)
    if all(v.kind in ("equivalent", "better") for v in named.values()):
        return _say(REPRODUCED, text)
    return _say(INCONCLUSIVE, text)


BY_FAR = 2.0  # "by far the most important": at least twice the next hyperparameter's variance fraction


def _lr_first(study: TaskStudy) -> str:
    if not study.importance:
        return _say(INCONCLUSIVE, f"fANOVA needs {MIN_IMPORTANCE_TRIALS} trials that left chance, "
                                  f"{study.importance_trials} found")  # fmt: skip
    ranked = sorted(((k, v) for k, v in study.importance.items() if k != INTERACTIONS), key=lambda kv: -kv[1])
    shares = ", ".join(f"{k} {v:.0%}" for k, v in ranked[:3])
    text = f"main effects {shares} of the variance over {study.importance_trials} trials that learned"
    lr = study.importance.get("lr", 0.0)
    others = [(k, v) for k, v in ranked if k != "lr"]
    top_other = others[0] if others else ("", 0.0)
    # fANOVA's fractions carry no interval here: a verdict either way needs a factor of BY_FAR, so that
    # near-ties (say 24 % against 24 %) are called inconclusive rather than ranked.
    if lr >= BY_FAR * top_other[1]:
        return _say(REPRODUCED, f"{text} (lr at least {BY_FAR:g}x the next)")
    if top_other[1] >= BY_FAR * lr:
        return _say(CONTRADICTED, f"{text} ({top_other[0]} at least {BY_FAR:g}x lr)")
    return _say(INCONCLUSIVE, f"{text} (neither lr nor any other at least {BY_FAR:g}x the rest)")
