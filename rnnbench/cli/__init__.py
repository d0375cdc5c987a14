"""The ``rnnbench`` command line."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from rnnbench.analysis.stats import MARGIN
from rnnbench.cli import options as o
from rnnbench.errors import RnnbenchError
from rnnbench.sweep.settings import SweepSettings
from rnnbench.training.metrics import STATUSES

app = typer.Typer(
    name="rnnbench",
    help="Benchmark recurrent cells: sweep them with Optuna on Ray Tune, track them in MLflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


# Piped output (a log, a CI job) gets a wide table instead of rich's 80-column default.
def _width() -> int | None:
    """The terminal's width; off a terminal (a pipe, a file) COLUMNS when set, else 100."""
    if sys.stdout.isatty():
        return None
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else 100


console = Console(width=_width())
# MLflow draws a progress bar on stderr for every artifact it downloads (a plot's LRD curve, a model's
# files): noise under --json and in logs.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
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
        from rnnbench.version import __version__

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
    from rnnbench.core.plugin_manager import load_plugins

    load_plugins(plugin or [])


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


@app.command()
@reports_errors
def plugins(as_json: o.Json = False) -> None:
    """List every loaded plugin, its version and what it registered (and installed plugins disabled)."""
    from rnnbench.core.plugin_manager import broken_plugins, plugin_infos

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
def cells(as_json: o.Json = False) -> None:
    """List the registered recurrent cells with their description, reference and plugin."""
    from rnnbench.core.plugin_manager import registries

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
    as_json: o.Json = False,
) -> None:
    """Run the cell conformance kit on a cell; exit code 1 if any check fails."""
    from rnnbench.core.plugin_manager import get_cell
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
def tasks(as_json: o.Json = False) -> None:
    """List the registered tasks with their description, reference and defaults."""
    from rnnbench.core.plugin_manager import registries

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
        _print_json(summary)
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


