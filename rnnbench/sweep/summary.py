"""What a finished sweep reports: the best completed trial per cell and the status counts, from MLflow."""

from __future__ import annotations

import time
from typing import Any

from rnnbench.tracking.run_search import trial_runs
from rnnbench.training.metrics import CONFIG_PARAMS, best_run, selection_metric, status_counts

Best = dict[str, dict[str, Any]]
Counts = dict[str, dict[str, int]]


def summarize(
    client: Any, experiment_id: str, sweep: str, cells: list[str], metric: str
) -> tuple[Best, Counts]:
    """Best completed trial per cell (chosen on validation, reported on test), and status counts."""
    best: Best = {}
    counts: Counts = {}
    key, _ = selection_metric(metric)
    for cell in cells:
        runs = trial_runs(client, experiment_id, sweep=sweep, cell=cell)
        counts[cell] = status_counts(runs)
        pick = best_run(runs, metric)
        if pick is not None:
            best[cell] = _summary_row(pick, key)
    return best, counts


def _summary_row(run: Any, key: str) -> dict[str, Any]:
    m, p = run.data.metrics, run.data.params
    return {
        "run_id": run.info.run_id,
        "optuna_trial": int(run.data.tags.get("optuna_trial", -1)),
        key: m[key],
        "test_accuracy": m.get("test_accuracy"),
        "lrd_score": m.get("lrd_score"),
        "lrd_horizon": m.get("lrd_horizon"),
        "param_count": m.get("param_count"),
        "config": {k: param_value(p[k]) for k in CONFIG_PARAMS if k in p},
    }


def param_value(text: str) -> int | float | str | None:
    """An MLflow param (always text) as the number it was: ``"1"`` -> 1, ``"0.003"`` -> 0.003;
    ``"none"`` (no clipping) -> None; anything else stays text."""
    if text in ("none", "None"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def log_summary(client: Any, parent_run_id: str, best: Best) -> None:
    """The best trials' test metrics on the sweep's parent run (``best_<cell>_<metric>``)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [
        Metric(f"best_{cell}_{k}", float(v), now, 0)
        for cell, row in best.items()
        for k, v in row.items()
        if k in ("test_accuracy", "lrd_score", "lrd_horizon") and v is not None
    ]
    if metrics:
        client.log_batch(parent_run_id, metrics=metrics)
