"""(b) Harness overhead: N identical short trials through ``rnnbench sweep`` against a plain Optuna loop.

Subject: the real command, ``rnnbench sweep FILE --json`` in a fresh process (local Ray, sqlite MLflow
in a temporary folder, one trial at a time, FIFO: no pruning), every parameter of the space fixed by
``[space_overrides]`` so that all trials train the same tiny model on the same tiny data.

Baseline: the same trials in this process, in a plain Optuna loop (``study.ask`` -> the space with
the same overrides -> ``rnnbench.sweep.worker.trial_config`` -> ``rnnbench.training.loop.train`` ->
``study.tell``), no Ray, no MLflow.

    start-up           = first trial's start (its MLflow run's start_time, written by the driver when
                         Tune starts the trial) - the moment the command was launched
    overhead per trial = span of a trial after the first + the gap before the next - plain per-trial time
                         (the target: what each further trial costs beyond its own work)
    amortised          = (sweep wall - start-up) / N - plain per-trial time, which also spreads the fixed
                         costs (the first trial's worker start, the tail: summary, ray.shutdown) over N

The two are interleaved (plain, sweep, plain, sweep, ...) and the best repeat of each is used.

The one-trial sweep also runs joining a Ray this process started (``--address``): what a Ray that outlives
the command (a resident head) would save, measured rather than guessed. And beside each of its runs, Ray
Tune's own floor (``benchmarks.tune_floor``): a fresh process starting Ray as a sweep does and running one
empty trial, which no rnnbench command can beat; the report shows how far above it the sweep's trial is.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import SweepRecord, as_typed, device_env, gpus_per_trial, run_cli_sweep
from benchmarks.report import target

NAME = "harness"
TITLE = "(b) Harness overhead: rnnbench sweep against a plain Optuna loop, and a one-trial sweep's pieces"
OVERHEAD_TARGET = 0.2  # seconds per trial
# The smallest sweep a user runs: one trial, one epoch of the tanh RNN on 64 examples, from the command
# to its exit, on the embedded default (local Ray, sqlite MLflow in the working directory).
ONE_TRIAL = ["sweep", "--task", "adding", "--length", "10", "--cells", "rnn", "--trials", "1", "--epochs", "1",
             "-o", "train_size=64", "-o", "validation_size=32", "-o", "test_size=32", "--json"]  # fmt: skip
FIRST_TRIAL_TARGET = 5.0  # seconds from the command to its first trial
ONE_TRIAL_TARGET = 9.0  # seconds from the command to its exit
TAIL_TARGET = 1.0  # seconds from the last trial's end to the exit
# The moments the command marks (rnnbench.util.timings), in order, and what each piece before it holds.
PIECES = (
    ("command imported", "imports (Python, typer, rnnbench's command line)"),
    ("settings checked", "settings read and range-checked (the sweep file, the flags)"),
    (
        "cells checked",
        "cells, task, space and store URI checked, then the task data and cells in a forked child "
        "(the driver imports MLflow, Ray starts)",
    ),
    ("store opened", "the sweep's lock taken, the MLflow store opened or created (Ray still starting)"),
    ("ray started", "the rest of Ray's start"),
    ("sweep run started", "the sweep's MLflow run, its state, the Optuna journal"),
    ("tune set up", "Tune's searcher, scheduler and trainable"),
    ("first trial", "Tune starts the first trial (a new worker process for its actor; its run in MLflow)"),
    ("worker entered", "the trial's worker process entered"),
    ("worker imported", "the worker's imports (torch, the training loop; its data read without datasets)"),
)
TAIL = (
    ("last trial end", "the trial's training and its record"),
    ("trials done", "Tune's end of the cell (checkpoints, LRD plots)"),
    ("ray stopped", "Ray shut down (the summary, models and plots are written meanwhile)"),
    ("sweep finished", "summary, best models, leaderboard plots (left after Ray)"),
    ("exit", "the command's exit"),
)

TASK_OPTIONS = {"length": 20, "train_size": 256, "validation_size": 64, "test_size": 128}
OVERRIDES = {"depth": 1, "width": 16, "clipping": "norm", "clip": 1.0, "lr": 0.003}


def sweep_settings(trials: int, epochs: int, device: str) -> dict[str, Any]:
    return {
        "task": "adding",
        "cells": "lstm",
        "trials": trials,
        "epochs": epochs,
        "seed": 0,
        "grace_period": epochs,  # no ASHA rung: FIFO, every trial runs to the end like the plain loop
        "max_concurrent": 1,
        "cpus_per_trial": 1,
        "gpus_per_trial": gpus_per_trial(device, 1.0),
        "task_options": TASK_OPTIONS,
        "space_overrides": OVERRIDES,
    }


def trial_spec(epochs: int, cache_dir: str) -> Any:
    """What a sweep hands its trials (rnnbench.sweep.plan.SweepPlan.trial_spec), for the same settings."""
    from rnnbench.sweep.worker import TrialSpec

    return TrialSpec(cell="lstm", task="adding", epochs=epochs, seed=0, cpus_per_trial=1,
                     task_options=TASK_OPTIONS, cache_dir=cache_dir)  # fmt: skip


def plain_loop(trials: int, epochs: int, cache_dir: str, device: str) -> dict[str, Any]:
    """The same trials in a plain in-process Optuna loop calling rnnbench's training function."""
    import optuna

    import rnnbench
    from rnnbench.search_spaces.overrides import apply_overrides
    from rnnbench.sweep.worker import trial_config
    from rnnbench.training.loop import train

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = apply_overrides(rnnbench.get_search_space("default"), OVERRIDES)
    spec = trial_spec(epochs, cache_dir)
    started = time.perf_counter()
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=0))
    per_trial, train_seconds = [], []
    for _ in range(trials):
        t0 = time.perf_counter()
        trial = study.ask()
        config = trial_config(space(trial), spec)
        config.device = device
        result = train(config)
        study.tell(trial, result.val_loss)
        per_trial.append(time.perf_counter() - t0)
        train_seconds.append(result.train_seconds)
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "per_trial_s": wall / trials,
        "trial_s": per_trial,
        "train_seconds": train_seconds,
    }