@app.command("sweep")
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
    # The parameters named as SweepSettings fields are its flags: read before any other local exists.
    flags = {k: v for k, v in locals().items() if k in SweepSettings.__dataclass_fields__}
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
        if live is not None:
            live.start()
        listener = None if live is None else (lambda progress: live.update(progress.render()))
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
        _print_json({"name": result.name, "folder": str(result.folder), "tracking_uri": result.tracking_uri,
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
            cell, f"{row['test_accuracy']:.4f}", _fmt(row["lrd_score"], ".3f"), _fmt(row["lrd_horizon"], ".0f"),
            f"{row['param_count']:.0f}", described, tally,
        )  # fmt: skip
    console.print(table)
    console.print(
        f"Results: MLflow {result.tracking_uri} (experiment id {result.experiment_id}, sweep run "
        f"{result.parent_run_id}); sweep state in {result.folder}",
        highlight=False, soft_wrap=True,
    )  # fmt: skip


def _fmt(value: float | None, spec: str) -> str:
    """A number, or n/a (an LRD measure on fixed-length data)."""
    return "n/a" if value is None else format(value, spec)


FORMATS = ("table", "markdown", "html", "csv", "json")


@app.command("leaderboard")
@reports_errors
def leaderboard_command(
    task: o.BoardTask = None,
    sweep: o.BoardSweep = None,
    metric: o.BoardMetric = "lrd_score",
    output_format: o.Format = "table",
    tracking_uri: o.TrackingUri = None,
    experiment: o.Experiment = "rnnbench",
    publish: o.Publish = None,
    plots: o.Plots = True,
    note: o.Note = None,
    setup: o.BoardSetup = None,
    baseline: o.Baseline = None,
    min_trials: o.MinTrials = 20,
    margin: o.Margin = MARGIN,
    data: o.FromData = None,
    with_aggregate: o.AggregateFlag = False,
    force: o.Force = False,
    wide: o.Wide = False,
    recompute_importance: o.RecomputeImportance = False,
) -> None:
    """Rank the cells of each set-up on seeds, three-way verdicts against the leader; chance-level groups unranked."""
    from rnnbench.analysis.leaderboard import NothingToRank, build

    if output_format not in FORMATS:
        raise typer.BadParameter(
            f"{output_format!r}; valid formats: {', '.join(FORMATS)}", param_hint="--format"
        )
    if publish is not None:
        from rnnbench.report.leaderboard import check_target

        check_target(publish, force, "--publish")
    runs = _exported(data)
    try:
        board = build(tracking_uri, task=task, sweep=sweep, metric=metric, experiment=experiment, setup=setup,
                      baseline=baseline, min_trials=min_trials, margin=margin, runs=runs,
                      recompute_importance=recompute_importance)  # fmt: skip
    except NothingToRank as exc:
        err_console.print(f"Nothing to rank: {escape(str(exc))}", soft_wrap=True)
        if output_format == "json":
            _print_json({"metric": metric, "groups": {}, "message": str(exc)})
        return
    _render_board(board, output_format, wide, with_aggregate)
    if plots and sweep and runs is None:
        _log_plots(board, sweep)
    if publish is not None:
        given = {"--task": task, "--sweep": sweep, "--setup": setup, "--baseline": baseline, "--metric": metric,
                 "--margin": None if margin == MARGIN else str(margin),
                 "--tracking-uri": tracking_uri, "--experiment": None if experiment == "rnnbench" else experiment,
                 "--from": " --from ".join(str(d) for d in data) if data else None,
                 "--publish": str(publish)}  # fmt: skip
        _publish_board(board, publish, _page_header(board, given, note))


def _render_board(board: Any, output_format: str, wide: bool, with_aggregate: bool) -> None:
    """The leaderboard on standard output in the format asked for."""
    from rnnbench.report.leaderboard import markdown, rich_tables, to_csv, to_html, to_json

    if output_format == "table":
        console.width = _width() or console.width  # read when the command runs, not at import
        for table in rich_tables(board, wide):
            console.print(table)
        if with_aggregate:
            _print_aggregate(board)
    elif output_format in ("markdown", "html"):
        print({"markdown": markdown, "html": to_html}[output_format](board, with_aggregate=with_aggregate))
    else:
        text = {"json": to_json, "csv": to_csv}[output_format](board)
        print(text, end="" if output_format == "csv" else "\n")


def _publish_board(board: Any, folder: Path, header: list[str]) -> None:
    from rnnbench.report.leaderboard import publish, published_count

    written = publish(board, folder, header)
    err_console.print(f"Published {published_count(folder, written)} files into {folder}/", highlight=False)


def _exported(data: list[Path] | None) -> Any:
    """Exported runs to build from (``--from``), or None: read MLflow."""
    if not data:
        return None
    from rnnbench.tracking.records import read

    return read(data)


def _print_aggregate(board: Any) -> None:
    from rich.table import Table

    from rnnbench.analysis.leaderboard import aggregate
    from rnnbench.report.leaderboard import AGGREGATE_HEADER, IMPROVEMENT_HEADER, aggregate_lines

    caption, scores, improvement = aggregate_lines(aggregate(board))
    for header, rows in ((AGGREGATE_HEADER, scores), (IMPROVEMENT_HEADER, improvement)):
        if rows:
            table = Table(title="across set-ups")
            for name in header:
                table.add_column(name)
            for cells in rows:
                table.add_row(*map(escape, cells))
            console.print(table)
    console.print(escape(caption), highlight=False)


def _generated(command: str) -> str:
    """The generation line of a published page: the one line that differs between two builds."""
    import time

    from rnnbench.version import __version__

    return f"Generated {time.strftime('%Y-%m-%d %H:%M %Z')} by rnnbench {__version__} with `{command}`."


def _page_header(board: Any, given: dict[str, str | None], note: str | None) -> list[str]:
    """The published page's opening lines: the command, the machine, each sweep's settings, the note."""
    import shlex

    from rnnbench.analysis.leaderboard import sweep_settings
    from rnnbench.util.text import without_paths

    command = "rnnbench leaderboard " + " ".join(f"{k} {shlex.quote(v)}" for k, v in given.items() if v)
    header = [_generated(command), f"MLflow store {board.tracking_uri}."]
    keys = ("task", "cells", "trials", "space", "seed", "epochs", "length", "metric", "sampler", "task_options",
            "space_overrides", "train", "grace_period", "cpus_per_trial", "wall time")  # fmt: skip
    for found in sweep_settings(board):
        described = ", ".join(f"{k}={found[k]}" for k in keys if found.get(k) not in (None, "None", "{}"))
        machine = f" {found['machine']}." if found.get("machine") else ""
        header.append(f"Sweep `{found['sweep']}`: {described}.{machine}")
    if note:
        header.append(note)
    return [without_paths(line) for line in header]  # a published page names no path of this machine


def _log_plots(board: Any, sweep: str) -> None:
    """Attach the leaderboard (plots, ranking tables, the page) to the sweep's parent run."""
    from rnnbench.report.leaderboard import log_plots

    parent = board.runs.sweep_run(sweep)
    if parent is not None:
        log_plots(board, board.runs.client, parent.info.run_id)


@app.command("export")
@reports_errors
def export_command(
    out: o.ExportOut,
    sweeps: o.ExportSweeps = None,
    tracking_uri: o.TrackingUri = None,
    experiment: o.Experiment = "rnnbench",
) -> None:
    """Write sweeps' runs (parent, trials, reseeds: params, tags, metrics, curves, LRD buckets) as parquet."""
    from rnnbench.analysis.leaderboard import NothingToRank, open_runs
    from rnnbench.tracking.records import rows_of, write

    if sweeps:
        from rnnbench.tracking.run_search import check_sweep_name

        for name in sweeps:
            check_sweep_name(name, "--sweep")
    try:
        source = open_runs(tracking_uri, experiment)
    except NothingToRank as exc:
        raise RnnbenchError(f"nothing to export: {exc}") from None
    if sweeps:
        missing = [name for name in sweeps if source.sweep_run(name) is None]
        if missing:
            raise RnnbenchError(f"no sweep named {', '.join(map(repr, missing))} in {source.uri}")
    rows = rows_of(source, sweeps)
    write(rows, out)
    kinds = {k: sum(r["kind"] == k for r in rows) for k in ("sweep", "trial", "reseed")}
    err_console.print(
        f"Exported {len(rows)} runs ({kinds['sweep']} sweeps, {kinds['trial']} trials, {kinds['reseed']} "
        f"reseeds) to {out}", highlight=False,
    )  # fmt: skip


@app.command("odyssey-report")
@reports_errors
def odyssey_report_command(
    sweeps: o.StudySweeps,
    out: o.StudyOut = Path("leaderboard/odyssey"),
    tracking_uri: o.TrackingUri = None,
    experiment: o.Experiment = "rnnbench",
    note: o.Note = None,
    margin: o.Margin = MARGIN,
    data: o.FromData = None,
    force: o.Force = False,
) -> None:
    """Greff et al.'s analysis of LSTM-variant sweeps: best 10 % (Welch) and paired (Wilcoxon), three-way."""
    import shlex

    from rnnbench.analysis.study import StudyError, analyse, findings, gather
    from rnnbench.report.leaderboard import check_target, published_count
    from rnnbench.report.study import publish

    if not (0 < margin < 1):
        raise StudyError(f"--margin must lie between 0 and 1, got {margin}")
    check_target(out, force, "--out")
    runs = _exported(data) or _study_runs(tracking_uri, experiment)
    studies = []
    for sweep in sweeps:
        parent = runs.sweep_run(sweep)
        if parent is None:
            raise StudyError(f"no sweep named {sweep!r} in this MLflow store")
        studies.append(analyse(sweep, *gather(parent, runs.trial_runs(sweep=sweep)), margin=margin))
    command = "rnnbench odyssey-report " + " ".join(f"--sweep {shlex.quote(s)}" for s in sweeps)
    if margin != MARGIN:
        command += f" --margin {margin}"
    if data:
        command += "".join(f" --from {shlex.quote(str(d))}" for d in data)
    header = [_generated(command), f"MLflow store {runs.uri}.", *([note] if note else [])]
    written = publish(studies, findings(studies), out, header)
    err_console.print(f"Published {published_count(out, written)} files into {out}/", highlight=False)


def _study_runs(tracking_uri: str | None, experiment: str) -> Any:
    from rnnbench.analysis.study import StudyError
    from rnnbench.tracking.records import MlflowRuns
    from rnnbench.tracking.store import open_client, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    client = open_client(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise StudyError(f"no MLflow experiment {experiment!r} in {uri}")
    return MlflowRuns(client, found.experiment_id, uri)


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
    from rnnbench.sweep.reseed import reseed

    def done(entry: Any, k: int, run: Any) -> None:
        metrics = run.result.final_metrics()
        err_console.print(
            f"{entry.cell} seed {k}/{seeds}: test accuracy {metrics.get('test_accuracy', float('nan')):.4f}, "
            f"LRD score {_fmt(metrics.get('lrd_score'), '.3f')}",
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
    sweep: Annotated[
        str | None, typer.Option(help="The sweep whose runs to open (default: the latest sweep).")
    ] = None,
    metric: Annotated[str, typer.Option(help="Sort the runs by this metric, best first.")] = "lrd_score",
    experiment: o.Experiment = "rnnbench",
    workers: Annotated[int, typer.Option(min=1, help="Server worker processes (one answers soonest).")] = 1,
) -> None:
    """Start the MLflow UI on the store and print the URL of a sweep's runs table, sorted by the metric."""
    from rnnbench.serve.ui import open_views, serve

    urls = open_views(tracking_uri, experiment, sweep, metric, f"http://{host}:{port}")
    _warn_exposed(host, "read every run")
    serve(urls, host, port, workers, lambda line: err_console.print(line, highlight=False, soft_wrap=True))


@app.command("status")
@reports_errors
def status_command(
    name: Annotated[str, typer.Argument(help="The sweep (its folder name under --sweeps-dir).")],
    sweeps_dir: o.SweepsDir = None,
    as_json: o.Json = False,
    require_learned: Annotated[
        str | None,
        typer.Option(
            help="Exit 3 unless this cell's median completed trial left chance (a study's pilot).",
            metavar="CELL",
        ),
    ] = None,
) -> None:
    """What a sweep has finished (trials per cell, reseeds) and what is left, with an estimate of its time."""
    from rnnbench.sweep.settings import DEFAULT_SWEEPS_DIR
    from rnnbench.sweep.status import sweep_status

    found = sweep_status(name, sweeps_dir or DEFAULT_SWEEPS_DIR)
    if as_json:
        _print_json(found.as_dict())
    else:
        for line in found.lines():
            console.print(line, highlight=False, soft_wrap=True)
    if require_learned is not None:
        cell = found.learning.get(require_learned)
        if cell is None or not cell.learned:
            why = cell.line() if cell else "it has no completed trial"
            err_console.print(
                f"sweep {name}: {require_learned} does not learn at this budget: {why}", soft_wrap=True
            )
            raise typer.Exit(3)


@app.command("dashboard")
@reports_errors
def dashboard_command(
    name: Annotated[str, typer.Argument(help="The sweep (its folder name under --sweeps-dir).")],
    sweeps_dir: o.SweepsDir = None,
    port: Annotated[int, typer.Option(help="Port of the dashboard.")] = 8080,
    host: Annotated[
        str, typer.Option(help="Interface to bind; 127.0.0.1 keeps it on this machine.")
    ] = "127.0.0.1",
    allow_writes: Annotated[
        bool, typer.Option("--allow-writes", help="Let the dashboard change the study (notes, deletions).")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Print the server's access log.")] = False,
) -> None:
    """optuna-dashboard on a sweep's Optuna journal (one study per cell), read-only, live while the sweep runs."""
    from rnnbench.serve.dashboard import serve_dashboard
    from rnnbench.sweep.settings import DEFAULT_SWEEPS_DIR

    _warn_exposed(host, "read the sweep's trials" + (" and change them" if allow_writes else ""))
    serve_dashboard(name, sweeps_dir or DEFAULT_SWEEPS_DIR, host, port,
                    lambda line: err_console.print(line, highlight=False, soft_wrap=True),
                    allow_writes=allow_writes, verbose=verbose)  # fmt: skip


def _warn_exposed(host: str, what: str) -> None:
    """A server bound beyond loopback has no authentication: say so."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        err_console.print(
            f"[yellow]Warning:[/] binding {escape(host)} lets anyone who can reach this machine {what}."
        )


def main() -> None:
    from rnnbench.util.timings import mark

    mark("command imported")
    try:
        app()
    except SystemExit as exc:
        mark("command done")
        _exit_now(exc.code)
    mark("command done")
    _exit_now(0)


def _exit_now(code: int | str | None) -> None:
    """Exit as Python would, less the interpreter's teardown: after a sweep, finalising torch, Ray's core
    worker and MLflow's modules took 2.6 s, with every file already written and closed. Threads are
    joined and atexit handlers run first, as in a normal exit."""
    import atexit
    import threading

    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    shutdown = getattr(threading, "_shutdown", None)  # what a normal exit calls: joins non-daemon threads
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe (`| head`): nothing left to tell it
            stream.flush()
    os._exit(code or 0)
