"""The ``rnnbench`` command line."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rnnbench.errors import RnnbenchError

app = typer.Typer(
    name="rnnbench",
    help="Benchmark recurrent cells: sweep them with Optuna on Ray Tune, track them in MLflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
# Piped output (a log, a CI job) gets a wide table instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

# Exit codes: 1 for a failed check or run, 2 for bad input (as click does for usage errors).
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def reports_errors(command: F) -> F:
    """Turn rnnbench's domain errors into a one-line message and exit code 2, without a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except RnnbenchError as exc:
            err_console.print(f"[bold red]Error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        from rnnbench import __version__

        console.print(f"rnnbench {__version__}")
        raise typer.Exit()


@app.callback()
@reports_errors
def main_options(
    plugin: Annotated[
        list[Path] | None,
        typer.Option(
            "--plugin",
            help="Load a one-file plugin (a .py file with @rnnbench.hookimpl functions). Repeatable; "
            "added to RNNBENCH_PLUGINS so every worker process loads it too.",
            metavar="PATH",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Benchmark recurrent cells: sweep them with Optuna on Ray Tune, track them in MLflow."""
    from rnnbench.plugins import load_plugins

    load_plugins(plugin or [])


JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


@app.command()
@reports_errors
def plugins(as_json: JsonOption = False) -> None:
    """List every loaded plugin, its version and what it registered (and installed plugins disabled)."""
    from rnnbench.plugins import broken_plugins, plugin_infos

    infos = plugin_infos()
    broken = broken_plugins()
    if as_json:
        disabled = [{"name": name, "source": "entry point", "disabled": why} for name, why in broken.items()]
        _print_json([info.as_dict() for info in infos] + disabled)
        return
    table = Table(title="rnnbench plugins")
    for column in ("plugin", "version", "source", "registered"):
        table.add_column(column, overflow="fold")
    for info in infos:
        registered = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in info.registered.items())
        location = info.source if info.location == info.name else f"{info.source}: {info.location}"
        table.add_row(*map(escape, (info.name, info.version or "-", location, registered or "(nothing)")))
    for name, why in broken.items():
        table.add_row(escape(name), "-", "entry point", f"[red]DISABLED[/red]: {escape(why)}")
    console.print(table)


@app.command()
@reports_errors
def cells(as_json: JsonOption = False) -> None:
    """List the registered recurrent cells with their description, reference and plugin."""
    from rnnbench.plugins import registries

    specs = list(registries().cells)
    if as_json:
        _print_json(
            [
                {"name": s.name, "description": s.description, "reference": s.reference, "plugin": s.plugin}
                for s in specs
            ]
        )
        return
    table = Table(title="rnnbench cells")
    for column in ("cell", "description", "reference", "plugin"):
        table.add_column(column, overflow="fold")
    for s in specs:
        table.add_row(*map(escape, (s.name, s.description, s.reference, s.plugin)))
    console.print(table)


@app.command("check-cell")
@reports_errors
def check_cell_command(
    name: Annotated[str, typer.Argument(help="The registered cell name, as `rnnbench cells` lists it.")],
    input_size: Annotated[int, typer.Option(min=1, help="Input features of the test cell.")] = 3,
    hidden_size: Annotated[int, typer.Option(min=1, help="Hidden units of the test cell.")] = 5,
    num_layers: Annotated[int, typer.Option(min=1, help="Stacked layers of the test cell.")] = 2,
    dropout: Annotated[float, typer.Option(min=0.0, max=0.99, help="Dropout between layers.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed for the builds and inputs.")] = 0,
    device: Annotated[
        str | None,
        typer.Option(help="Accelerator for the device-move check (default: cuda or mps when present)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run the cell conformance kit on a cell; exit code 1 if any check fails."""
    from rnnbench import get_cell
    from rnnbench.testing import check_cell

    report = check_cell(
        get_cell(name),
        input_size=input_size,
        hidden_size=hidden_size,
        num_layers=num_layers,
        dropout=dropout,
        seed=seed,
        device=device,
    )
    if as_json:
        _print_json(report.as_dict())
    else:
        styles = {"pass": "[green]pass[/]", "fail": "[bold red]FAIL[/]", "skip": "[yellow]skip[/]"}
        table = Table("check", "result", "detail", title=f"conformance of cell {name!r}")
        for r in report.results:
            table.add_row(r.check, styles[r.status], escape(r.detail))
        console.print(table)
        verdict = (
            "[green]passed[/]" if report.passed else f"[bold red]failed {len(report.failures)} check(s)[/]"
        )
        console.print(f"cell {name!r} {verdict}")
    if not report.passed:
        raise typer.Exit(EXIT_FAILED)


def _task_row(spec: Any) -> dict[str, Any]:
    task = spec.build()
    try:
        chance: float | None = task.chance
    except RnnbenchError:  # known only once the data is loaded (the generic hf task)
        chance = None
    return {
        "name": spec.name,
        "description": spec.description,
        "reference": spec.reference,
        "plugin": spec.plugin,
        "output": task.output,
        "head": task.head,
        "encoding": task.encoding,
        "default_length": task.length or None,
        "default_sizes": task.sizes.__dict__,
        "chance": chance,
        "data_version": task.data_version,
    }


@app.command()
@reports_errors
def tasks(as_json: JsonOption = False) -> None:
    """List the registered tasks with their description, reference and defaults."""
    from rnnbench.plugins import registries

    rows = [_task_row(spec) for spec in registries().tasks]
    if as_json:
        _print_json(rows)
        return
    table = Table(title="rnnbench tasks", show_lines=True)
    table.add_column("task", no_wrap=True)
    table.add_column("description, reference and defaults", overflow="fold")
    for row in rows:
        sizes = "/".join(str(v or "all") for v in row["default_sizes"].values())
        kind = f"{row['output']} at {'every step' if row['head'] == 'sequence' else 'the last step'}"
        chance = "from data" if row["chance"] is None else f"{row['chance']:.4g}"
        length = row["default_length"] or "from data"
        details = (
            f"{escape(row['description'])}\n[dim]{escape(row['reference'])}[/]\n"
            f"{kind}, {row['encoding']} inputs; length {length}; train/validation/test {sizes}; "
            f"chance {chance}; data {row['data_version']}"
        )
        table.add_row(escape(row["name"]), details)
    console.print(table)


@app.command("train")
@reports_errors
def train_command(
    cell: Annotated[str, typer.Option(help="Cell to train, as `rnnbench cells` lists it.")],
    task: Annotated[str, typer.Option(help="Task to train on, as `rnnbench tasks` lists it.")],
    depth: Annotated[int, typer.Option(help="Stacked recurrent layers.")] = 1,
    width: Annotated[int, typer.Option(help="Hidden units per layer.")] = 64,
    clip: Annotated[
        float, typer.Option(help="Gradient-norm clipping threshold; 0 turns clipping off.")
    ] = 1.0,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 3e-3,
    epochs: Annotated[int, typer.Option(help="Maximum epochs (passes over the training split).")] = 30,
    batch_size: Annotated[int, typer.Option(help="Examples per training step.")] = 64,
    seed: Annotated[int, typer.Option(help="Seed of the initialisation and the batch order.")] = 0,
    data_seed: Annotated[
        int, typer.Option(help="Seed of the task's data (keep it fixed to compare runs).")
    ] = 0,
    length: Annotated[
        int | None, typer.Option(help="Sequence length T of the task (the task's default if not given).")
    ] = None,
    train_size: Annotated[
        int | None, typer.Option(help="Training examples (task default if not given).")
    ] = None,
    validation_size: Annotated[
        int | None, typer.Option(help="Validation examples (task default if not given).")
    ] = None,
    test_size: Annotated[int | None, typer.Option(help="Test examples (task default if not given).")] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            "-o",
            help="A task option KEY=VALUE, repeatable (for example -o path=data.csv).",
            metavar="KEY=VALUE",
        ),
    ] = None,
    optimizer: Annotated[str, typer.Option(help="adam, sgd (with momentum) or rmsprop.")] = "adam",
    momentum: Annotated[float, typer.Option(help="Momentum for sgd and rmsprop.")] = 0.9,
    weight_decay: Annotated[float, typer.Option(help="L2 weight decay.")] = 0.0,
    dropout: Annotated[float, typer.Option(help="Dropout between stacked layers.")] = 0.0,
    input_noise: Annotated[
        float, typer.Option(help="Std of Gaussian noise added to real-valued inputs in training.")
    ] = 0.0,
    patience: Annotated[
        int, typer.Option(help="Stop after this many epochs without a better validation loss; 0: never.")
    ] = 10,
    threads: Annotated[int | None, typer.Option(help="torch threads (default: torch's choice).")] = None,
    device: Annotated[str, typer.Option(help="auto (CUDA when available), cpu, cuda or cuda:N.")] = "auto",
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here)."
        ),
    ] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment name.")] = "rnnbench",
    cache_dir: Annotated[
        Path | None, typer.Option(help="Task data cache (default: $RNNBENCH_CACHE_DIR or ~/.cache/rnnbench).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Train one configuration, evaluate it on test, and record it as one MLflow run."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from rnnbench.run import TrainingFailed, parse_option, run_tracked
    from rnnbench.training import TrainConfig

    task_options = dict(parse_option(o) for o in option or [])
    for key, value in (
        ("length", length),
        ("train_size", train_size),
        ("validation_size", validation_size),
        ("test_size", test_size),
    ):
        if value is not None:
            task_options[key] = value
    config = TrainConfig(
        cell=cell, task=task, depth=depth, width=width, clip=clip or None, lr=lr, epochs=epochs,
        batch_size=batch_size, seed=seed, data_seed=data_seed, optimizer=optimizer, momentum=momentum,
        weight_decay=weight_decay, dropout=dropout, input_noise=input_noise, patience=patience,
        threads=threads, device=device, task_options=task_options,
        cache_dir=str(cache_dir) if cache_dir else None,
    )  # fmt: skip
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
        console=err_console, disable=as_json, transient=False,
    )  # fmt: skip
    with progress:
        bar = progress.add_task(f"{cell} on {task}", total=epochs, status="loading data")

        def on_step(step: int, loss: float) -> None:
            if step % 10 == 0:
                progress.update(bar, status=f"step {step} loss {loss:.4f}")

        def on_epoch(report: Any) -> None:
            progress.update(
                bar, completed=report.epoch,
                status=f"epoch {report.epoch}: val loss {report.val_loss:.4f}, val acc {report.val_accuracy:.3f}",
            )  # fmt: skip

        try:
            run = run_tracked(config, tracking_uri, experiment, on_epoch=on_epoch, on_step=on_step)
        except TrainingFailed as exc:
            err_console.print(f"[bold red]Error:[/] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(EXIT_FAILED) from None
    result = run.result
    summary = {
        "run_id": run.run_id,
        "tracking_uri": run.tracking_uri,
        "experiment_id": run.experiment_id,
        "status": result.status,
        **result.final_metrics(),
    }
    if as_json:
        _print_json(summary)
        return
    table = Table(title=f"{cell} on {task}: {result.status}", show_header=False)
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


@app.command("sweep")
@reports_errors
def sweep_command(
    sweep_file: Annotated[
        Path | None, typer.Argument(help="A TOML sweep file with the same keys as the flags (flags win).")
    ] = None,
    task: Annotated[str | None, typer.Option(help="Task to sweep on (default adding).")] = None,
    cells: Annotated[
        str | None,
        typer.Option(help="Cells to compare: comma-separated names or 'all' (the four built-ins)."),
    ] = None,
    trials: Annotated[int | None, typer.Option(help="Trials per cell (default 8).")] = None,
    space: Annotated[
        str | None, typer.Option(help="Search space (default 'default'; 'greff' for Greff et al.).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the samplers and of every trial's initialisation.")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Maximum epochs per trial (default 10).")] = None,
    length: Annotated[int | None, typer.Option(help="Sequence length T of the task.")] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="A task option KEY=VALUE, repeatable.", metavar="KEY=VALUE"),
    ] = None,
    cpus_per_trial: Annotated[
        float | None, typer.Option(help="CPUs per trial (default 1); also its torch threads.")
    ] = None,
    gpus_per_trial: Annotated[
        float | None,
        typer.Option(
            help="GPUs per trial; fractions pack trials on one GPU (default 1 when the cluster has GPUs)."
        ),
    ] = None,
    max_concurrent: Annotated[
        int | None, typer.Option(help="Most trials at once (default: what resources allow).")
    ] = None,
    address: Annotated[
        str | None, typer.Option(help="Join this Ray cluster (HOST:PORT) instead of starting Ray here.")
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)."),
    ] = None,
    experiment: Annotated[str | None, typer.Option(help="MLflow experiment name (default rnnbench).")] = None,
    name: Annotated[
        str | None, typer.Option(help="Sweep name (default TASK-DATE-TIME); names its folder and runs.")
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(help="Validation metric for TPE and ASHA: val_loss (default) or val_accuracy."),
    ] = None,
    sweeps_dir: Annotated[
        str | None,
        typer.Option(help="Folder of sweep state (settings, Optuna journal); default ./rnnbench-sweeps."),
    ] = None,
    cache_dir: Annotated[str | None, typer.Option(help="Task data cache shared by the trials.")] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            help="Continue the interrupted sweep NAME to its requested trial counts.", metavar="NAME"
        ),
    ] = None,
    reseed: Annotated[
        int,
        typer.Option(
            min=0, help="After the search, re-train each cell's best configuration with K fresh seeds."
        ),
    ] = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help="No live display; print the result as JSON.")
    ] = False,
) -> None:
    """Sweep cells with Optuna (TPE) on Ray Tune (ASHA), one MLflow run per trial; print the best per cell."""
    from rich.live import Live

    from rnnbench.run import parse_option
    from rnnbench.sweep import SweepInterrupted, load_state, run_sweep
    from rnnbench.sweep_config import SweepSettings, check_values, load_sweep_file, validate

    flags = {
        "task": task, "cells": cells, "trials": trials, "space": space, "seed": seed, "epochs": epochs,
        "length": length, "cpus_per_trial": cpus_per_trial, "gpus_per_trial": gpus_per_trial,
        "max_concurrent": max_concurrent, "address": address, "tracking_uri": tracking_uri,
        "experiment": experiment, "name": name, "metric": metric, "sweeps_dir": sweeps_dir, "cache_dir": cache_dir,
    }  # fmt: skip
    given = check_values({k: v for k, v in flags.items() if v is not None}, "command line")
    if resume is not None:
        state = load_state(resume, sweeps_dir or SweepSettings.sweeps_dir)
        values = dict(state["settings"])
        values.update({k: v for k, v in given.items() if k in ("address", "tracking_uri")})
        settings = SweepSettings(**values)
    else:
        values = load_sweep_file(sweep_file) if sweep_file is not None else {}
        where = f"sweep file {sweep_file}" if sweep_file else "command line"
        values.update(given)
        if option:
            values["task_options"] = {
                **values.get("task_options", {}),
                **dict(parse_option(o) for o in option),
            }
        settings = SweepSettings(**values)
        validate(settings, where)

    if as_json:
        listener = None
        live = None
    else:
        live = Live(console=err_console, refresh_per_second=2, transient=False)
        listener = lambda progress: live.update(progress.render())  # noqa: E731
    try:
        if live is not None:
            live.start()
        result = run_sweep(settings, resume=resume is not None, listener=listener)
    except SweepInterrupted as exc:
        if live is not None:
            live.stop()
        err_console.print(f"[yellow]{escape(str(exc))}[/]", soft_wrap=True)
        raise typer.Exit(130) from None
    finally:
        if live is not None:
            live.stop()
    if reseed:
        from rnnbench.reseed import reseed as reseed_best

        reseed_best(result.name, reseed, result.tracking_uri, settings.experiment, settings.cache_dir)
    summary = {
        "name": result.name,
        "folder": str(result.folder),
        "tracking_uri": result.tracking_uri,
        "experiment_id": result.experiment_id,
        "parent_run_id": result.parent_run_id,
        "counts": result.counts,
        "best": result.best,
    }
    if as_json:
        _print_json(summary)
        return
    table = Table(title=f"sweep {result.name}: best trial per cell (chosen on validation, reported on test)")
    for column in ("cell", "test acc", "LRD", "horizon", "params", "configuration", "done/pruned/div/fail"):
        table.add_column(column, justify="left" if column in ("cell", "configuration") else "right")
    for cell, counts in result.counts.items():
        row = result.best.get(cell)
        tally = "/".join(str(counts[s]) for s in ("completed", "pruned", "diverged", "failed"))
        if row is None:
            table.add_row(cell, "-", "-", "-", "-", "no completed trial", tally)
            continue
        config = row["config"]
        described = " ".join(
            f"{k} {float(v):.2g}" if k in ("lr", "clip") and v not in (None, "none") else f"{k} {v}"
            for k, v in config.items()
        )
        table.add_row(
            cell, f"{row['test_accuracy']:.4f}", f"{row['lrd_score']:.3f}", f"{row['lrd_horizon']:.0f}",
            f"{row['param_count']:.0f}", described, tally,
        )  # fmt: skip
    console.print(table)
    console.print(
        f"Results: MLflow {result.tracking_uri} (experiment id {result.experiment_id}, sweep run "
        f"{result.parent_run_id}); sweep state in {result.folder}",
        highlight=False, soft_wrap=True,
    )  # fmt: skip


