"""The leaderboard: MLflow is the single source of truth; cells ranked per set-up on seeds, with a stated test.

A ranking group is a set-up (``rnnbench.analysis.setups``): the task and every option that changes its data.
Within a group each cell's best trial is chosen on validation (``training.metrics.best_run``) and its
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

from rnnbench.analysis.importance import CACHE_TAG, cache_value, cached_fractions
from rnnbench.analysis.setups import Setup, setup_of
from rnnbench.analysis.stats import (
    ALPHA,
    MARGIN,
    BudgetPoint,
    Summary,
    Verdict,
    above_p,
    binomial_above_p,
    budget_curve,
    holm,
    left_chance,
    paired_verdicts,
    welch_p,
    welch_verdicts,
)
from rnnbench.errors import RnnbenchError
from rnnbench.training.metrics import CONFIG_PARAMS, best_first, best_run, selection_metric, status_counts

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
    median_seconds: float  # per finished trial (wall time; trials of concurrent sweeps shared the cores)
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
    importance_key: str = field(default="", repr=False)  # the trials' fingerprint ("": not cacheable)
    reseed: dict[str, Any] | None = None  # mean and std per metric over re-seeded runs
    model_uri: str | None = None  # the best trial's MLflow model (models:/m-...)
    # (ranked metric, parameter count, training seconds) of every completed trial: the cost of accuracy
    costs: list[tuple[float, float, float]] = field(default_factory=list)
    best_runs: list[str] = field(default_factory=list)  # the best completed trials, best first (curves)
    reseed_runs: list[str] = field(default_factory=list)  # the re-seeded runs behind ``values``
    # Against the leader (or the baseline): better, worse, equivalent or inconclusive.
    verdict: Verdict | None = None
    paired: Verdict | None = None  # against the leader on the configurations both trained (paired sweeps)
    budget: list[BudgetPoint] = field(default_factory=list)  # Dodge's expected best after n trials
    learned_trials: int = 0  # completed trials whose test accuracy is above chance (binomial, 5 %)
    # (config, ranked value, learned) of every completed trial, for paired comparisons
    configs: list[tuple[str, float, bool]] = field(default_factory=list, repr=False)

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
        found = asdict(self)
        found.pop("configs")
        found.pop("importance_key")
        for key in ("verdict", "paired"):
            value = getattr(self, key)
            found[key] = None if value is None else value.as_dict()
        return {**found, "rank_label": self.rank_label}


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
    margin: float = MARGIN  # the equivalence margin of the verdicts
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
            seeds = sorted({e.n for e in self.entries if e.n >= 2})
            notes.append(f"ranked on the re-training only: mean over seeds with a 95 % CI; \"=\" means not "
                         f"separated from {against} at n = {'/'.join(map(str, seeds))} seeds (Welch's t-test, "
                         f"Holm-corrected, alpha {ALPHA}): not a claim of equality")  # fmt: skip
            notes.append(f"verdict against the leader: better/worse (significant, difference and 95 % CI), "
                         f"equivalent (two one-sided tests within ±{self.margin:g}), or inconclusive (with the "
                         "smallest difference the seeds could detect at 80 % power)")  # fmt: skip
            if self.unseeded:
                notes.append(f"not ranked: {', '.join(self.unseeded)} (one run, no reseeds to test it on)")
        return notes

    def as_dict(self, requested: str) -> dict[str, Any]:
        return {"setup": self.setup.as_dict(), "metric": self.metric, "chance": self.chance,
                "unsolved": self.unsolved, "single_runs": self.single_runs, "baseline": self.baseline,
                "unseeded": self.unseeded, "margin": self.margin,
                "notes": self.notes(requested), "entries": [e.as_dict() for e in self.entries]}  # fmt: skip


@dataclass
class Leaderboard:
    metric: str
    tracking_uri: str
    experiment_id: str = ""
    groups: list[Group] = field(default_factory=list)
    runs: Any = None  # where the runs were read: rnnbench.tracking.records.MlflowRuns or ExportedRuns

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
    margin: float = MARGIN,
    runs: Any = None,
    recompute_importance: bool = False,
) -> Leaderboard:
    """Read the store (or ``runs``: exported records, rnnbench.tracking.records) and rank the cells of each set-up.

    Importances come from the sweeps' caches where their trials are unchanged (``recompute_importance``:
    never)."""
    _check_filters(metric, task, sweep, min_trials, margin)
    source = runs if runs is not None else open_runs(tracking_uri, experiment)
    found_runs = source.trial_runs(task=task, sweep=sweep)
    if not found_runs:
        raise _nothing(source, task, sweep)
    by_setup: dict[Setup, list[Any]] = {}
    for run in found_runs:
        by_setup.setdefault(setup_of(run.data.params, run.data.tags.get("task", "?")), []).append(run)
    if setup is not None:
        known = {s.id: s for s in by_setup}
        if setup not in known:
            raise LeaderboardError(
                f"unknown set-up {setup!r}; set-ups with trials: {', '.join(sorted(known))}"
            )
        by_setup = {known[setup]: by_setup[known[setup]]}
    board = Leaderboard(
        metric=metric, tracking_uri=source.uri, experiment_id=source.experiment_id, runs=source
    )
    for found, group_runs in sorted(by_setup.items(), key=lambda item: (item[0].task, item[0].id)):
        cache = None if not with_importance or recompute_importance else _importance_cache(source, group_runs)
        group = _group(source, found, group_runs, metric, with_importance, min_trials, cache or {})
        group.margin = margin
        if baseline is not None and baseline not in {e.cell for e in group.entries}:
            raise LeaderboardError(
                f"--baseline {baseline!r} has no trials in set-up {found.id}; its cells: "
                f"{', '.join(e.cell for e in group.entries)}"
            )
        rank_group(group, baseline)
        board.groups.append(group)
    return board


def _check_filters(metric: str, task: str | None, sweep: str | None, min_trials: int, margin: float) -> None:
    if metric not in METRICS:
        raise LeaderboardError(f"unknown metric {metric!r}; valid metrics: {', '.join(METRICS)}")
    if min_trials < 2:
        raise LeaderboardError(
            f"--min-trials must be at least 2 (fANOVA needs trials to compare), got {min_trials}"
        )
    if not (0 < margin < 1) or math.isnan(margin):
        raise LeaderboardError(f"--margin must lie between 0 and 1 (both ranked metrics do), got {margin}")
    if task is not None:
        from rnnbench.core.plugin_manager import get_task

        get_task(task)  # UnknownTaskError lists the valid tasks
    if sweep is not None:
        from rnnbench.tracking.run_search import check_sweep_name

        check_sweep_name(sweep, "--sweep")  # no sweep can have another name: say so rather than find nothing


def open_runs(tracking_uri: str | None, experiment: str) -> Any:
    """The store's runs (rnnbench.tracking.records.MlflowRuns); NothingToRank when there is none."""
    from rnnbench.tracking.records import MlflowRuns
    from rnnbench.tracking.store import resolve_tracking_uri, sqlite_file

    runs = MlflowRuns.find(tracking_uri, experiment)
    if runs is None:
        uri = resolve_tracking_uri(tracking_uri)
        if uri.startswith("sqlite:///") and not sqlite_file(uri).is_file():
            raise NothingToRank(f"no MLflow store at {uri} yet; run a sweep first (rnnbench sweep ...)")
        raise NothingToRank(f"the store {uri} has no experiment {experiment!r} yet; run a sweep first")
    return runs


