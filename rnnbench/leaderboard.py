"""The leaderboard: MLflow is the single source of truth; cells ranked per set-up on seeds, with a stated test.

A ranking group is a set-up (``rnnbench.setups``): the task and every option that changes its data.
Within a group each cell's best trial is chosen on validation (``reports.best_run``) and its
configuration's re-seeded runs (``rnnbench reseed`` / ``--reseed K``: fresh initialisation and batch
order) give the values it is ranked on: mean, standard deviation, n and a 95 % confidence interval.
The search's own run is not among them: it was picked for being best on validation.

Ranks: the cell with the best mean leads; every cell whose difference from it is not significant
(Welch's t-test, Holm-corrected across the cells compared) shares its rank; the procedure repeats on
the cells left. A group in which no cell beats chance significantly (test accuracy against the
task's chance accuracy, Holm-corrected) is "unsolved at this budget" and not ranked. Without
reseeds a cell has one run: the ranks are then single runs, said so, and equal values share a rank.
The LRD score ranks a group only where it measures memory (more than one distance bucket); on
fixed-length data the group is ranked by test accuracy. Beside each cell: the spread of the ranked
metric over its completed trials, trial counts by status, and fANOVA importances over its completed
trials where there are at least ``min_trials`` of them.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from rnnbench.errors import RnnbenchError
from rnnbench.reports import CONFIG_PARAMS, best_run, selection_metric, status_counts
from rnnbench.run_search import reseed_runs, sweep_run, trial_runs
from rnnbench.setups import Setup, setup_of
from rnnbench.stats import ALPHA, Summary, above_p, binomial_above_p, holm, welch_p

METRICS = ("lrd_score", "test_accuracy")
MIN_TRIALS = 20  # fANOVA below this many completed trials would credit noise


CURVES_PER_CELL = 3  # learning curves drawn per cell: its best trials


class LeaderboardError(RnnbenchError):
    """The leaderboard cannot be built: an unknown metric, task, set-up or baseline, an unusable store."""


class NothingToRank(LeaderboardError):
    """The store is missing or empty, or holds no trials for the filter: not an error, just nothing yet."""


@dataclass
class Entry:
    task: str
    setup: str  # the set-up's id
    cell: str
    plugin: str
    run_id: str  # the best trial's run; "" when the cell has no completed trial
    sweep: str
    test_accuracy: float | None
    lrd_score: float | None
    lrd_horizon: float | None
    param_count: float | None
    selection: str  # the validation metric the trial was chosen on
    selection_value: float
    config: dict[str, str]
    counts: dict[str, int]
    total_seconds: float
    trial_values: list[float] = field(default_factory=list)  # the ranked metric over completed trials
    spread: dict[str, float] = field(default_factory=dict)  # their median, q1, q3, n
    values: list[float] = field(default_factory=list)  # the ranked metric per seed (reseeds), or the one run
    accuracies: list[float] = field(default_factory=list)  # test accuracy per seed, for the chance test
    seeds: int = 0  # re-seeded runs behind ``values`` (0: the search's single run)
    test_count: int = 0  # test examples of the best run (a single run's test against chance)
    mean: float | None = None
    std: float | None = None
    n: int = 0
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None  # against the leader (or the baseline), Holm-corrected
    compared_with: str | None = None
    chance_p: float | None = None  # test accuracy above chance, Holm-corrected
    rank: int | None = None  # None: not ranked (no completed trial, or the group is unsolved)
    shared: bool = False  # the rank is shared with another cell
    importance: dict[str, float] | None = None
    importance_trials: int = 0
    reseed: dict[str, Any] | None = None  # mean and std per metric over re-seeded runs
    model_uri: str | None = None  # the best trial's MLflow model (models:/m-...)
    # (ranked metric, parameter count, training seconds) of every completed trial: the cost of accuracy
    costs: list[tuple[float, float, float]] = field(default_factory=list)
    best_runs: list[str] = field(default_factory=list)  # the best completed trials, best first (curves)

    @property
    def score(self) -> float:
        """What the ranking used: the mean over seeds (NaN without a value)."""
        return math.nan if self.mean is None else self.mean

    @property
    def rank_label(self) -> str:
        if self.rank is None:
            return "-"
        return f"={self.rank}" if self.shared else str(self.rank)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rank_label": self.rank_label}


@dataclass
class Group:
    """One set-up's ranking."""

    setup: Setup
    metric: str  # what ranks it: the board's metric, or test_accuracy where LRD is not measured
    entries: list[Entry] = field(default_factory=list)
    chance: float | None = None
    unsolved: bool = False
    single_runs: bool = False
    baseline: str | None = None
    min_trials: int = MIN_TRIALS  # completed trials fANOVA needs before it is shown
    unseeded: list[str] = field(default_factory=list)  # cells with one run beside seeded ones: not ranked
    sweeps: list[str] = field(default_factory=list)  # every sweep with trials in the set-up

    def notes(self, requested: str) -> list[str]:
        """What a reader must know to read the ranks."""
        notes = []
        if self.metric != requested:
            notes.append(f"ranked by {self.metric}: the test set has one distance bucket, so LRD is n/a")
        if self.unsolved:
            chance = "" if self.chance is None else f" ({self.chance:.3f})"
            notes.append(
                f"unsolved at this budget: no cell's test accuracy is significantly above chance{chance}"
            )
        elif self.single_runs:
            notes.append("ranks are single runs (no reseeds: rnnbench reseed --sweep NAME --seeds K); "
                         "not tested, equal values share a rank")  # fmt: skip
        else:
            against = f"the baseline {self.baseline}" if self.baseline else "the leader of each rank"
            notes.append(f"mean over seeds with a 95 % CI; cells not significantly different from {against} "
                         f"(Welch's t-test, Holm-corrected, alpha {ALPHA}) share its rank")  # fmt: skip
            if self.unseeded:
                notes.append(f"not ranked: {', '.join(self.unseeded)} (one run, no reseeds to test it on)")
        return notes

    def as_dict(self, requested: str) -> dict[str, Any]:
        return {"setup": self.setup.as_dict(), "metric": self.metric, "chance": self.chance,
                "unsolved": self.unsolved, "single_runs": self.single_runs, "baseline": self.baseline,
                "unseeded": self.unseeded,
                "notes": self.notes(requested), "entries": [e.as_dict() for e in self.entries]}  # fmt: skip


