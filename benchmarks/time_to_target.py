"""(e) Time to target: the default sweep (TPE + ASHA) against random search without early stopping.

Subject: ``rnnbench.sweep.run_sweep`` exactly as ``rnnbench sweep`` runs it (seeded TPE sampler, ASHA
with rnnbench's default grace period and reduction factor, MLflow records), on task ``adding`` with a
short length, a small training set and a narrowed space.

Baseline: the same ``run_sweep`` with ``sampler = "random"`` (Optuna's RandomSampler, same seed) and
``grace_period = epochs`` (no ASHA rung: FIFO, no early stopping): the same trainable, space, budget,
concurrency, records and Ray session.

Time to target = from the first trial's start to the first epoch report, of any trial, with a
validation accuracy at or above the target (MLflow run start and metric timestamps, written by the
driver). Ray start-up is excluded on both sides.
The arms alternate between seeds (subject first for seed 0, baseline first for seed 1, ...).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import gpus_per_trial, read_sweep, tracking_uri
from benchmarks.report import target

NAME = "time_to_target"
TITLE = "(e) Time to target: TPE + ASHA (default sweep) against random search without early stopping"
SPEEDUP_TARGET = 3.0
SPACE_OVERRIDES = {"depth": {"low": 1, "high": 2}, "width": {"low": 16, "high": 64}}  # lr, clipping: default


def plan(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "task_options": {"length": 20, "train_size": 2000, "validation_size": 300, "test_size": 300},
            "epochs": 8,
            "trials": 8,
            "seeds": [0],
            "target": 0.4,
        }
    # A target only some configurations reach within the epochs (best seen: 0.72-0.83 at 16 trials).
    return {
        "task_options": {"length": 30, "train_size": 2000, "validation_size": 500, "test_size": 500},
        "epochs": 12,
        "trials": 32,
        "seeds": [0, 1, 2],
        "target": 0.7,
    }


def first_hit(events: list[tuple[float, float, Any]], start: float, goal: float) -> tuple[float, Any]:
    """Seconds from ``start`` to the first event whose value reaches ``goal`` (inf when none), and its key."""
    hits = [(t, key) for t, value, key in events if value >= goal]
    if not hits:
        return math.inf, None
    t, key = min(hits, key=lambda h: h[0])
    return t - start, key


def subject_arm(settings_kwargs: dict[str, Any], goal: float) -> dict[str, Any]:
    from rnnbench.sweep import run_sweep
    from rnnbench.sweep.settings import SweepSettings

    settings = SweepSettings(**settings_kwargs)
    wall_start = time.time()
    run_sweep(settings)
    wall = time.time() - wall_start
    _, trials = read_sweep(settings.tracking_uri or "", settings.name or "", histories=("val_accuracy",))
    start = min(t.start for t in trials)
    end = max(t.end or t.start for t in trials)
    events = [(ts, v, t.number) for t in trials for ts, v in t.metrics["val_accuracy@history"]]
    reached, number = first_hit(events, start, goal)
    statuses = [t.status for t in trials]
    best = max((v for _, v, _ in events), default=None)
    configs = {t.number: _config(t.params) for t in trials}
    hit_start = next((t.start - start for t in trials if t.number == number), None)
    return {
        "seconds_to_target": reached,
        "first_hit_trial": number,
        "window_s": end - start,
        "wall_s": wall,
        "trials": len(trials),
        "completed": statuses.count("completed"),
        "pruned": statuses.count("pruned"),
        "trials_reaching_target": len({k for _, v, k in events if v >= goal}),
        "best_val_accuracy": best,
        "epochs_trained": sum(len(t.metrics["val_accuracy@history"]) for t in trials),
        "first_hit_config": configs.get(number),
        "first_hit_trial_start_s": hit_start,
        "configs": [configs[k] for k in sorted(configs)],
    }


def baseline_arm(settings_kwargs: dict[str, Any], goal: float) -> dict[str, Any]:
    """The same sweep with ``sampler = "random"`` and no pruning (``grace_period = epochs``: FIFO)."""
    return subject_arm(
        {**settings_kwargs, "sampler": "random", "grace_period": settings_kwargs["epochs"]}, goal
    )


def _config(values: dict[str, Any]) -> dict[str, Any]:
    """depth, width, lr, clip of a trial (MLflow params are text)."""
    out: dict[str, Any] = {}
    for key in ("depth", "width", "lr", "clip"):
        value = values.get(key)
        try:
            out[key] = None if value in (None, "none") else round(float(value), 6)
        except (TypeError, ValueError):
            out[key] = value
    return out


def ratio_of(baseline: dict[str, Any], subject: dict[str, Any]) -> tuple[float | None, str]:
    """baseline time / subject time, with what it means when one side never reached the target."""
    b, s = baseline["seconds_to_target"], subject["seconds_to_target"]
    if math.isinf(s) and math.isinf(b):
        return None, "neither reached the target"
    if math.isinf(s):
        return 0.0, "TPE+ASHA never reached the target"
    if math.isinf(b):
        return baseline[
            "window_s"
        ] / s, "random never reached it: a lower bound (its whole window / TPE's time)"
    return b / s, ""


def common_settings(p: dict[str, Any], device: str, concurrency: int, workdir: Path) -> dict[str, Any]:
    """The sweep settings both arms share (each arm adds its seed and name, the baseline its sampler)."""
    return {
        "task": "adding",
        "cells": ["lstm"],
        "trials": p["trials"],
        "epochs": p["epochs"],
        "task_options": p["task_options"],
        "space_overrides": SPACE_OVERRIDES,
        "cpus_per_trial": 1,
        "gpus_per_trial": gpus_per_trial(device, 0.5),
        "max_concurrent": concurrency,
        "tracking_uri": tracking_uri(workdir),
        "sweeps_dir": str(workdir / "sweeps"),
        "cache_dir": str(workdir / "cache"),
        "experiment": "bench-ttt",
    }


def seed_loop(seeds: list[int], common: dict[str, Any], goal: float) -> list[dict[str, Any]]:
    """Both arms at every seed, alternating which goes first, and the ratio of their times to target."""
    per_seed = []
    for k, seed in enumerate(seeds):
        arms: dict[str, dict[str, Any]] = {}
        order = ("subject", "baseline") if k % 2 == 0 else ("baseline", "subject")
        for arm in order:
            kwargs = {**common, "seed": seed, "name": f"ttt-{arm}-s{seed}"}
            runner = subject_arm if arm == "subject" else baseline_arm
            arms[arm] = runner(kwargs, goal)
        ratio, meaning = ratio_of(arms["baseline"], arms["subject"])
        per_seed.append({"seed": seed, "order": list(order), **arms, "ratio": ratio, "meaning": meaning})
    return per_seed


def overall_ratio(per_seed: list[dict[str, Any]]) -> float | None:
    """The geometric mean of the seeds' ratios; the smallest when one is 0 (TPE+ASHA never got there)."""
    ratios = [r["ratio"] for r in per_seed if r["ratio"] is not None]
    if ratios and all(r > 0 for r in ratios):
        overall: float | None = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    else:
        overall = min(ratios) if ratios else None
    return overall


