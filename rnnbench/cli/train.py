"""`rnnbench train`: one configuration trained, tested and recorded as one MLflow run."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from rnnbench.cli import options as o
from rnnbench.cli.output import (
    EXIT_FAILED,
    console,
    err_console,
    print_json,
    reports_errors,
)


@reports_errors
def train_command(
    cell: o.Cell,
    task: o.Task,
    depth: o.Depth = 1,
    width: o.Width = 64,
    clip: o.Clip = 1.0,
    lr: o.Lr = 3e-3,
    epochs: o.Epochs = 30,
    batch_size: o.BatchSize = 64,
    seed: o.Seed = 0,
    data_seed: o.DataSeed = 0,
    length: o.Length = None,
    train_size: o.TrainSize = None,
    validation_size: o.ValidationSize = None,
    test_size: o.TestSize = None,
    option: o.TaskOptions = None,
    optimizer: o.Optimizer = "adam",
    momentum: o.Momentum = 0.9,
    weight_decay: o.WeightDecay = 0.0,
    dropout: o.Dropout = 0.0,
    input_noise: o.InputNoise = 0.0,
    patience: o.Patience = 10,
    threads: o.Threads = None,
    device: o.Device = "auto",
    tracking_uri: o.TrackingUri = None,
    experiment: o.Experiment = "rnnbench",
    cache_dir: o.CacheDir = None,
    as_json: o.Json = False,
) -> None:
    """Train one configuration, evaluate it on test, and record it as one MLflow run."""
    from rnnbench.tracking.tracked_run import TrainingFailed, run_tracked
    from rnnbench.training.config import TrainConfig, parse_option

    sizes = {
        "length": length,
        "train_size": train_size,
        "validation_size": validation_size,
        "test_size": test_size,
    }
    task_options = {**dict(parse_option(text) for text in option or []),
                    **{k: v for k, v in sizes.items() if v is not None}}  # fmt: skip
    config = TrainConfig(
        cell=cell, task=task, depth=depth, width=width, clip=clip or None, lr=lr, epochs=epochs,
        batch_size=batch_size, seed=seed, data_seed=data_seed, optimizer=optimizer, momentum=momentum,
        weight_decay=weight_decay, dropout=dropout, input_noise=input_noise, patience=patience,
        threads=threads, device=device, task_options=task_options,
        cache_dir=str(cache_dir) if cache_dir else None,
    )  # fmt: skip
    with _training_progress(f"{cell} on {task}", epochs, quiet=as_json) as (on_epoch, on_step):
        try:
            run = run_tracked(config, tracking_uri, experiment, on_epoch=on_epoch, on_step=on_step)
        except TrainingFailed as exc:
            err_console.print(f"[bold red]Error:[/] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(EXIT_FAILED) from None
    _print_training(run, f"{cell} on {task}", as_json)


@contextlib.contextmanager
def _training_progress(title: str, epochs: int, quiet: bool) -> Iterator[tuple[Callable, Callable]]:
    """A progress bar on stderr, and the epoch and step callbacks that move it."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
        console=err_console, disable=quiet, transient=False,
    )  # fmt: skip
    with progress:
        bar = progress.add_task(title, total=epochs, status="loading data")

        def on_step(step: int, loss: float) -> None:
            if step % 10 == 0:
                progress.update(bar, status=f"step {step} loss {loss:.4f}")

        def on_epoch(report: Any) -> None:
            progress.update(
                bar, completed=report.epoch,
                status=f"epoch {report.epoch}: val loss {report.val_loss:.4f}, val acc {report.val_accuracy:.3f}",
            )  # fmt: skip

        yield on_epoch, on_step


def _print_training(run: Any, title: str, as_json: bool) -> None:
    result = run.result
    summary = {"run_id": run.run_id, "tracking_uri": run.tracking_uri, "experiment_id": run.experiment_id,
               "status": result.status, **result.final_metrics()}  # fmt: skip
    if as_json:
        print_json(summary)
        return
    table = Table(title=f"{title}: {result.status}", show_header=False)
    for key, value in summary.items():
        if isinstance(value, float):
            text = str(int(value)) if value.is_integer() else f"{value:.4g}"
        else:
            text = escape(str(value))
        table.add_row(key, text)
    console.print(table)
    if result.lrd is not None:
        curve = ", ".join(f"{b.low}-{b.high - 1}: {b.skill:.2f}" for b in result.lrd.buckets)
        console.print(f"LRD skill by distance bucket: {curve}", highlight=False)