def _nothing(source: Any, task: str | None, sweep: str | None) -> NothingToRank:
    what = " and ".join(
        x for x in (f"task {task!r}" if task else "", f"sweep {sweep!r}" if sweep else "") if x
    )
    known = sorted({r.data.tags.get("task", "?") for r in source.trial_runs()})
    return NothingToRank(
        f"no sweep trials in {source.uri}" + (f" for {what}" if what else "")
        + (f"; tasks with trials: {', '.join(known)}" if known else "; run a sweep first")
    )  # fmt: skip


def _importance_cache(source: Any, runs: list[Any]) -> dict[str, str]:
    """The importances the runs' sweeps kept (rnnbench.analysis.importance), by fingerprint."""
    found: dict[str, str] = {}
    for name in sorted({r.data.tags.get("sweep", "") for r in runs} - {""}):
        run = source.sweep_run(name)
        tags = run.data.tags if run is not None else {}
        found.update({k.removeprefix(CACHE_TAG): v for k, v in tags.items() if k.startswith(CACHE_TAG)})
    return found


def cache_importances(source: Any, sweep: str) -> int:
    """Keep the sweep's importances (every ranked metric, every cell) as tags of its run, dropping those
    of trials that changed; returns how many tags were written. Called when a sweep or a reseed ends, on
    the store's runs (rnnbench.tracking.records.MlflowRuns)."""
    from mlflow.entities import RunTag

    client = source.client
    parent = source.sweep_run(sweep)
    if parent is None:
        return 0
    keep: dict[str, str] = {}
    for metric in METRICS:
        try:  # two trials are fANOVA's least; a reader with a higher --min-trials checks the count
            board = build(runs=source, sweep=sweep, metric=metric, min_trials=2)
        except NothingToRank:
            return 0
        keep.update({e.importance_key: cache_value(e.importance, e.importance_trials)
                     for e in board.entries if e.importance_key})  # fmt: skip
    run_id, tags = parent.info.run_id, parent.data.tags
    for name in [k for k in tags if k.startswith(CACHE_TAG) and k.removeprefix(CACHE_TAG) not in keep]:
        client.delete_tag(run_id, name)
    new = [RunTag(CACHE_TAG + k, v) for k, v in keep.items() if tags.get(CACHE_TAG + k) != v]
    if new:
        client.log_batch(run_id, tags=new)
    return len(new)