@dataclass
class Leaderboard:
    metric: str
    tracking_uri: str
    experiment_id: str = ""
    groups: list[Group] = field(default_factory=list)

    @property
    def entries(self) -> list[Entry]:
        return [e for g in self.groups for e in g.entries]

    def tasks(self) -> list[str]:
        return sorted({g.setup.task for g in self.groups})

    def for_task(self, task: str) -> list[Entry]:
        """The entries of every set-up of ``task``, in rank order within each."""
        return [e for g in self.groups if g.setup.task == task for e in g.entries]

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "groups": {g.setup.id: g.as_dict(self.metric) for g in self.groups}}


def build(
    tracking_uri: str | None = None,
    task: str | None = None,
    sweep: str | None = None,
    metric: str = "lrd_score",
    experiment: str = "rnnbench",
    with_importance: bool = True,
    setup: str | None = None,
    baseline: str | None = None,
    min_trials: int = MIN_TRIALS,
) -> Leaderboard:
    """Read the store and rank the cells of each set-up."""
    _check_filters(metric, task, sweep, min_trials)
    client, experiment_id, uri = _open(tracking_uri, experiment)
    runs = trial_runs(client, experiment_id, task=task, sweep=sweep)
    if not runs:
        raise _nothing(client, experiment_id, uri, task, sweep)
    by_setup: dict[Setup, list[Any]] = {}
    for run in runs:
        by_setup.setdefault(setup_of(run.data.params, run.data.tags.get("task", "?")), []).append(run)
    if setup is not None:
        known = {s.id: s for s in by_setup}
        if setup not in known:
            raise LeaderboardError(
                f"unknown set-up {setup!r}; set-ups with trials: {', '.join(sorted(known))}"
            )
        by_setup = {known[setup]: by_setup[known[setup]]}
    board = Leaderboard(metric=metric, tracking_uri=uri, experiment_id=experiment_id)
    for found, group_runs in sorted(by_setup.items(), key=lambda item: (item[0].task, item[0].id)):
        group = _group(client, experiment_id, found, group_runs, metric, with_importance, min_trials)
        if baseline is not None and baseline not in {e.cell for e in group.entries}:
            raise LeaderboardError(
                f"--baseline {baseline!r} has no trials in set-up {found.id}; its cells: "
                f"{', '.join(e.cell for e in group.entries)}"
            )
        rank_group(group, baseline)
        board.groups.append(group)
    return board


