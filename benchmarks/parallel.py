"""(d) Parallel efficiency: throughput of 2 concurrent sweep trials against 1, through ``rnnbench sweep``.

Both sides run the real command with the same N identical trials (every parameter fixed by
``[space_overrides]``, FIFO), 1 CPU per trial (so 1 torch thread per trial); only ``max_concurrent``
differs. Throughput is measured over the trials' window (first trial start to last trial end, from
the MLflow runs), so Ray start-up is excluded: trials per second, and training steps per second
summed over the trials. Interleaved (1, 2, 2, 1, ...); the best repeat of each side is used.
On CUDA each trial gets half a GPU, so the two concurrent trials share one.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import SweepRecord, device_env, gpus_per_trial, run_cli_sweep
from benchmarks.report import target

NAME = "parallel"
TITLE = "(d) Parallel efficiency: 2 concurrent trials against 1"
SPEEDUP_TARGET = 1.7


def settings(quick: bool, concurrency: int, device: str) -> dict[str, Any]:
    options = (
        {"length": 30, "train_size": 512, "validation_size": 128, "test_size": 128}
        if quick
        else {"length": 100, "train_size": 4000, "validation_size": 300, "test_size": 300}
    )
    # Trials of several seconds: the window's ragged edges (one trial running alone) matter less.
    epochs = 2 if quick else 4
    return {
        "task": "adding",
        "cells": "lstm",
        "trials": 4 if quick else 8,
        "epochs": epochs,
        "seed": 0,
        "grace_period": epochs,  # FIFO: every trial does the same work
        "max_concurrent": concurrency,
        "cpus_per_trial": 1,
        "gpus_per_trial": gpus_per_trial(device, 0.5),
        "task_options": options,
        "space_overrides": {"depth": 1, "width": 64, "clipping": "norm", "clip": 1.0, "lr": 0.003},
    }


def throughput(record: SweepRecord) -> dict[str, Any]:
    window = record.window or float("nan")
    steps = [
        t.metrics.get("steps_per_second", 0.0) * t.metrics.get("train_seconds", 0.0) for t in record.trials
    ]
    spans = [t.span for t in record.trials if t.span is not None]
    return {
        "trials": len(record.trials),
        "window_s": window,
        "trials_per_s": len(record.trials) / window,
        "steps_per_s": sum(steps) / window,
        "per_trial_steps_per_s": [t.metrics.get("steps_per_second") for t in record.trials],
        "trial_spans_s": spans,
        "wall_s": record.wall,
        "startup_s": record.startup,
    }


def interleaved_order(repeats: int) -> list[int]:
    """The concurrency of each sweep in turn: (1, 2), then (2, 1), alternating with each repeat."""
    order = []
    for rep in range(repeats):
        order += [1, 2] if rep % 2 == 0 else [2, 1]
    return order


def measure_sweeps(order: list[int], quick: bool, device: str) -> dict[int, list[dict[str, Any]]]:
    """Run one sweep per entry of ``order`` and the throughput of each, by concurrency."""
    measured: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="rnnbench-bench-parallel-") as tmp:
        for k, concurrency in enumerate(order):
            record = run_cli_sweep(
                Path(tmp),
                f"parallel-c{concurrency}-{k}",
                settings(quick, concurrency, device),
                env=device_env(device),
            )
            measured[concurrency].append(throughput(record))
    return measured


def mean(values: list[float | None]) -> float:
    """The mean of the values that are not None (nan when none are)."""
    found = [v for v in values if v is not None]
    return sum(found) / len(found) if found else float("nan")


def table_rows(
    best: dict[int, dict[str, Any]],
    speedup: float,
    step_speedup: float,
    per_trial_1: float,
    per_trial_2: float,
) -> list[list[Any]]:
    """Rows (quantity, 1 at a time, 2 at a time, ratio) from the best sweep of each side."""
    return [
        ["trials per second", best[1]["trials_per_s"], best[2]["trials_per_s"], speedup],
        [
            "training steps per second (all trials)",
            best[1]["steps_per_s"],
            best[2]["steps_per_s"],
            step_speedup,
        ],
        ["one trial's training steps per second", per_trial_1, per_trial_2, per_trial_2 / per_trial_1],
        [
            "mean trial span (s)",
            mean(best[1]["trial_spans_s"]),
            mean(best[2]["trial_spans_s"]),
            mean(best[2]["trial_spans_s"]) / mean(best[1]["trial_spans_s"]),
        ],
        [
            "window: first start to last end (s)",
            best[1]["window_s"],
            best[2]["window_s"],
            best[1]["window_s"] / best[2]["window_s"],
        ],
        ["start-up to first trial (s)", best[1]["startup_s"], best[2]["startup_s"], None],
    ]


def build_notes(s: dict[str, Any], order: list[int], per_trial_1: float, per_trial_2: float) -> list[str]:
    """What was run, on how many cores, and how much the concurrent trials slowed each other."""
    import os

    return [
        f"{s['trials']} identical trials per sweep (lstm width 64, adding T={s['task_options']['length']}, "
        f"{s['task_options']['train_size']} examples, {s['epochs']} epochs), 1 CPU and 1 torch thread per trial; "
        f"order {order}; machine has {os.cpu_count()} cores",
        f"per-trial step rate with 2 at once is {per_trial_2 / per_trial_1:.2f}x the rate alone: below 1 means "
        "the trials contend (shared cores, memory bandwidth, the driver's own CPU: Tune loop and MLflow writes)",
    ]


def run(quick: bool = False, device: str = "cpu", repeats: int | None = None) -> dict[str, Any]:
    repeats = repeats or (1 if quick else 2)
    order = interleaved_order(repeats)
    measured = measure_sweeps(order, quick, device)
    best = {c: max(rows, key=lambda r: r["trials_per_s"]) for c, rows in measured.items()}
    speedup = best[2]["trials_per_s"] / best[1]["trials_per_s"]
    step_speedup = best[2]["steps_per_s"] / best[1]["steps_per_s"]
    per_trial_1 = mean(best[1]["per_trial_steps_per_s"])
    per_trial_2 = mean(best[2]["per_trial_steps_per_s"])
    rows = table_rows(best, speedup, step_speedup, per_trial_1, per_trial_2)
    s = settings(quick, 1, device)
    return {
        "name": NAME,
        "title": TITLE,
        "description": "Throughput over the trials' window (start-up excluded); ratio = 2 concurrent / 1.",
        "params": {"order": order, "device": device, "settings": s},
        "measured": {str(c): rows_ for c, rows_ in measured.items()},
        "table": {"columns": ["quantity", "1 at a time", "2 at a time", "ratio"], "rows": rows},
        "targets": [target("throughput, 2 concurrent trials / 1", speedup, ">=", SPEEDUP_TARGET, "x")],
        "notes": build_notes(s, order, per_trial_1, per_trial_2),
    }
