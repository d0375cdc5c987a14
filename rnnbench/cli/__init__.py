"""The ``rnnbench`` command line: the app, its global options, and one module per command, registered
from one table (``COMMANDS``)."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from rnnbench.cli.output import console, reports_errors

app = typer.Typer(
    name="rnnbench",
    help="Benchmark recurrent cells: sweep them with Optuna on Ray Tune, track them in MLflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

# Every command: its name on the command line, and the module of rnnbench.cli and the function that run it.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("plugins", "plugins", "plugins"),
    ("cells", "cells", "cells"),
    ("check-cell", "check_cell", "check_cell_command"),
    ("tasks", "tasks", "tasks"),
    ("train", "train", "train_command"),
    ("sweep", "sweep", "sweep_command"),
    ("leaderboard", "leaderboard", "leaderboard_command"),
    ("export", "export", "export_command"),
    ("odyssey-report", "odyssey_report", "odyssey_report_command"),
    ("reseed", "reseed", "reseed_command"),
    ("ui", "ui", "ui_command"),
    ("status", "status", "status_command"),
    ("dashboard", "dashboard", "dashboard_command"),
)


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


for _name, _module, _function in COMMANDS:
    app.command(_name)(getattr(importlib.import_module(f"rnnbench.cli.{_module}"), _function))


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