def _group(source: Any, found: Setup, runs: list[Any], metric: str, with_importance: bool,
           min_trials: int, cache: dict[str, str]) -> Group:  # fmt: skip
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
    chances = [
        p.data.metrics["chance"] for p in picks.values() if p is not None and "chance" in p.data.metrics
    ]
    group.chance = chances[0] if chances else None
    for cell, cell_runs in by_cell.items():
        entry = _entry(source, found, cell, cell_runs, picks[cell], ranked_by, group.chance)
        if with_importance and entry.run_id:
            learned = [r for r in cell_runs if _learned(r, group.chance)]
            entry.importance, entry.importance_trials, entry.importance_key = cached_fractions(
                learned, ranked_by, min_trials, cache
            )
        group.entries.append(entry)
    return group


def _learned(run: Any, chance: float | None) -> bool:
    """A completed trial whose test accuracy left chance (every completed trial where chance is unknown)."""
    if run.data.tags.get("status") != "completed":
        return False
    m = run.data.metrics
    return chance is None or left_chance(m.get("test_accuracy"), int(m.get("test_count", 0)), chance)


def _pick(runs: list[Any]) -> Any | None:
    return best_run(runs, runs[0].data.params.get("metric", "val_loss"))


def _config_key(run: Any) -> str:
    """The sampled hyperparameters of a trial (its Optuna distributions' names) as one comparable key."""
    names = sorted(json.loads(run.data.tags.get("optuna_distributions") or "{}"))
    return json.dumps([(k, run.data.params.get(k)) for k in names]) if names else ""  # "": nothing to pair on