def build_table(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """The table: for each seed, a row per arm and a row with their ratio."""
    rows = []
    for r in per_seed:
        for arm, label in (("subject", "TPE + ASHA (rnnbench sweep)"), ("baseline", "random, FIFO")):
            a = r[arm]
            rows.append(
                [
                    r["seed"],
                    label,
                    a["seconds_to_target"],
                    a["first_hit_trial_start_s"],
                    a["window_s"],
                    a["trials"],
                    a["pruned"],
                    a["epochs_trained"],
                    a["trials_reaching_target"],
                    a["best_val_accuracy"],
                ]
            )
        rows.append(
            [
                r["seed"],
                "ratio random / TPE+ASHA",
                r["ratio"],
                None,
                None,
                None,
                None,
                None,
                None,
                r["meaning"],
            ]
        )
    return {
        "columns": [
            "seed",
            "arm",
            "s to target",
            "hitting trial started at s",
            "window s",
            "trials",
            "pruned",
            "epochs trained",
            "trials reaching target",
            "best val acc",
        ],
        "rows": rows,
    }


def first_hit_notes(per_seed: list[dict[str, Any]]) -> list[str]:
    """For each seed where TPE+ASHA reached the target: how much of its time was the hitting trial's own."""
    notes = []
    for r in per_seed:
        a = r["subject"]
        if a["first_hit_trial_start_s"] is not None and not math.isinf(a["seconds_to_target"]):
            own = a["seconds_to_target"] - a["first_hit_trial_start_s"]
            notes.append(
                f"seed {r['seed']}: {own:.1f} s of TPE+ASHA's {a['seconds_to_target']:.1f} s to target were the "
                f"hitting trial's own epochs ({a['first_hit_config']}); early stopping only shortens the wait "
                "before a good trial starts, so the ratio is bounded by (wait + own) / (shorter wait + own)"
            )
    return notes


def build_notes(
    p: dict[str, Any],
    goal: float,
    concurrency: int,
    startup: int,
    per_seed: list[dict[str, Any]],
    seeds: list[int],
) -> list[str]:
    """The set-up, TPE's random start-up, each seed's hitting trial, ASHA's stops, and the seed count."""
    notes = [
        f"adding T={p['task_options']['length']}, {p['task_options']['train_size']} training examples, "
        f"{p['epochs']} epochs, {p['trials']} trials per arm, {concurrency} at a time (1 CPU each); space "
        f"'default' with depth 1-2 and width 16-64 (lr 1e-4..3e-2 and clipping as the space has them); "
        f"target: validation accuracy >= {goal}",
        "both arms are rnnbench sweeps: the baseline sets sampler = 'random' and grace_period = epochs",
    ]
    if startup >= p["trials"] // 2:
        notes.append(
            f"TPE samples its first {startup} trials at random (Optuna's n_startup_trials): with a budget of "
            f"{p['trials']}, only {max(p['trials'] - startup, 0)} trials are model-guided, so most of any gain "
            "must come from ASHA stopping trials early"
        )
    shared = [sum(1 for c in r["subject"]["configs"] if c in r["baseline"]["configs"]) for r in per_seed]
    notes.append(
        f"TPE models after {startup} random start-up trials (rnnbench's default for {p['trials']} trials); with "
        f"the same seed those are the RandomSampler's first draws ({', '.join(map(str, shared))} of "
        f"{p['trials']} configurations identical per seed)"
    )
    notes += first_hit_notes(per_seed)
    pruned = sum(r["subject"]["pruned"] for r in per_seed)
    notes.append(
        f"ASHA stopped {pruned} of {sum(r['subject']['trials'] for r in per_seed)} TPE trials; on the adding "
        "problem every trial sits on the same plateau (validation loss ~ the variance of the sum) for the "
        "first epochs, so the early rungs rank trials mostly by noise"
    )
    if len(seeds) < 3:
        notes.append(
            f"{len(seeds)} seed(s): time to target is dominated by when a good learning rate is drawn; "
            "read the ratio as indicative, more seeds are needed for a firm figure"
        )
    return notes


def run(quick: bool = False, device: str = "cpu", repeats: int | None = None) -> dict[str, Any]:
    import ray

    from rnnbench.sweep.settings import SweepSettings

    p = plan(quick)
    seeds = list(range(repeats)) if repeats else p["seeds"]
    goal = p["target"]
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # as rnnbench sweep does: no Tune banner
    hide_gpus = device == "cpu" and "CUDA_VISIBLE_DEVICES" not in os.environ
    with tempfile.TemporaryDirectory(prefix="rnnbench-bench-ttt-") as tmp:
        workdir = Path(tmp)
        if hide_gpus:
            os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the Ray workers spawned below inherit it
        started_ray = not ray.is_initialized()
        if started_ray:
            ray.init(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        try:
            cpus = int(ray.cluster_resources().get("CPU", 1))
            concurrency = max(1, cpus)  # the default sweep's: as many 1-CPU trials as there are CPUs
            per_seed = seed_loop(seeds, common_settings(p, device, concurrency, workdir), goal)
        finally:
            if started_ray:
                ray.shutdown()
            if hide_gpus:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)

    overall = overall_ratio(per_seed)
    table = build_table(per_seed)
    startup = SweepSettings(trials=p["trials"]).tpe_startup_trials
    return {
        "name": NAME,
        "title": TITLE,
        "description": (
            "Seconds from the first trial's start; window = first trial start to last trial end; "
            "'never' = not reached. The overall ratio is the geometric mean over seeds."
        ),
        "params": {
            **p,
            "seeds": seeds,
            "device": device,
            "concurrency": concurrency,
            "space_overrides": SPACE_OVERRIDES,
        },
        "per_seed": per_seed,
        "overall_ratio": overall,
        "table": table,
        "targets": [target("time to target, random+FIFO / TPE+ASHA", overall, ">=", SPEEDUP_TARGET, "x")],
        "notes": build_notes(p, goal, concurrency, startup, per_seed, seeds),
    }
