"""(c) Logging tax: training with rnnbench's MLflow tracking against training without it.

Subject: ``rnnbench.tracking.tracked_run.run_tracked`` (what ``rnnbench train`` does: one MLflow run in a sqlite store
in a temporary folder, per-epoch metrics, final metrics, LRD artifacts). Baseline:
``rnnbench.training.loop.train`` with the same configuration and seed, no tracking. Interleaved (the order
alternates each repeat), after a warm-up of each (the warm-up also creates the store's schema).

The target is on the training step time, ``train_seconds / steps`` (the training loop with its
per-epoch evaluation and per-epoch logging callback), median of the repeats. Also shown: the whole
call's wall-clock (which adds opening the run, logging params and the final LRD plot and table), and
the seconds spent inside rnnbench's MLflow calls, timed directly by wrapping ``RunRecorder`` methods.
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.report import target

NAME = "logging_tax"
TITLE = "(c) Logging tax: training with MLflow tracking against none"
TAX_TARGET = 5.0  # per cent


class CallTimer:
    """Wraps methods of a class and sums the seconds spent in them (this process only)."""

    def __init__(self, cls: type, methods: tuple[str, ...]) -> None:
        self.cls, self.methods = cls, methods
        self.seconds: dict[str, float] = dict.fromkeys(methods, 0.0)
        self.calls: dict[str, int] = dict.fromkeys(methods, 0)
        self.originals: dict[str, Any] = {}

    def __enter__(self) -> CallTimer:
        for name in self.methods:
            original = getattr(self.cls, name)
            self.originals[name] = original

            def wrapped(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return _original(*args, **kwargs)
                finally:
                    self.seconds[_name] += time.perf_counter() - start
                    self.calls[_name] += 1

            setattr(self.cls, name, wrapped)
        return self

    def __exit__(self, *exc: Any) -> None:
        for name, original in self.originals.items():
            setattr(self.cls, name, original)

    def reset(self) -> None:
        self.seconds = dict.fromkeys(self.methods, 0.0)
        self.calls = dict.fromkeys(self.methods, 0)


def config(quick: bool, device: str, cache_dir: str) -> Any:
    from rnnbench.training.loop import TrainConfig

    options = (
        {"length": 20, "train_size": 512, "validation_size": 128, "test_size": 128}
        if quick
        else {"length": 100, "train_size": 4000, "validation_size": 500, "test_size": 500}
    )
    return TrainConfig(
        cell="lstm",
        task="adding",
        depth=1,
        width=32 if quick else 64,
        lr=3e-3,
        epochs=3 if quick else 4,
        seed=0,
        patience=0,
        threads=1,
        device=device,
        task_options=options,
        cache_dir=cache_dir,
    )


def call_figures(result: Any, wall: float) -> dict[str, float]:
    """What one training call measured: wall-clock, training seconds, steps, step time, validation loss."""
    return {
        "wall_s": wall,
        "train_seconds": result.train_seconds,
        "steps": result.steps,
        "step_s": result.train_seconds / result.steps,
        "val_loss": result.val_loss or 0.0,
    }


def one_plain(train: Callable[[Any], Any], base: Any) -> dict[str, float]:
    """One untracked training call (``rnnbench.training.loop.train``) on a copy of ``base``."""
    start = time.perf_counter()
    result = train(copy.deepcopy(base))
    return call_figures(result, time.perf_counter() - start)


def one_tracked(run_tracked: Callable[..., Any], base: Any, uri: str, timer: CallTimer) -> dict[str, float]:
    """One tracked training call on a copy of ``base``, with the seconds spent inside RunRecorder calls."""
    timer.reset()
    start = time.perf_counter()
    result = run_tracked(copy.deepcopy(base), tracking_uri=uri, experiment="bench").result
    return {
        **call_figures(result, time.perf_counter() - start),
        "in_loop_logging_s": timer.seconds["log_epoch"],
        "logging_s": sum(timer.seconds.values()),
    }


def interleave(
    repeats: int, plain_call: Callable[[], dict[str, float]], tracked_call: Callable[[], dict[str, float]]
) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """A warm-up of each side, then ``repeats`` calls of each, alternating which goes first."""
    plain: list[dict[str, float]] = []
    tracked: list[dict[str, float]] = []
    plain_call()  # warm-up: data cache, torch
    tracked_call()  # warm-up: the store's schema
    for rep in range(repeats):
        if rep % 2 == 0:
            plain.append(plain_call())
            tracked.append(tracked_call())
        else:
            tracked.append(tracked_call())
            plain.append(plain_call())
    return plain, tracked


def median_of(rows: list[dict[str, float]], key: str) -> float:
    """The median of ``key`` over the repeats."""
    return statistics.median(r[key] for r in rows)


def table_rows(
    plain: list[dict[str, float]], tracked: list[dict[str, float]], step_ratio: float, wall_ratio: float
) -> list[list[Any]]:
    """Rows (quantity, no tracking ms, MLflow ms, ratio, tax %) from the medians of the repeats."""
    in_loop_share = median_of(tracked, "in_loop_logging_s") / median_of(tracked, "train_seconds")
    return [
        [
            "training step (train_seconds / steps)",
            median_of(plain, "step_s") * 1e3,
            median_of(tracked, "step_s") * 1e3,
            step_ratio,
            (step_ratio - 1) * 100,
        ],
        [
            "whole call (run set-up, training, test, artifacts)",
            median_of(plain, "wall_s") * 1e3,
            median_of(tracked, "wall_s") * 1e3,
            wall_ratio,
            (wall_ratio - 1) * 100,
        ],
        [
            "inside MLflow calls during training (log_epoch), directly timed",
            None,
            median_of(tracked, "in_loop_logging_s") * 1e3,
            None,
            in_loop_share * 100,
        ],
        [
            "inside every RunRecorder call, directly timed",
            None,
            median_of(tracked, "logging_s") * 1e3,
            None,
            median_of(tracked, "logging_s") / median_of(plain, "wall_s") * 100,
        ],
    ]


def build_notes(
    c: Any, plain: list[dict[str, float]], tracked: list[dict[str, float]], repeats: int
) -> list[str]:
    """The configuration, whether both sides trained alike, and why the in-loop tax is per epoch."""
    same = all(abs(p["val_loss"] - t["val_loss"]) < 1e-9 for p, t in zip(plain, tracked, strict=True))
    return [
        f"lstm depth {c.depth} width {c.width} on adding T={c.task_options['length']}, "
        f"{c.task_options['train_size']} training examples, batch {c.batch_size}, {c.epochs} epochs, 1 thread; "
        f"{int(plain[0]['steps'])} steps per run; median of {repeats} interleaved repeats",
        "same configuration and seed on both sides: "
        + ("identical validation losses" if same else "validation losses DIFFER (check determinism)"),
        "rnnbench logs per epoch (one log_batch), never per step, so the in-loop tax is per-epoch cost / "
        "epoch time; short epochs raise it",
    ]


def run(quick: bool = False, device: str = "cpu", repeats: int | None = None) -> dict[str, Any]:
    from rnnbench.core.plugin_manager import load_plugins
    from rnnbench.tracking.recorder import RunRecorder
    from rnnbench.tracking.tracked_run import run_tracked
    from rnnbench.training.loop import train

    load_plugins()
    repeats = repeats or (2 if quick else 6)
    with tempfile.TemporaryDirectory(prefix="rnnbench-bench-logging-") as tmp:
        uri = f"sqlite:///{(Path(tmp) / 'mlflow.db').resolve()}"
        base = config(quick, device, str(Path(tmp) / "cache"))
        with CallTimer(RunRecorder, ("__init__", "start", "log_epoch", "finish")) as timer:
            plain, tracked = interleave(
                repeats,
                lambda: one_plain(train, base),
                lambda: one_tracked(run_tracked, base, uri, timer),
            )
    step_ratio = median_of(tracked, "step_s") / median_of(plain, "step_s")
    wall_ratio = median_of(tracked, "wall_s") / median_of(plain, "wall_s")
    rows = table_rows(plain, tracked, step_ratio, wall_ratio)
    c = base
    return {
        "name": NAME,
        "title": TITLE,
        "description": "Milliseconds (median); tax = tracked / untracked - 1.",
        "params": {"repeats": repeats, "device": device, "epochs": c.epochs, "task_options": c.task_options},
        "plain": plain,
        "tracked": tracked,
        "table": {"columns": ["quantity", "no tracking ms", "MLflow ms", "ratio", "tax %"], "rows": rows},
        "targets": [
            target(
                "MLflow logging tax on the training step time", (step_ratio - 1) * 100, "<=", TAX_TARGET, " %"
            )
        ],
        "notes": build_notes(c, plain, tracked, repeats),
    }