def _check_filters(metric: str, task: str | None, sweep: str | None, min_trials: int) -> None:
    if metric not in METRICS:
        raise LeaderboardError(f"unknown metric {metric!r}; valid metrics: {', '.join(METRICS)}")
    if min_trials < 2:
        raise LeaderboardError(
            f"--min-trials must be at least 2 (fANOVA needs trials to compare), got {min_trials}"
        )
    if task is not None:
        from rnnbench.plugin_manager import get_task

        get_task(task)  # UnknownTaskError lists the valid tasks
    if sweep is not None:
        from rnnbench.sweep.settings import check_sweep_name

        check_sweep_name(sweep, "--sweep")  # no sweep can have another name: say so rather than find nothing


def _open(tracking_uri: str | None, experiment: str) -> tuple[Any, str, str]:
    """The store's client, the experiment's id and the resolved URI; NothingToRank when there is none."""
    from rnnbench.tracking import (
        TrackingError,
        check_tracking_uri,
        open_client,
        resolve_tracking_uri,
        sqlite_file,
    )

    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith("sqlite:///") and not sqlite_file(uri).is_file():
        raise NothingToRank(f"no MLflow store at {uri} yet; run a sweep first (rnnbench sweep ...)")
    check_tracking_uri(uri, write=False)
    try:
        client = open_client(uri)
        found = client.get_experiment_by_name(experiment)
    except Exception as exc:
        raise TrackingError(f"tracking URI {uri}: {type(exc).__name__}: {exc}") from exc
    if found is None:
        raise NothingToRank(f"the store {uri} has no experiment {experiment!r} yet; run a sweep first")
    return client, found.experiment_id, uri


def _nothing(client: Any, experiment_id: str, uri: str, task: str | None, sweep: str | None) -> NothingToRank:
    what = " and ".join(
        x for x in (f"task {task!r}" if task else "", f"sweep {sweep!r}" if sweep else "") if x
    )
    known = sorted({r.data.tags.get("task", "?") for r in trial_runs(client, experiment_id)})
    return NothingToRank(
        f"no sweep trials in {uri}" + (f" for {what}" if what else "")
        + (f"; tasks with trials: {', '.join(known)}" if known else "; run a sweep first")
    )  # fmt: skip


def _group(client: Any, experiment_id: str, found: Setup, runs: list[Any], metric: str, with_importance: bool,
           min_trials: int) -> Group:  # fmt: skip
    """The set-up's entries, one per cell, before ranking."""
    by_cell: dict[str, list[Any]] = {}
    for run in runs:
        by_cell.setdefault(run.data.tags.get("cell", "?"), []).append(run)
    picks = {cell: _pick(cell_runs) for cell, cell_runs in by_cell.items()}
    # LRD ranks only where it measures memory: some best run of the set-up has an LRD score.
    measured = any(p is not None and "lrd_score" in p.data.metrics for p in picks.values())
    ranked_by = metric if metric != "lrd_score" or measured else "test_accuracy"
    group = Group(setup=found, metric=ranked_by, min_trials=min_trials)
    group.sweeps = sorted({r.data.tags["sweep"] for r in runs if r.data.tags.get("sweep")})
    for cell, cell_runs in by_cell.items():
        entry = _entry(client, experiment_id, found, cell, cell_runs, picks[cell], ranked_by)
        if with_importance and entry.run_id:
            completed = [r for r in cell_runs if r.data.tags.get("status") == "completed"]
            entry.importance, entry.importance_trials = importance(completed, ranked_by, min_trials)
        group.entries.append(entry)
    chances = [
        p.data.metrics["chance"] for p in picks.values() if p is not None and "chance" in p.data.metrics
    ]
    group.chance = chances[0] if chances else None
    return group


def _pick(runs: list[Any]) -> Any | None:
    return best_run(runs, runs[0].data.params.get("metric", "val_loss"))


