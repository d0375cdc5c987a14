"""(f) The leaderboard at scale: ``rnnbench leaderboard`` on a store that grows to a Greff-sized study.

Subject: the real command, ``rnnbench leaderboard --sweep NAME`` in a fresh process, timed from launch
to exit, on an sqlite MLflow store holding one sweep of the nine Odyssey cells. The store grows in
steps (300, 1,000, 3,000 and 5,400 trial runs: Greff et al. trained 5,400); each trial run carries
what a real one carries (the sweep's params, tags and final metrics, 20 epochs of curves). At each
step the sweep's end is done as a finished sweep does it (``log_sweep_leaderboard``: the importances
kept on its run, the leaderboard attached to it; timed apart), and the command is timed twice: as a
user runs it after the sweep, and with ``--recompute-importance`` (fANOVA over every cell's trials, as
before the cache). The time of the trial-run search alone (``MlflowRuns.trial_runs``) is beside.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import rnnbench_command
from benchmarks.report import target

NAME = "leaderboard"
TITLE = "(f) Leaderboard at scale: rnnbench leaderboard on a store of N trial runs"
SIZES = (300, 1000, 3000, 5400)
QUICK_SIZES = (90, 270)
TARGET_S = 10.0  # at 5,400 trial runs
CELLS = ("peephole", "nig", "nfg", "nog", "niaf", "noaf", "np", "cifg", "fgr")
SWEEP = "greff-scale"
EPOCHS = 20
DISTRIBUTIONS = {
    "lr": {"name": "FloatDistribution", "attributes": {"step": None, "low": 1e-6, "high": 1e-2, "log": True}},
    "momentum_complement": {"name": "FloatDistribution",
                            "attributes": {"step": None, "low": 0.01, "high": 1.0, "log": True}},
    "width": {"name": "IntDistribution", "attributes": {"log": True, "step": 1, "low": 20, "high": 200}},
    "depth": {"name": "IntDistribution", "attributes": {"log": False, "step": 1, "low": 1, "high": 2}},
}  # fmt: skip
TASK_PARAMS = {"task": "temporal_order", "task.length": "30", "task.spread": "4.0", "task.symbols": "2",
               "task.train_size": "1500", "task.validation_size": "300", "task.test_size": "1000",
               "length": "30", "input_encoding": "one-hot", "space": "greff", "metric": "val_accuracy",
               "epochs": str(EPOCHS), "seed": "0", "data_seed": "0", "cpus_per_trial": "1.0",
               "gpus_per_trial": "0.0", "optimizer": "nesterov", "clip": "none", "patience": "8",
               "plugin": "rnnbench.plugins.odyssey", "plugin_version": "0.1.0"}  # fmt: skip


def open_store(folder: Path, cells: tuple[str, ...] = CELLS) -> tuple[Any, str, str, str]:
    """An sqlite store with the experiment and the sweep's parent run: (client, uri, experiment, parent)."""
    from mlflow.entities import Param, RunTag

    from rnnbench.tracking.store import open_client

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = open_client(uri)
    experiment = client.create_experiment("rnnbench", artifact_location=(folder / "mlartifacts").as_uri())
    parent = client.create_run(experiment, tags={"kind": "sweep", "sweep": SWEEP, "task": "temporal_order",
                                                 "mlflow.runName": SWEEP}).info.run_id  # fmt: skip
    params = {"name": SWEEP, "cells": json.dumps(cells), "task": "temporal_order", "space": "greff",
              "metric": "val_accuracy", "sampler": "random", "epochs": str(EPOCHS)}  # fmt: skip
    client.log_batch(parent, params=[Param(k, v) for k, v in params.items()], tags=[RunTag("trials", "0")])
    return client, uri, experiment, parent