def _entry(source: Any, found: Setup, cell: str, runs: list[Any], pick: Any | None, metric: str,
           chance: float | None) -> Entry:  # fmt: skip
    first = runs[0]
    seconds = [
        (r.info.end_time - r.info.start_time) / 1000.0 for r in runs if r.info.start_time and r.info.end_time
    ]
    selection, mode = selection_metric(first.data.params.get("metric", "val_loss"))
    entry = Entry(task=found.task, setup=found.id, cell=cell, plugin=first.data.params.get("plugin", "?"),
                  run_id="", sweep=first.data.tags.get("sweep", ""), test_accuracy=None, lrd_score=None,
                  lrd_horizon=None, param_count=None, selection=selection, selection_value=math.nan, config={},
                  counts=status_counts(runs),
                  median_seconds=statistics.median(seconds) if seconds else math.nan)  # fmt: skip
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
    completed = [r for r in runs if r.data.tags.get("status") == "completed" and metric in r.data.metrics]
    entry.trial_values = [r.data.metrics[metric] for r in completed]
    entry.learned_trials = sum(_learned(r, chance) for r in completed)
    entry.configs = [(_config_key(r), r.data.metrics[metric], _learned(r, chance)) for r in completed]
    entry.model_uri = pick.data.tags.get("model_uri")
    entry.costs = [(r.data.metrics[metric], r.data.metrics["param_count"], r.data.metrics["train_seconds"])
                   for r in completed
                   if {metric, "param_count", "train_seconds"} <= r.data.metrics.keys()]  # fmt: skip
    chosen = best_first((r for r in completed if selection in r.data.metrics), lambda r: r.data.metrics[selection],
                        mode)  # fmt: skip
    entry.best_runs = [r.info.run_id for r in chosen[:CURVES_PER_CELL]]
    if chosen:
        entry.budget = budget_curve([r.data.metrics[selection] for r in chosen],
                                    [r.data.metrics[metric] for r in chosen], mode=mode)  # fmt: skip
    entry.spread = _quartiles(entry.trial_values)
    _seed_values(entry, source, pick, metric)
    return entry


def _seed_values(entry: Entry, source: Any, pick: Any, metric: str) -> None:
    """The values the cell is ranked on: its re-seeded runs', else the search's one run. A seed that
    diverged counts with the weights it had before (leaving it out would flatter the cell)."""
    reseeded = [r for r in source.reseed_runs(pick.info.run_id)
                if r.data.tags.get("status") in ("completed", "diverged") and metric in r.data.metrics]  # fmt: skip
    reseeded.sort(key=lambda r: (r.info.start_time or 0, r.info.run_id))
    sources = reseeded or ([pick] if metric in pick.data.metrics else [])
    entry.seeds = len(reseeded)
    entry.reseed_runs = [r.info.run_id for r in reseeded]
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
    """Rank a group's entries on their seed values (see the module's docstring); sets the group's flags,
    and each entry's verdict against the leader (or the baseline)."""
    group.baseline = baseline
    ranked = sorted((e for e in group.entries if e.values), key=lambda e: -e.score)
    _test_chance(group, ranked)
    if not ranked:
        return
    if group.unsolved:
        _paired(group, _reference(ranked, baseline), ranked, False)
        group.entries.sort(key=lambda e: (e.rank is None, -e.score if e.values else 0.0))
        return
    seeded = [e for e in ranked if len(e.values) >= 2]
    group.single_runs = not seeded
    group.unseeded = [e.cell for e in ranked if len(e.values) < 2] if seeded else []
    if group.single_runs:
        _ordinal(ranked)
        reference = _reference(ranked, baseline)
    else:  # a cell with one run cannot be tested beside seeded ones: shown, not ranked
        _shared_ranks(seeded)
        reference = _reference(seeded, baseline)
        others = [e for e in seeded if e is not reference]
        for entry, p in zip(others, holm([welch_p(reference.values, e.values) for e in others]), strict=True):
            entry.p_value, entry.compared_with = p, reference.cell
        learned = reference.chance_p is None or reference.chance_p < ALPHA
        verdicts = welch_verdicts([e.values for e in others], reference.values, group.margin,
                                  [learned] * len(others))  # fmt: skip
        for entry, verdict in zip(others, verdicts, strict=True):
            entry.verdict = verdict
    # The search's trials, where cells shared configurations, are compared pair by pair with or without seeds.
    _paired(group, reference, ranked, reference.chance_p is None or reference.chance_p < ALPHA)
    group.entries.sort(key=lambda e: (e.rank is None, e.rank or 0, -e.score if e.values else 0.0))


def _reference(entries: list[Entry], baseline: str | None) -> Entry:
    """What the others are compared with: the baseline if given, else the leader."""
    return next((e for e in entries if e.cell == baseline), entries[0])