def _entry(client: Any, experiment_id: str, found: Setup, cell: str, runs: list[Any], pick: Any | None,
           metric: str) -> Entry:  # fmt: skip
    first = runs[0]
    total = sum(((r.info.end_time or r.info.start_time) - r.info.start_time) / 1000.0 for r in runs
                if r.info.start_time)  # fmt: skip
    selection, mode = selection_metric(first.data.params.get("metric", "val_loss"))
    entry = Entry(task=found.task, setup=found.id, cell=cell, plugin=first.data.params.get("plugin", "?"),
                  run_id="", sweep=first.data.tags.get("sweep", ""), test_accuracy=None, lrd_score=None,
                  lrd_horizon=None, param_count=None, selection=selection, selection_value=math.nan, config={},
                  counts=status_counts(runs), total_seconds=total)  # fmt: skip
    if pick is None:
        return entry
    m, p = pick.data.metrics, pick.data.params
    entry.run_id, entry.sweep = pick.info.run_id, pick.data.tags.get("sweep", "")
    entry.test_accuracy, entry.lrd_score, entry.lrd_horizon = (
        m.get("test_accuracy"),
        m.get("lrd_score"),
        m.get("lrd_horizon"),
    )
    entry.param_count, entry.selection_value = m.get("param_count"), m[selection]
    entry.config = {k: p[k] for k in CONFIG_PARAMS if k in p}
    entry.test_count = int(m.get("test_count") or float(p.get("task.test_size", 0)))
    completed = [r for r in runs if r.data.tags.get("status") == "completed"]
    entry.trial_values = [r.data.metrics[metric] for r in completed if metric in r.data.metrics]
    entry.model_uri = pick.data.tags.get("model_uri")
    entry.costs = [(r.data.metrics[metric], r.data.metrics["param_count"], r.data.metrics["train_seconds"])
                   for r in completed
                   if {metric, "param_count", "train_seconds"} <= r.data.metrics.keys()]  # fmt: skip
    chosen = sorted((r for r in completed if selection in r.data.metrics), key=lambda r: r.data.metrics[selection],
                    reverse=mode == "max")  # fmt: skip
    entry.best_runs = [r.info.run_id for r in chosen[:CURVES_PER_CELL]]
    entry.spread = _quartiles(entry.trial_values)
    _seed_values(entry, client, experiment_id, pick, metric)
    return entry


def _seed_values(entry: Entry, client: Any, experiment_id: str, pick: Any, metric: str) -> None:
    """The values the cell is ranked on: its re-seeded runs', else the search's one run. A seed that
    diverged counts with the weights it had before (leaving it out would flatter the cell)."""
    reseeded = [r for r in reseed_runs(client, experiment_id, pick.info.run_id)
                if r.data.tags.get("status") in ("completed", "diverged") and metric in r.data.metrics]  # fmt: skip
    sources = reseeded or ([pick] if metric in pick.data.metrics else [])
    entry.seeds = len(reseeded)
    entry.values = [r.data.metrics[metric] for r in sources]
    if not entry.values:
        return
    entry.accuracies = [r.data.metrics["test_accuracy"] for r in sources if "test_accuracy" in r.data.metrics]
    summary = Summary.of(entry.values)
    entry.mean, entry.std, entry.n, entry.ci_low, entry.ci_high = (
        summary.mean,
        summary.std,
        summary.n,
        summary.low,
        summary.high,
    )
    if reseeded:
        entry.reseed = {"n": len(reseeded)}
        for key in METRICS:
            found = [r.data.metrics[key] for r in reseeded if key in r.data.metrics]
            if found:
                entry.reseed[key] = {"mean": statistics.fmean(found), "std": Summary.of(found).std}


def rank_group(group: Group, baseline: str | None = None) -> None:
    """Rank a group's entries on their seed values (see the module's docstring); sets the group's flags."""
    group.baseline = baseline
    ranked = sorted((e for e in group.entries if e.values), key=lambda e: -e.score)
    _test_chance(group, ranked)
    if group.unsolved or not ranked:
        group.entries.sort(key=lambda e: (e.rank is None, -e.score if e.values else 0.0))
        return
    seeded = [e for e in ranked if len(e.values) >= 2]
    group.single_runs = not seeded
    group.unseeded = [e.cell for e in ranked if len(e.values) < 2] if seeded else []
    if group.single_runs:
        _ordinal(ranked)
    else:  # a cell with one run cannot be tested beside seeded ones: shown, not ranked
        _shared_ranks(seeded)
        reference = next((e for e in seeded if e.cell == baseline), seeded[0])
        others = [e for e in seeded if e is not reference]
        for entry, p in zip(others, holm([welch_p(reference.values, e.values) for e in others]), strict=True):
            entry.p_value, entry.compared_with = p, reference.cell
    group.entries.sort(key=lambda e: (e.rank is None, e.rank or 0, -e.score if e.values else 0.0))