def add_trials(client: Any, experiment: str, parent: str, start: int, stop: int, rng: random.Random,
               cells: tuple[str, ...] = CELLS) -> None:  # fmt: skip
    """Trial runs ``start`` .. ``stop - 1``, the cells in turn: accuracy rises with the learning rate's
    log, more for some cells, plus noise; a run below chance now and then, as real sweeps have."""
    from mlflow.entities import Metric, Param, RunTag

    distributions = json.dumps({k: json.dumps(v) for k, v in DISTRIBUTIONS.items()})
    for index in range(start, stop):
        cell, number = cells[index % len(cells)], index // len(cells)
        lr = math.exp(rng.uniform(math.log(1e-6), math.log(1e-2)))
        sampled = {"lr": lr, "momentum_complement": math.exp(rng.uniform(math.log(0.01), 0.0)),
                   "width": rng.randint(20, 200), "depth": rng.randint(1, 2)}  # fmt: skip
        skill = 0.25 + 0.7 / (1 + math.exp(-(math.log10(lr) + 4) * (1 + cells.index(cell) / 8)))
        accuracy = min(1.0, max(0.0, skill + rng.gauss(0, 0.05)))
        now = 1_700_000_000_000 + index * 60_000
        tags = {"sweep": SWEEP, "cell": cell, "task": "temporal_order", "status": "completed",
                "optuna_trial": str(number), "optuna_distributions": distributions, "mlflow.parentRunId": parent,
                "mlflow.runName": f"{cell}-t{number}", "attempts": "1", "device": "cpu", "node_ip": "127.0.0.1",
                "task_data_version": "temporal-order-1", "rnnbench_version": "0.1.0"}  # fmt: skip
        run = client.create_run(experiment, start_time=now, tags=tags).info.run_id
        params = {**TASK_PARAMS, "cell": cell, **{k: str(v) for k, v in sampled.items()},
                  "momentum": str(1 - sampled["momentum_complement"])}  # fmt: skip
        final = {"test_accuracy": accuracy, "val_accuracy": accuracy, "best_val_accuracy": accuracy,
                 "test_count": 1000.0, "chance": 0.25, "lrd_score": accuracy, "lrd_horizon": 26.0,
                 "param_count": 4.0 * sampled["width"] ** 2, "train_seconds": 20.0, "best_epoch": 15.0,
                 "epochs_run": float(EPOCHS), "val_loss": 1.0 - accuracy, "test_loss": 1.0 - accuracy}  # fmt: skip
        metrics = [Metric(k, v, now, 0) for k, v in final.items()]
        metrics += [Metric(name, accuracy * (e + 1) / EPOCHS, now + e, e)
                    for e in range(EPOCHS) for name in ("val_accuracy", "train_loss")]  # fmt: skip
        client.log_batch(run, metrics=metrics, params=[Param(k, v) for k, v in params.items()],
                         tags=[RunTag("status", "completed")])  # fmt: skip
        client.set_terminated(run, "FINISHED", end_time=now + 20_000)


def finish_sweep(uri: str) -> None:
    """The sweep's end, as a finished sweep does it: its importances kept, its leaderboard attached."""
    from rnnbench.report.leaderboard import log_sweep_leaderboard
    from rnnbench.tracking.store import Store

    log_sweep_leaderboard(Store.open(uri, "rnnbench", checked=True), SWEEP)


def time_leaderboard(folder: Path, uri: str, *extra: str) -> float:
    """Seconds from launching ``rnnbench leaderboard`` to its exit (it must succeed)."""
    command = [*rnnbench_command(), "leaderboard", "--tracking-uri", uri, "--sweep", SWEEP, *extra]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds


def search_seconds(client: Any, experiment: str, uri: str) -> float:
    from rnnbench.tracking.records import MlflowRuns

    started = time.perf_counter()
    MlflowRuns(uri, client, experiment).trial_runs(sweep=SWEEP)
    return time.perf_counter() - started


def run(quick: bool = False, device: str = "cpu", repeats: int | None = None) -> dict[str, Any]:

    sizes = QUICK_SIZES if quick else SIZES
    rows, measurements = [], []
    rng = random.Random(0)
    with tempfile.TemporaryDirectory(prefix="rnnbench-bench-leaderboard-") as tmp:
        folder = Path(tmp)
        client, uri, experiment, parent = open_store(folder)
        have = 0
        for size in sizes:
            started = time.perf_counter()
            add_trials(client, experiment, parent, have, size, rng)
            fill = time.perf_counter() - started
            have = size
            started = time.perf_counter()
            finish_sweep(uri)
            cache = time.perf_counter() - started
            cached = min(time_leaderboard(folder, uri) for _ in range(repeats or 1))
            fresh = time_leaderboard(folder, uri, "--recompute-importance")
            search = search_seconds(client, experiment, uri)
            megabytes = (folder / "mlflow.db").stat().st_size / 2**20
            entry = {"runs": size, "store_mb": megabytes, "leaderboard_s": cached, "recomputed_s": fresh,
                     "search_s": search, "cache_s": cache, "fill_s": fill}  # fmt: skip
            measurements.append(entry)
            rows.append([size, megabytes, cached, fresh, search, cache])
            print(f"   {size} runs: leaderboard {cached:.1f} s (recomputing importances {fresh:.1f} s), "
                  f"search {search:.1f} s, the sweep's end {cache:.1f} s", flush=True)  # fmt: skip
    largest = measurements[-1]
    targets = [] if quick else [
        target(f"rnnbench leaderboard at {largest['runs']} trial runs", largest["leaderboard_s"], "<=", TARGET_S, " s")
    ]  # fmt: skip
    return {
        "name": NAME,
        "title": TITLE,
        "description": "Seconds from launch to exit of `rnnbench leaderboard --sweep NAME` on an sqlite store "
        "of N trial runs of the nine Odyssey cells (after the sweep's end kept its importances and attached its "
        "leaderboard; and recomputing the importances).",
        "params": {"sizes": list(sizes), "cells": list(CELLS), "epochs_of_curves": EPOCHS},
        "measurements": measurements,
        "table": {
            "columns": [
                "trial runs",
                "store MB",
                "leaderboard s",
                "recomputing importances s",
                "search s",
                "the sweep's end s",
            ],
            "rows": rows,
        },
        "targets": targets,
        "notes": ["the command is a fresh process: its imports and the store's opening are in every figure"],
    }
