"""The leaderboard: MLflow is the single source of truth; rank the best trial per (task, cell).

The best trial of a cell is chosen on validation (its sweep's metric) and reported on test. Beside
it: the spread of the test metric over every completed trial (median and interquartile range, as
Greff et al. compare distributions), trial counts by status, total trial time, the mean and
standard deviation over re-seeded runs of the best configuration when there are some (the ranking
then uses the mean), and fANOVA hyperparameter importances rebuilt from the runs.
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

METRICS = ("lrd_score", "test_accuracy")


class LeaderboardError(RnnbenchError):
    """The leaderboard cannot be built: an unknown metric or task, an unusable store."""


class NothingToRank(LeaderboardError):
    """The store is missing or empty, or holds no trials for the filter: not an error, just nothing yet."""


@dataclass
class Entry:
    task: str
    cell: str
    plugin: str
    run_id: str
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
    spread: dict[str, float]  # median, q1, q3 of the ranking metric over completed trials
    reseed: dict[str, Any] | None = None  # mean, std, n per metric over re-seeded runs
    importance: dict[str, float] | None = None
    rank: int = 0
    score: float = math.nan  # what the ranking used

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Leaderboard:
    metric: str
    tracking_uri: str
    entries: list[Entry] = field(default_factory=list)

    def tasks(self) -> list[str]:
        return sorted({e.task for e in self.entries})

    def for_task(self, task: str) -> list[Entry]:
        return sorted((e for e in self.entries if e.task == task), key=lambda e: e.rank)

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "tracking_uri": self.tracking_uri,
            "tasks": {task: [e.as_dict() for e in self.for_task(task)] for task in self.tasks()},
        }


def _quartiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    if len(values) == 1:
        return {"median": values[0], "q1": values[0], "q3": values[0], "n": 1}
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"median": median, "q1": q1, "q3": q3, "n": len(values)}


def importance(runs: list[Any], selection: str, mode: str) -> dict[str, float] | None:
    """fANOVA importances (Optuna's evaluator) over a cell's completed trials, rebuilt from MLflow."""
    import optuna
    from optuna.distributions import CategoricalDistribution, json_to_distribution

    trials = []
    for run in runs:
        raw = run.data.tags.get("optuna_distributions")
        if not raw or selection not in run.data.metrics:
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
                    params=params, distributions=distributions, value=run.data.metrics[selection]
                )
            )
    if len(trials) < 3:
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize" if mode == "min" else "maximize")
    study.add_trials(trials)
    try:
        found = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
        )
    except (RuntimeError, ValueError):  # e.g. every trial sampled the same values
        return None
    return {k: float(v) for k, v in found.items()}


def build(
    tracking_uri: str | None = None,
    task: str | None = None,
    sweep: str | None = None,
    metric: str = "lrd_score",
    experiment: str = "rnnbench",
    with_importance: bool = True,
) -> Leaderboard:
    """Read the store and rank the cells per task."""
    from rnnbench.tracking import (
        TrackingError,
        check_tracking_uri,
        open_client,
        resolve_tracking_uri,
        sqlite_file,
    )

    if metric not in METRICS:
        raise LeaderboardError(f"unknown metric {metric!r}; valid metrics: {', '.join(METRICS)}")
    if task is not None:
        from rnnbench.plugin_manager import get_task

        get_task(task)  # UnknownTaskError lists the valid tasks
    if sweep is not None:
        from rnnbench.sweep.settings import check_sweep_name

        check_sweep_name(sweep, "--sweep")  # no sweep can have another name: say so rather than find nothing
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
    runs = trial_runs(client, found.experiment_id, task=task, sweep=sweep)
    if not runs:
        what = " and ".join(
            x for x in (f"task {task!r}" if task else "", f"sweep {sweep!r}" if sweep else "") if x
        )
        known = sorted({r.data.tags.get("task", "?") for r in trial_runs(client, found.experiment_id)})
        raise NothingToRank(
            f"no sweep trials in {uri}" + (f" for {what}" if what else "")
            + (f"; tasks with trials: {', '.join(known)}" if known else "; run a sweep first")
        )  # fmt: skip
    board = Leaderboard(metric=metric, tracking_uri=uri)
    groups: dict[tuple[str, str], list[Any]] = {}
    for run in runs:
        groups.setdefault((run.data.tags.get("task", "?"), run.data.tags.get("cell", "?")), []).append(run)
    for (task_name, cell), cell_runs in groups.items():
        entry = _entry(client, found.experiment_id, task_name, cell, cell_runs, metric, with_importance)
        if entry is not None:
            board.entries.append(entry)
    for task_name in board.tasks():
        ranked = sorted(
            board.for_task(task_name),
            key=lambda e: (-(e.score if not math.isnan(e.score) else -1), -(e.test_accuracy or 0)),
        )
        for position, entry in enumerate(ranked, 1):
            entry.rank = position
    return board


def sweep_settings(board: Leaderboard, experiment: str = "rnnbench") -> list[dict[str, str]]:
    """The settings (params) of every sweep on the board, from their MLflow parent runs."""
    from rnnbench.tracking import open_client

    client = open_client(board.tracking_uri)
    found = client.get_experiment_by_name(experiment)
    names = sorted({e.sweep for e in board.entries if e.sweep})
    settings = []
    for name in names:
        parent = sweep_run(client, found.experiment_id, name)
        if parent is not None:
            settings.append({"sweep": name, **parent.data.params})
    return settings


def _entry(client: Any, experiment_id: str, task: str, cell: str, runs: list[Any], metric: str,
           with_importance: bool) -> Entry | None:  # fmt: skip
    counts = status_counts(runs)
    completed = [r for r in runs if r.data.tags.get("status") == "completed"]
    total = sum(
        ((r.info.end_time or r.info.start_time) - r.info.start_time) / 1000.0
        for r in runs
        if r.info.start_time
    )
    if not completed:
        return Entry(task, cell, runs[0].data.params.get("plugin", "?"), "", runs[0].data.tags.get("sweep", ""),
                     None, None, None, None, "", math.nan, {}, counts, total, {})  # fmt: skip
    sweep_metric = runs[0].data.params.get("metric", "val_loss")
    selection, mode = selection_metric(sweep_metric)
    pick = best_run(completed, sweep_metric)
    if pick is None:
        return None
    m, p = pick.data.metrics, pick.data.params
    entry = Entry(
        task=task, cell=cell, plugin=p.get("plugin", "?"), run_id=pick.info.run_id,
        sweep=pick.data.tags.get("sweep", ""), test_accuracy=m.get("test_accuracy"), lrd_score=m.get("lrd_score"),
        lrd_horizon=m.get("lrd_horizon"), param_count=m.get("param_count"), selection=selection,
        selection_value=m[selection], config={k: p[k] for k in CONFIG_PARAMS if k in p}, counts=counts,
        total_seconds=total,
        spread=_quartiles([r.data.metrics[metric] for r in completed if metric in r.data.metrics]),
    )  # fmt: skip
    reseeded = [
        r
        for r in reseed_runs(client, experiment_id, pick.info.run_id)
        if r.data.tags.get("status") == "completed"
    ]
    if reseeded:
        entry.reseed = {"n": len(reseeded)}
        for key in METRICS:
            values = [r.data.metrics[key] for r in reseeded if key in r.data.metrics]
            if values:
                entry.reseed[key] = {
                    "mean": statistics.fmean(values),
                    "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                }
    entry.score = (
        entry.reseed[metric]["mean"]
        if entry.reseed and metric in entry.reseed
        else (m.get(metric) or math.nan)
    )
    if with_importance:
        entry.importance = importance(completed, selection, mode)
    return entry