def _test_chance(group: Group, ranked: list[Entry]) -> None:
    """Holm-corrected tests of each cell's test accuracy above chance; none significant: unsolved."""
    if group.chance is None or not ranked:
        return
    tests = []
    for entry in ranked:
        if len(entry.accuracies) >= 2:
            tests.append(above_p(entry.accuracies, group.chance))
        else:
            single = entry.accuracies[0] if entry.accuracies else None
            tests.append(1.0 if single is None else binomial_above_p(single, entry.test_count, group.chance))
    for entry, p in zip(ranked, holm(tests), strict=True):
        entry.chance_p = p
    group.unsolved = all(e.chance_p is None or e.chance_p >= ALPHA for e in ranked)


def _ordinal(ranked: list[Entry]) -> None:
    """Single runs: ranks by value, equal values sharing one."""
    for position, entry in enumerate(ranked, 1):
        equal = [e for e in ranked if e.score == entry.score]
        entry.rank = position if equal[0] is entry else equal[0].rank
        entry.shared = len(equal) > 1


def _shared_ranks(ranked: list[Entry]) -> None:
    """The leader and every cell not significantly worse share a rank; repeat on the rest."""
    remaining, position = list(ranked), 1
    while remaining:
        leader, others = remaining[0], remaining[1:]
        adjusted = holm([welch_p(leader.values, e.values) for e in others])
        tied = [e for e, p in zip(others, adjusted, strict=True) if p >= ALPHA]
        for entry in (leader, *tied):
            entry.rank, entry.shared = position, bool(tied)
        position += 1 + len(tied)
        remaining = [e for e in others if e not in tied]


def importance(
    runs: list[Any], metric: str, min_trials: int = MIN_TRIALS
) -> tuple[dict[str, float] | None, int]:
    """fANOVA importances (Optuna's evaluator) of the ranked ``metric`` over a cell's completed trials,
    rebuilt from MLflow, and the number of trials behind them; None below ``min_trials`` trials."""
    import optuna
    from optuna.distributions import CategoricalDistribution, json_to_distribution

    trials = []
    for run in runs:
        raw = run.data.tags.get("optuna_distributions")
        if not raw or metric not in run.data.metrics:
            continue
        distributions = {k: json_to_distribution(v) for k, v in json.loads(raw).items()}
        params = {}
        for name, dist in distributions.items():
            text = run.data.params.get(name)
            if text is None:
                break
            if isinstance(dist, CategoricalDistribution):
                params[name] = next((c for c in dist.choices if str(c) == text), text)
            else:
                params[name] = type(dist.low)(float(text)) if isinstance(dist.low, int) else float(text)
        else:
            trials.append(
                optuna.trial.create_trial(
                    params=params, distributions=distributions, value=run.data.metrics[metric]
                )
            )
    if len(trials) < min_trials:
        return None, len(trials)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")  # both ranked metrics: higher is better
    study.add_trials(trials)
    try:
        found = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
        )
    except (RuntimeError, ValueError):  # e.g. every trial sampled the same values
        return None, len(trials)
    return {k: float(v) for k, v in found.items()}, len(trials)


def _quartiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    if len(values) == 1:
        return {"median": values[0], "q1": values[0], "q3": values[0], "n": 1}
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"median": median, "q1": q1, "q3": q3, "n": len(values)}


def sweep_settings(board: Leaderboard, experiment: str = "rnnbench") -> list[dict[str, str]]:
    """The settings (params) of every sweep on the board, from their MLflow parent runs."""
    from rnnbench.tracking import open_client

    client = open_client(board.tracking_uri)
    found = client.get_experiment_by_name(experiment)
    # Every sweep with trials on the board, not only those of the best trials.
    names = sorted({name for group in board.groups for name in group.sweeps})
    settings = []
    for name in names:
        parent = sweep_run(client, found.experiment_id, name)
        if parent is not None:
            # A grown sweep's budget is its tag: a param cannot change.
            trials = parent.data.tags.get("trials", parent.data.params.get("trials"))
            settings.append({"sweep": name, **parent.data.params, "trials": trials})
    return settings