FORMATS = ("table", "markdown", "html", "csv", "json")


@app.command("leaderboard")
@reports_errors
def leaderboard_command(
    task: Annotated[
        str | None, typer.Option(help="Only this task (default: every task with trials).")
    ] = None,
    sweep: Annotated[
        str | None, typer.Option(help="Only the trials of this sweep (default: all sweeps).")
    ] = None,
    metric: Annotated[str, typer.Option(help="Rank by lrd_score or test_accuracy.")] = "lrd_score",
    output_format: Annotated[
        str, typer.Option("--format", help="table, markdown, html, csv or json.")
    ] = "table",
    tracking_uri: Annotated[
        str | None,
        typer.Option(help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)."),
    ] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment name.")] = "rnnbench",
    publish: Annotated[
        Path | None,
        typer.Option(
            help="Also write README.md, a self-contained index.html and the plots into this folder."
        ),
    ] = None,
    plots: Annotated[
        bool, typer.Option("--plots/--no-plots", help="Log the plots to each sweep's MLflow parent run.")
    ] = True,
    note: Annotated[
        str | None, typer.Option(help="A line for the published page (for example how to reproduce it).")
    ] = None,
) -> None:
    """Rank the cells per task from MLflow: best trial chosen on validation, reported on test."""
    from rnnbench.leaderboard import NothingToRank, build
    from rnnbench.leaderboard_report import (
        markdown,
        rich_tables,
        to_csv,
        to_html,
        to_json,
    )
    from rnnbench.leaderboard_report import (
        publish as publish_page,
    )

    if output_format not in FORMATS:
        raise typer.BadParameter(
            f"{output_format!r}; valid formats: {', '.join(FORMATS)}", param_hint="--format"
        )
    try:
        board = build(tracking_uri, task=task, sweep=sweep, metric=metric, experiment=experiment)
    except NothingToRank as exc:
        err_console.print(f"Nothing to rank: {escape(str(exc))}", soft_wrap=True)
        if output_format == "json":
            _print_json({"metric": metric, "tasks": {}, "message": str(exc)})
        return
    if output_format == "json":
        print(to_json(board))
    elif output_format == "csv":
        print(to_csv(board), end="")
    elif output_format == "markdown":
        print(markdown(board))
    elif output_format == "html":
        print(to_html(board))
    else:
        for table in rich_tables(board):
            console.print(table)
    if plots and sweep:
        _log_plots(board, sweep, experiment)
    if publish is not None:
        import platform
        import shlex
        import time

        from rnnbench import __version__

        given = {"--task": task, "--sweep": sweep, "--metric": metric, "--tracking-uri": tracking_uri,
                 "--experiment": None if experiment == "rnnbench" else experiment, "--publish": str(publish)}  # fmt: skip
        command = "rnnbench leaderboard " + " ".join(f"{k} {shlex.quote(v)}" for k, v in given.items() if v)
        header = [
            f"Generated {time.strftime('%Y-%m-%d %H:%M %Z')} by rnnbench {__version__} with `{command}`",
            f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}; MLflow store {board.tracking_uri}.",
        ]
        from rnnbench.leaderboard import sweep_settings

        keys = ("task", "cells", "trials", "space", "seed", "epochs", "length", "metric", "task_options",
                "space_overrides", "train", "grace_period", "cpus_per_trial")  # fmt: skip
        for found in sweep_settings(board, experiment):
            described = ", ".join(f"{k}={found[k]}" for k in keys if found.get(k) not in (None, "None", "{}"))
            header.append(f"Sweep `{found['sweep']}`: {described}.")
        if note:
            header.append(note)
        written = publish_page(board, publish, header)
        err_console.print(f"Published {len(written)} files into {publish}/", highlight=False)


