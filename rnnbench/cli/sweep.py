"""`rnnbench sweep`: a sweep under a live table, its resume command when interrupted."""

from __future__ import annotations

import functools
import signal
from typing import Any

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from rnnbench.cli import options as o
from rnnbench.cli.output import (
    EXIT_FAILED,
    console,
    err_console,
    fmt,
    print_json,
    reports_errors,
)
from rnnbench.training.metrics import STATUSES


@reports_errors
def sweep_command(
    sweep_file: o.SweepFile = None,
    task: o.SweepTask = None,
    cells: o.SweepCells = None,
    trials: o.Trials = None,
    space: o.Space = None,
    seed: o.SweepSeed = None,
    epochs: o.SweepEpochs = None,
    length: o.SweepLength = None,
    option: o.SweepTaskOptions = None,
    cpus_per_trial: o.CpusPerTrial = None,
    gpus_per_trial: o.GpusPerTrial = None,
    max_concurrent: o.MaxConcurrent = None,
    address: o.Address = None,
    tracking_uri: o.TrackingUri = None,
    experiment: o.SweepExperiment = None,
    name: o.SweepName = None,
    metric: o.Metric = None,
    sweeps_dir: o.SweepsDir = None,
    cache_dir: o.SweepCacheDir = None,
    resume: o.Resume = None,
    reseed: o.Reseed = None,
    paired: o.Paired = None,
    as_json: o.SweepJson = False,
) -> None:
    """Sweep cells with Optuna (TPE) on Ray Tune (ASHA), one MLflow run per trial; print the best per cell."""
    flags = dict(
        task=task, cells=cells, trials=trials, space=space, seed=seed, epochs=epochs, length=length,
        cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial, max_concurrent=max_concurrent,
        address=address, tracking_uri=tracking_uri, experiment=experiment, name=name, metric=metric,
        sweeps_dir=sweeps_dir, cache_dir=cache_dir, reseed=reseed, paired=paired,
    )  # fmt: skip
    from rnnbench.sweep import resolve_settings
    from rnnbench.util.timings import mark

    settings = resolve_settings(sweep_file, flags, option, resume)
    mark("settings checked")
    result = _run_sweep_live(settings, resume is not None, as_json)
    if settings.reseed:
        from rnnbench.sweep.reseed import reseed as reseed_best

        reseed_best(
            result.name, settings.reseed, result.tracking_uri, settings.experiment, settings.cache_dir
        )
    _print_sweep(result, as_json)


def _run_sweep_live(settings: Any, resume: bool, as_json: bool) -> Any:
    """Run the sweep under a live table (none with --json); an interruption exits with the resume
    command: 130 for Ctrl-C, 143 for SIGTERM, 1 when Ray gave up."""
    from rnnbench.sweep import SweepInterrupted, SweepStopped, run_sweep
    from rnnbench.sweep.cluster import stop_as_on_ctrl_c, terminated

    signal.signal(signal.SIGTERM, stop_as_on_ctrl_c)  # until Ray starts; then again over Ray's own
    live = None if as_json else Live(console=err_console, refresh_per_second=2, transient=False)
    interrupted = 143 if terminated.is_set() else 130
    try:
        listener = None if live is None else functools.partial(_show, live)
        return run_sweep(settings, resume=resume, listener=listener)
    except SweepInterrupted as exc:
        _stop_live(live)
        err_console.print(f"[yellow]{escape(str(exc))}[/]", soft_wrap=True)
        code = EXIT_FAILED if isinstance(exc, SweepStopped) else 143 if terminated.is_set() else interrupted
        raise typer.Exit(code) from None
    except KeyboardInterrupt:  # before the sweep's run existed: nothing was recorded, nothing to resume
        _stop_live(live)
        err_console.print("[yellow]sweep stopped while starting up; nothing was recorded[/]")
        raise typer.Exit(143 if terminated.is_set() else 130) from None
    finally:
        _stop_live(live)


def _show(live: Live, progress: Any) -> None:
    """Show the sweep's progress, starting the table (and its refresh thread) with the first: the driver forks
    its checks while it starts up, and forks only while it runs no other thread (``sweep.forked_check``)."""
    live.update(progress.render())
    if not live.is_started:
        live.start()


def _stop_live(live: Live | None) -> None:
    """Stop the live table once. Off a terminal its last frame ends without a newline: one is added, so
    that what follows (the resume command) starts its own line."""
    if live is None or not live.is_started:
        return
    live.stop()
    if not err_console.is_terminal:
        err_console.line()


def _print_sweep(result: Any, as_json: bool) -> None:
    """The sweep's best trial per cell and its counts, as a table or JSON."""
    if as_json:
        print_json({"name": result.name, "folder": str(result.folder), "tracking_uri": result.tracking_uri,
                     "experiment_id": result.experiment_id, "parent_run_id": result.parent_run_id,
                     "counts": result.counts, "best": result.best})  # fmt: skip
        return
    table = Table(title=f"sweep {result.name}: best trial per cell (chosen on validation, reported on test)")
    for column in ("cell", "test acc", "LRD", "horizon", "params", "configuration", "done/pruned/div/fail"):
        table.add_column(column, justify="left" if column in ("cell", "configuration") else "right")
    for cell, counts in result.counts.items():
        row = result.best.get(cell)
        tally = "/".join(str(counts[s]) for s in STATUSES)
        if row is None:
            table.add_row(cell, "-", "-", "-", "-", "no completed trial", tally)
            continue
        described = " ".join(
            f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {'none' if v is None else v}"
            for k, v in row["config"].items()
        )
        table.add_row(
            cell, f"{row['test_accuracy']:.4f}", fmt(row["lrd_score"], ".3f"), fmt(row["lrd_horizon"], ".0f"),
            f"{row['param_count']:.0f}", described, tally,
        )  # fmt: skip
    console.print(table)
    console.print(
        f"Results: MLflow {result.tracking_uri} (experiment id {result.experiment_id}, sweep run "
        f"{result.parent_run_id}); sweep state in {result.folder}",
        highlight=False, soft_wrap=True,
    )  # fmt: skip