def analyse(record: SweepRecord, trials: int, plain_per_trial: float) -> dict[str, Any]:
    spans = [t.span for t in record.trials if t.span is not None]
    gaps = record.gaps()
    startup = record.startup
    out: dict[str, Any] = {
        "wall_s": record.wall,
        "startup_s": startup,
        "trials_recorded": len(record.trials),
        "statuses": sorted({t.status or "?" for t in record.trials}),
        "launch_to_sweep_run_s": None
        if record.parent_start is None
        else record.parent_start - record.started,
        "sweep_run_to_first_trial_s": (
            None
            if record.parent_start is None or startup is None
            else record.first_trial_start - record.parent_start  # type: ignore[operator]
        ),
        "trial_spans_s": spans,
        "first_trial_span_s": spans[0] if spans else None,
        "later_trial_span_median_s": statistics.median(spans[1:]) if len(spans) > 1 else None,
        "gap_median_s": statistics.median(gaps) if gaps else None,
        "tail_s": None if record.last_trial_end is None else record.ended - record.last_trial_end,
        "train_seconds": [t.metrics.get("train_seconds") for t in record.trials],
    }
    if startup is not None:
        out["per_trial_s"] = (record.wall - startup) / trials
        out["overhead_per_trial_s"] = out["per_trial_s"] - plain_per_trial
    if out["later_trial_span_median_s"] is not None and out["gap_median_s"] is not None:
        # Steady state: a trial after the first (its worker already up) plus the gap before the next.
        out["steady_overhead_per_trial_s"] = (
            out["later_trial_span_median_s"] + out["gap_median_s"] - plain_per_trial
        )
    return out