def _log_plots(board: Any, sweep: str, experiment: str) -> None:
    """Attach the leaderboard plots to the sweep's parent run (artifact folder leaderboard/)."""
    import tempfile

    from mlflow.tracking import MlflowClient

    from rnnbench.leaderboard_report import plots

    client = MlflowClient(board.tracking_uri)
    found = client.get_experiment_by_name(experiment)
    parents = client.search_runs([found.experiment_id], f"tags.kind = 'sweep' and tags.sweep = '{sweep}'")
    if not parents:
        return
    with tempfile.TemporaryDirectory() as folder:
        for paths in plots(board, Path(folder)).values():
            for path in paths:
                client.log_artifact(parents[0].info.run_id, str(path), artifact_path="leaderboard")


@app.command("reseed")
@reports_errors
def reseed_command(
    sweep: Annotated[str, typer.Option(help="The sweep whose best configurations to re-train.")],
    seeds: Annotated[int, typer.Option(min=1, help="Fresh seeds per cell.")] = 3,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI of the sweep.")] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment name.")] = "rnnbench",
    cache_dir: Annotated[str | None, typer.Option(help="Task data cache.")] = None,
) -> None:
    """Re-train each cell's best configuration of a sweep with K fresh seeds (the leaderboard shows mean ± std)."""
    from rnnbench.reseed import reseed

    def done(entry: Any, k: int, run: Any) -> None:
        metrics = run.result.final_metrics()
        err_console.print(
            f"{entry.cell} seed {k}/{seeds}: test accuracy {metrics.get('test_accuracy', float('nan')):.4f}, "
            f"LRD score {metrics.get('lrd_score', float('nan')):.3f}",
            highlight=False,
        )

    reseed(sweep, seeds, tracking_uri, experiment, cache_dir, on_run=done)


@app.command("ui")
@reports_errors
def ui_command(
    port: Annotated[int, typer.Option(help="Port of the MLflow UI.")] = 5000,
    host: Annotated[
        str,
        typer.Option(
            help="Interface to bind; 127.0.0.1 keeps it on this machine (anything else exposes it)."
        ),
    ] = "127.0.0.1",
    tracking_uri: Annotated[
        str | None,
        typer.Option(help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)."),
    ] = None,
) -> None:
    """Open the MLflow UI on the same store: the interactive leaderboard (sort trials by lrd_score)."""
    import shutil

    from rnnbench.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    if host not in ("127.0.0.1", "localhost", "::1"):
        err_console.print(
            f"[yellow]Warning:[/] binding {escape(host)} lets anyone who can reach this machine read every run.",
        )
    mlflow = (
        shutil.which("mlflow", path=str(Path(sys.executable).parent)) or shutil.which("mlflow") or "mlflow"
    )
    args = [mlflow, "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    err_console.print(f"MLflow UI on http://{host}:{port} for {uri} (Ctrl-C to stop)", highlight=False)
    os.execv(mlflow, args)


def main() -> None:
    app()
