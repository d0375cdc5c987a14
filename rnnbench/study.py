"""Greff et al.'s analysis of an LSTM-variant study, on rnnbench sweeps.

"LSTM: A Search Space Odyssey" compares each variant with the vanilla LSTM by the distribution of
the test metric over its best 10 % of random-search trials (Welch's t-test, p < 0.05), and asks which
hyperparameters matter with fANOVA over all trials of all variants. Here the best trials are picked
by the sweep's own selection metric (validation accuracy as a rule), never by the test metric they
are then compared on; the 8 comparisons of a task are Holm-adjusted. The findings of the paper are
checked one by one against the numbers (:func:`findings`).
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from rnnbench.errors import RnnbenchError

VANILLA = "peephole"  # Greff's vanilla LSTM: peepholes, forget gate, tanh in and out
TOP_FRACTION = 0.10
ALPHA = 0.05
TEST_METRIC = "test_accuracy"
# The paper's hyperparameters, as the `greff` space records them (momentum as 1 - momentum).
HYPERPARAMETERS = ("lr", "width", "momentum_complement", "input_noise")


class StudyError(RnnbenchError):
    """A study cannot be analysed: unknown sweep, no vanilla cell, too few trials."""


@dataclass
class CellTrials:
    """One cell's completed trials in one sweep: (selection value, test value) pairs and their runs."""

    cell: str
    pairs: list[tuple[float, float]] = field(default_factory=list)
    runs: list[Any] = field(default_factory=list)
    not_completed: int = 0

    def best(self, fraction: float = TOP_FRACTION) -> list[float]:
        """Test values of the best ``fraction`` of trials by the selection metric (at least two)."""
        count = max(2, math.ceil(fraction * len(self.pairs)))
        ranked = sorted(self.pairs, key=lambda pair: pair[0], reverse=True)
        return [test for _, test in ranked[:count]]


@dataclass
class Comparison:
    """One variant against vanilla on one task."""

    cell: str
    best: list[float]
    all_test: list[float]
    mean: float
    std: float
    difference: float  # mean - vanilla's mean
    p: float
    p_holm: float = 1.0

    @property
    def significant(self) -> bool:
        return self.p_holm < ALPHA

    @property
    def verdict(self) -> str:
        if self.cell == VANILLA:
            return "reference"
        if not self.significant:
            return "no significant difference"
        return "significantly better" if self.difference > 0 else "significantly worse"


@dataclass
class TaskStudy:
    """The analysis of one sweep (one task)."""

    sweep: str
    task: str
    settings: dict[str, str]
    selection_metric: str
    comparisons: list[Comparison]
    importance: dict[str, float] | None
    importance_trials: int

    def comparison(self, cell: str) -> Comparison | None:
        return next((c for c in self.comparisons if c.cell == cell), None)


def collect(client: Any, experiment_id: str, sweep: str) -> tuple[dict[str, str], dict[str, CellTrials]]:
    """The sweep's settings (its parent run's params) and each cell's completed trials."""
    from rnnbench.run_search import sweep_run, trial_runs

    parent = sweep_run(client, experiment_id, sweep)
    if parent is None:
        raise StudyError(f"no sweep named {sweep!r} in this MLflow store")
    settings = {**parent.data.params, **{k: v for k, v in parent.data.tags.items() if k == "trials"}}
    metric = settings.get("metric", "val_accuracy")
    selection = metric if metric.startswith("best_") or metric == "lrd_score" else f"best_{metric}"
    cells: dict[str, CellTrials] = {}
    for run in trial_runs(client, experiment_id, sweep=sweep):
        found = cells.setdefault(run.data.tags.get("cell", "?"), CellTrials(run.data.tags.get("cell", "?")))
        values = run.data.metrics
        if run.data.tags.get("status") == "completed" and selection in values and TEST_METRIC in values:
            found.pairs.append((values[selection], values[TEST_METRIC]))
            found.runs.append(run)
        else:
            found.not_completed += 1
    settings["selection_metric"] = selection
    return settings, cells