def _paired(group: Group, reference: Entry, entries: list[Entry], learned: bool) -> None:
    """Where cells trained the same configurations (a paired sweep), each against the reference on them."""
    others = [e for e in entries if e is not reference and e.configs]
    theirs = {key: (value, ok) for key, value, ok in reference.configs if key}
    pairs = {e.cell: [(v, ok, *theirs[k]) for k, v, ok in e.configs if k in theirs] for e in others}
    tested = [e for e in others if len(pairs[e.cell]) >= 2]
    if not tested:
        return
    differences = [[ours - ref for ours, _, ref, _ in pairs[e.cell]] for e in tested]
    mostly = [sum(a + b for _, a, _, b in pairs[e.cell]) > len(pairs[e.cell]) for e in tested]  # over half
    verdicts = paired_verdicts(differences, group.margin, [learned and m for m in mostly])
    for entry, verdict in zip(tested, verdicts, strict=True):
        entry.paired = verdict


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


def _quartiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    if len(values) == 1:
        return {"median": values[0], "q1": values[0], "q3": values[0], "n": 1}
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"median": median, "q1": q1, "q3": q3, "n": len(values)}


def sweep_settings(board: Leaderboard) -> list[dict[str, str]]:
    """The settings (params) of every sweep on the board, from their parent runs."""
    # Every sweep with trials on the board, not only those of the best trials.
    names = sorted({name for group in board.groups for name in group.sweeps})
    settings = []
    for name in names:
        parent = board.runs.sweep_run(name)
        if parent is not None:
            # A grown sweep's budget is its tag: a param cannot change.
            trials = parent.data.tags.get("trials", parent.data.params.get("trials"))
            found = {
                "sweep": name,
                **parent.data.params,
                "trials": trials,
                "machine": parent.data.tags.get("machine"),
            }
            if parent.info.start_time and parent.info.end_time:
                found["wall time"] = f"{(parent.info.end_time - parent.info.start_time) / 60000:.0f} min"
            settings.append(found)
    return settings


@dataclass
class Aggregate:
    """Each cell's normalised test accuracy over set-ups (Agarwal et al. 2021): IQM with a stratified
    bootstrap CI, and the probability of improvement between cells."""

    setups: list[str]
    scores: dict[str, dict[str, float]]  # cell -> iqm, low, high, runs
    improvement: list[tuple[str, str, float, float, float]]  # (x, y, P(X > Y), low, high)
    left_out: dict[str, list[str]]  # cell -> the set-ups it lacks (not aggregated)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def aggregate(board: Leaderboard) -> Aggregate | None:
    """Normalised scores ((accuracy - chance) / (1 - chance)) per seed, over the set-ups with a known chance
    where some cell has seeds; the cells present in all of them. None when there is no such set-up."""
    from rnnbench.analysis.stats import iqm_ci, normalised, probability_of_improvement

    per_cell: dict[str, dict[str, list[float]]] = {}
    setups = []
    for group in board.groups:
        if group.chance is None or not any(e.seeds for e in group.entries):
            continue
        setups.append(group.setup.id)
        for entry in group.entries:
            if entry.accuracies:
                per_cell.setdefault(entry.cell, {})[group.setup.id] = [
                    normalised(a, group.chance) for a in entry.accuracies
                ]
    if not setups:
        return None
    complete = {cell: found for cell, found in per_cell.items() if set(found) == set(setups)}
    left_out = {
        cell: sorted(set(setups) - set(found)) for cell, found in per_cell.items() if cell not in complete
    }
    scores = {}
    for cell, found in complete.items():
        value, low, high = iqm_ci(found)
        scores[cell] = {"iqm": value, "low": low, "high": high, "runs": sum(len(v) for v in found.values())}
    order = sorted(complete, key=lambda c: -scores[c]["iqm"])
    improvement = [(x, y, *probability_of_improvement(complete[x], complete[y]))
                   for i, x in enumerate(order) for y in order[i + 1:]]  # fmt: skip
    return Aggregate(setups, {c: scores[c] for c in order}, improvement, left_out)
