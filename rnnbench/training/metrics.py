"""What a trial reports, declared once: its epoch metrics, its final metrics and its statuses.

The worker reports these names to Ray Tune, the trial recorder and ``tracking`` write them to MLflow,
and the leaderboard and the command line read them back. ``best_run`` is the one definition of "the
best trial of a cell": chosen on validation among completed trials, reported on test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# Logged at every epoch, with the epoch as the step.
EPOCH_METRICS = ("train_loss", "val_loss", "val_accuracy", "epoch_seconds")
# Logged once a run ends; the best_val_* are the epoch whose weights were tested; chance is the task's
# chance accuracy and test_count its test examples (what a test against chance needs).
FINAL_METRICS = (
    "best_val_loss", "best_val_accuracy", "test_loss", "test_accuracy", "baseline_loss", "lrd_score",
    "lrd_horizon", "param_count", "train_seconds", "steps_per_second", "epochs_run", "best_epoch",
    "diverged_step", "chance", "test_count",
)  # fmt: skip
# The ``status`` tag of a finished trial run.
STATUSES = ("completed", "pruned", "diverged", "failed")
# Where a trial ran (a worker's report), kept as tags of its run.
PLACEMENT_TAGS = ("gpu_ids", "cuda_visible_devices", "node_ip", "node_id", "pid", "device")
# The hyperparameters a summary shows for a configuration, when the run has them.
CONFIG_PARAMS = ("depth", "width", "clip", "lr", "momentum", "input_noise")


def selection_metric(metric: str) -> tuple[str, str]:
    """The final metric a trial is chosen on for a sweep's validation ``metric``, and its direction."""
    return ("best_val_accuracy", "max") if metric == "val_accuracy" else ("best_val_loss", "min")


def best_first(items: Iterable[Any], key: Any, mode: str) -> list[Any]:
    """``items`` ordered best first by ``key`` for a metric of ``mode`` ("max" or "min"): the one
    notion of "better" wherever a trial is picked (study, leaderboard, summary, live table)."""
    return sorted(items, key=key, reverse=mode == "max")


def is_better(value: float, than: float | None, mode: str) -> bool:
    """Whether ``value`` beats ``than`` (None: nothing yet) for a metric of ``mode``."""
    return than is None or (value > than if mode == "max" else value < than)


def pick(values: Mapping[str, Any], names: Iterable[str]) -> dict[str, float]:
    """The ``names`` that ``values`` holds, as floats (absent and None values left out)."""
    return {k: float(values[k]) for k in names if values.get(k) is not None}


def status_counts(runs: Iterable[Any]) -> dict[str, int]:
    """Runs per status tag, every status present (0 when none)."""
    counts = dict.fromkeys(STATUSES, 0)
    for run in runs:
        status = run.data.tags.get("status")
        if status in counts:
            counts[status] += 1
    return counts


def best_run(runs: Iterable[Any], metric: str) -> Any | None:
    """The completed run with the best selection value for the validation ``metric``; None if none."""
    key, mode = selection_metric(metric)
    done = [r for r in runs if r.data.tags.get("status") == "completed" and key in r.data.metrics]
    if not done:
        return None
    return best_first(done, lambda r: r.data.metrics[key], mode)[0]