def one_trial_sweep(workdir: Path, env: dict[str, str], extra: tuple[str, ...] = ()) -> dict[str, float]:
    """The one-trial sweep, run as a user would in a fresh folder: seconds from the command to each of its
    marked moments, to its trial's start and end (MLflow), and to its exit."""
    import os
    import subprocess

    from benchmarks.common import rnnbench_command
    from rnnbench.util.timings import ENV, read

    workdir.mkdir(parents=True)
    timings = workdir / "timings.jsonl"
    full_env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", **env, ENV: str(timings)}
    started = time.time()
    done = subprocess.run([*rnnbench_command(), *ONE_TRIAL, *extra], cwd=workdir, env=full_env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    ended = time.time()
    if done.returncode != 0:
        raise RuntimeError(f"the one-trial sweep failed ({done.returncode}): {done.stderr[-3000:]}")
    from benchmarks.common import read_sweep

    name = json.loads(done.stdout)["name"]
    _, trials = read_sweep(f"sqlite:///{workdir / 'mlflow.db'}", name)
    marks = {k: v - started for k, v in read(str(timings)).items()}
    marks["first trial"] = trials[0].start - started
    marks["last trial end"] = (trials[0].end or ended) - started
    marks["exit"] = ended - started
    return marks


def pieces(marks: dict[str, float]) -> list[list[Any]]:
    """Rows (piece, seconds, at) from the command to its first trial, and from the last trial to the exit."""
    rows, previous = [], 0.0
    for key, words in PIECES:
        if key in marks:
            rows.append([f"  {words}", marks[key] - previous, marks[key]])
            previous = marks[key]
    previous = marks["last trial end"]
    rows.append(
        ["  ... the trial ...", previous - marks.get("worker imported", marks["first trial"]), previous]
    )
    for key, words in TAIL[1:]:
        if key in marks:
            rows.append([f"  {words}", marks[key] - previous, marks[key]])
            previous = max(previous, marks[key])
    return rows


def measure(trials: int, epochs: int, repeats: int, device: str) -> tuple[list[dict[str, float]], ...]:
    """The one-trial sweeps and Ray Tune's floor, the one-trial sweeps joining a Ray, then the plain loop and
    the N-trial sweep, each pair interleaved: ``repeats`` of each."""
    with tempfile.TemporaryDirectory(prefix="rnnbench-bench-harness-") as tmp:
        workdir = Path(tmp)
        cache = str(workdir / "cache")
        singles, floors = [], []
        for k in range(repeats or 3):  # interleaved, each first in turn: the host's speed moves between runs
            if k % 2:
                floors.append(tune_floor(workdir / f"floor-{k}.json", device_env(device)))
            singles.append(one_trial_sweep(workdir / f"one-{k}", device_env(device)))
            if not k % 2:
                floors.append(tune_floor(workdir / f"floor-{k}.json", device_env(device)))
        joined = joined_sweeps(workdir, device, repeats or 3)
        # Warm-up (not counted): writes the data cache both sides read, and warms torch in this process.
        plain_loop(1, epochs, cache, device)
        plains, sweeps = [], []
        for rep in range(repeats):
            plains.append(plain_loop(trials, epochs, cache, device))
            record = run_cli_sweep(
                workdir, f"harness-{rep}", sweep_settings(trials, epochs, device), env=device_env(device)
            )
            sweeps.append(record)
    return singles, floors, joined, plains, sweeps


def tune_floor(out: Path, env: dict[str, str]) -> dict[str, float]:
    """Ray Tune's own floor (``benchmarks.tune_floor``) in a fresh process: seconds from its launch to
    Ray's start, to its empty trial's entry and to Ray's shut-down."""
    import os
    import subprocess
    import sys

    started = time.time()
    done = subprocess.run([sys.executable, "-m", "benchmarks.tune_floor", str(out), "--since", repr(started)],
                          cwd=Path(__file__).resolve().parents[1], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"Ray Tune's floor failed ({done.returncode}): {done.stderr[-3000:]}")
    return {key: value for key, value in json.loads(out.read_text()).items() if isinstance(value, float)}


def floor_rows(floors: list[dict[str, float]], single: dict[str, float]) -> list[list[Any]]:
    """Rows of Ray Tune's floor, best repeat, and how far above it the one-trial sweep's first trial is."""
    best = min(floors, key=lambda m: m["trial entered"])
    return [
        ["Ray Tune's floor (Ray started as a sweep starts it, one empty trial): launch to trial",
         best["trial entered"], "; ".join(f"{m['trial entered']:.2f}" for m in floors)],
        ["  imports (Ray, rnnbench's cluster module)", best["imported"], f"at {best['imported']:.2f}"],
        ["  Ray Tune imported, Ray started", best["ray started"] - best["imported"], f"at {best['ray started']:.2f}"],
        ["  Tune set up, a worker process for the trial's actor, the trial entered",
         best["trial entered"] - best["ray started"], f"at {best['trial entered']:.2f}"],
        ["one-trial sweep's first trial above the floor (best repeat of each)",
         single["first trial"] - best["trial entered"], ""],
    ]  # fmt: skip


def joined_sweeps(workdir: Path, device: str, repeats: int) -> list[dict[str, float]]:
    """The one-trial sweep joining a Ray already running on this host (``--address``), as a resident Ray
    would serve it: what the embedded default's own Ray start and shutdown cost, by difference."""
    import logging

    import ray

    ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    try:
        address = ("--address", ray.get_runtime_context().gcs_address)
        return [one_trial_sweep(workdir / f"joined-{k}", device_env(device), address) for k in range(repeats)]
    finally:
        ray.shutdown()


def check_recorded(analysed: list[dict[str, Any]], trials: int) -> None:
    """Every sweep must have recorded all its trials in MLflow, or its figures mean nothing."""
    for a in analysed:
        if a["trials_recorded"] != trials:
            raise RuntimeError(f"expected {trials} trial runs in MLflow, found {a['trials_recorded']}")


def one_trial_rows(
    single: dict[str, float], singles: list[dict[str, float]], fastest_exit: float
) -> list[list[Any]]:
    """Rows (quantity, seconds of the best repeat, every repeat) of the one-trial sweep and its pieces."""
    return [
        [
            "one-trial sweep: command to first trial",
            single["first trial"],
            "; ".join(f"{m['first trial']:.2f}" for m in singles),
        ],
        *[[words, seconds, f"at {at:.2f}"] for words, seconds, at in pieces(single)],
        ["one-trial sweep: command to exit", fastest_exit, "; ".join(f"{m['exit']:.2f}" for m in singles)],
        [
            "one-trial sweep: last trial's end to exit",
            single["exit"] - single["last trial end"],
            "; ".join(f"{m['exit'] - m['last trial end']:.2f}" for m in singles),
        ],
    ]


def joined_rows(joined: list[dict[str, float]]) -> list[list[Any]]:
    """Rows of the one-trial sweep joining a running Ray: its first trial and exit, best repeat."""
    return [
        [f"one-trial sweep joining a running Ray (--address): {label}", min(m[key] for m in joined),
         "; ".join(f"{m[key]:.2f}" for m in joined)]
        for label, key in (("command to first trial", "first trial"), ("command to exit", "exit"))
    ]  # fmt: skip


def sweep_rows(
    plain_per_trial: float,
    plains: list[dict[str, Any]],
    analysed: list[dict[str, Any]],
    best: dict[str, Any],
) -> list[list[Any]]:
    """Rows (quantity, seconds of the best repeat, every repeat) of the N-trial sweep and the plain loop."""
    return [
        [
            "plain Optuna loop: per trial",
            plain_per_trial,
            "; ".join(f"{p['per_trial_s']:.3f}" for p in plains),
        ],
        ["sweep: command wall", best["wall_s"], "; ".join(f"{a['wall_s']:.2f}" for a in analysed)],
        [
            "sweep: start-up to first trial",
            best["startup_s"],
            "; ".join(f"{a['startup_s']:.2f}" for a in analysed),
        ],
        ["  launch -> sweep's MLflow run (imports, checks, ray.init)", best["launch_to_sweep_run_s"], ""],
        ["  sweep's MLflow run -> first trial (Tune set-up)", best["sweep_run_to_first_trial_s"], ""],
        ["sweep: per trial, (wall - start-up) / N", best["per_trial_s"], ""],
        ["  first trial (worker start-up inside)", best["first_trial_span_s"], ""],
        ["  later trials, median span", best["later_trial_span_median_s"], ""],
        ["  gap between trials, median", best["gap_median_s"], ""],
        ["  tail: last trial end -> command exit", best["tail_s"], ""],
        [
            "amortised overhead per trial (fixed costs spread over N)",
            best["overhead_per_trial_s"],
            "; ".join(f"{a['overhead_per_trial_s']:.3f}" for a in analysed),
        ],
        [
            "overhead per trial (trials 2..N: span + gap - plain)",
            best.get("steady_overhead_per_trial_s"),
            "; ".join(f"{a.get('steady_overhead_per_trial_s', float('nan')):.3f}" for a in analysed),
        ],
    ]


def build_notes(trials: int, epochs: int, repeats: int, best: dict[str, Any]) -> list[str]:
    """What was run, the start-up, and the overhead per trial decomposed into its parts."""
    notes = [
        f"{trials} identical trials (lstm, depth 1, width 16, adding T={TASK_OPTIONS['length']}, "
        f"{TASK_OPTIONS['train_size']} training examples, {epochs} epochs), 1 at a time, 1 CPU each",
        f"{repeats} interleaved repeat(s); the best of each side is used",
        f"start-up: {best['startup_s']:.1f} s from launching the command to the first trial starting",
    ]
    share_first = (best["first_trial_span_s"] or 0) - (best["later_trial_span_median_s"] or 0)
    if share_first > 0:
        notes.append(
            f"the first trial takes {share_first:.2f} s longer than the later ones (the Tune worker process "
            f"starts and imports torch/rnnbench inside it): {share_first / trials:.2f} s of the per-trial "
            f"overhead at N={trials}"
        )
    if best.get("steady_overhead_per_trial_s") is not None and best["tail_s"] is not None:
        notes.append(
            f"decomposition of the overhead per trial: steady state {best['steady_overhead_per_trial_s']:.2f} s "
            f"+ first trial's extra {max(share_first, 0) / trials:.2f} s + tail (summary, ray.shutdown, exit) "
            f"{best['tail_s'] / trials:.2f} s, each per trial at N={trials}; the last two shrink as N grows"
        )
    return notes


def build_targets(
    single: dict[str, float], fastest_exit: float, best: dict[str, Any]
) -> list[dict[str, Any]]:
    """The one-trial sweep's first trial, exit and tail, and the N-trial sweep's overhead per trial."""
    return [
        target(
            "one-trial sweep: command to first trial",
            single["first trial"],
            "<=",
            FIRST_TRIAL_TARGET,
            " s",
        ),
        target("one-trial sweep: command to exit", fastest_exit, "<=", ONE_TRIAL_TARGET, " s"),
        target(
            "one-trial sweep: last trial's end to exit",
            single["exit"] - single["last trial end"],
            "<=",
            TAIL_TARGET,
            " s",
        ),
        target(
            "sweep overhead per trial",
            best.get("steady_overhead_per_trial_s"),
            "<=",
            OVERHEAD_TARGET,
            " s",
        ),
    ]


def run(quick: bool = False, device: str = "cpu", repeats: int | None = None) -> dict[str, Any]:
    from rnnbench.core.plugin_manager import load_plugins

    load_plugins()
    trials = 4 if quick else 12
    epochs = 2
    repeats = repeats or (1 if quick else 2)
    singles, floors, joined, plains, sweeps = measure(trials, epochs, repeats, device)
    single = min(singles, key=lambda m: m["first trial"])
    fastest_exit = min(m["exit"] for m in singles)
    plain_per_trial = min(p["per_trial_s"] for p in plains)
    analysed = [analyse(r, trials, plain_per_trial) for r in sweeps]
    check_recorded(analysed, trials)
    best = min(analysed, key=lambda a: a.get("steady_overhead_per_trial_s", float("inf")))
    rows = (one_trial_rows(single, singles, fastest_exit) + floor_rows(floors, single) + joined_rows(joined)
            + sweep_rows(plain_per_trial, plains, analysed, best))  # fmt: skip
    notes = build_notes(trials, epochs, repeats, best)
    return {
        "name": NAME,
        "title": TITLE,
        "description": (
            "Seconds. overhead per trial = a later trial's span + the gap before the next - plain per-trial "
            "time; start-up (to the first trial) and the tail are fixed costs, shown apart and amortised; "
            "the last column lists every repeat."
        ),
        "params": {
            "trials": trials,
            "epochs": epochs,
            "repeats": repeats,
            "device": device,
            "task_options": TASK_OPTIONS,
            "space_overrides": OVERRIDES,
        },
        "plain": plains,
        "sweeps": analysed,
        "sweep_command": as_typed(sweeps[0].command) if sweeps else None,
        "table": {"columns": ["quantity", "seconds (best repeat)", "every repeat"], "rows": rows},
        "one_trial": {
            "command": ["rnnbench", *ONE_TRIAL],
            "runs": singles,
            "joined_runs": joined,
            "tune_floor_runs": floors,
        },
        "targets": build_targets(single, fastest_exit, best),
        "notes": notes,
    }