def analyse(sweep: str, settings: dict[str, str], cells: dict[str, CellTrials]) -> TaskStudy:
    """Welch's t-test of each variant's best trials against vanilla's, Holm-adjusted; fANOVA pooled."""
    from rnnbench.leaderboard import importance
    from rnnbench.stats import holm, welch_p

    if VANILLA not in cells or len(cells[VANILLA].pairs) < 2:
        raise StudyError(
            f"sweep {sweep!r}: the vanilla LSTM ({VANILLA!r}) needs at least 2 completed trials to compare "
            f"against; it has {len(cells[VANILLA].pairs) if VANILLA in cells else 0}"
        )
    reference = cells[VANILLA].best()
    comparisons = []
    for name, trials in sorted(cells.items(), key=lambda item: _order(item[0], settings)):
        if not trials.pairs:
            continue
        best = trials.best()
        comparisons.append(
            Comparison(
                cell=name,
                best=best,
                all_test=[test for _, test in trials.pairs],
                mean=statistics.fmean(best),
                std=statistics.stdev(best) if len(best) > 1 else 0.0,
                difference=statistics.fmean(best) - statistics.fmean(reference),
                p=1.0 if name == VANILLA else welch_p(best, reference),
            )
        )
    variants = [c for c in comparisons if c.cell != VANILLA]
    for comparison, adjusted in zip(variants, holm([c.p for c in variants]), strict=True):
        comparison.p_holm = adjusted
    pooled = [run for trials in cells.values() for run in trials.runs]
    found, count = importance(pooled, TEST_METRIC, min_trials=10)
    return TaskStudy(
        sweep=sweep,
        task=settings.get("task", "?"),
        settings=settings,
        selection_metric=settings["selection_metric"],
        comparisons=comparisons,
        importance=found,
        importance_trials=count,
    )


def _order(cell: str, settings: dict[str, str]) -> tuple[int, int, str]:
    """Vanilla first, then the cells in the sweep's own order (its ``cells`` setting)."""
    try:
        listed = json.loads(settings.get("cells") or "[]")
    except ValueError:
        listed = []
    position = listed.index(cell) if cell in listed else len(listed)
    return (0 if cell == VANILLA else 1, position, cell)


@dataclass
class Finding:
    """One of the paper's findings, and whether this study reproduced it on each task."""

    claim: str
    outcome: dict[str, str]  # task -> "reproduced: ..." / "not reproduced: ..." / "not tested: ..."


def findings(studies: list[TaskStudy]) -> list[Finding]:
    """Greff et al.'s headline findings, checked against each task's numbers."""
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
        ("The learning rate is by far the most important hyperparameter.", _lr_first),
    ]
    return [Finding(claim, {s.task: check(s) for s in studies}) for claim, check in checks]


def _tag(ok: bool, text: str) -> str:
    return f"{'reproduced' if ok else 'not reproduced'}: {text}"


def _none_better(study: TaskStudy) -> str:
    better = [c.cell for c in study.comparisons if c.verdict == "significantly better"]
    return _tag(not better, f"significantly better than vanilla: {', '.join(better) or 'none'}")


def _nfg_noaf_worst(study: TaskStudy) -> str:
    variants = sorted((c for c in study.comparisons if c.cell != VANILLA), key=lambda c: c.mean)
    named = [study.comparison(n) for n in ("nfg", "noaf")]
    if any(c is None for c in named):
        return "not tested: NFG or NOAF has no completed trial"
    lowest = [c.cell for c in variants[:2]]
    worse = [c.cell for c in named if c is not None and c.verdict == "significantly worse"]
    ok = set(lowest) == {"nfg", "noaf"} and len(worse) == 2
    return _tag(ok, f"the two lowest means: {', '.join(lowest)}; significantly worse of NFG/NOAF: "
                f"{', '.join(worse) or 'neither'}")  # fmt: skip


def _cifg_np_equal(study: TaskStudy) -> str:
    named = [study.comparison(n) for n in ("cifg", "np")]
    if any(c is None for c in named):
        return "not tested: CIFG or NP has no completed trial"
    differ = [c.cell for c in named if c is not None and c.significant]
    return _tag(not differ, f"significantly different from vanilla: {', '.join(differ) or 'neither'}")


def _lr_first(study: TaskStudy) -> str:
    if not study.importance:
        return f"not tested: fANOVA needs 10 completed trials, {study.importance_trials} found"
    ranked = sorted(study.importance.items(), key=lambda kv: kv[1], reverse=True)
    top, share = ranked[0]
    return _tag(top == "lr", f"most important: {top} ({share:.0%} of the explained variance)")
