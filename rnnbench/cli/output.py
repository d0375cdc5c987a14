"""What every command shares: the consoles, the exit codes, domain errors as one line, JSON output."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from rnnbench.errors import RnnbenchError


# Piped output (a log, a CI job) gets a wide table instead of rich's 80-column default.
def terminal_width() -> int | None:
    """The terminal's width; off a terminal (a pipe, a file) COLUMNS when set, else 100."""
    if sys.stdout.isatty():
        return None
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else 100


console = Console(width=terminal_width())
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


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def fmt(value: float | None, spec: str) -> str:
    """A number, or n/a (an LRD measure on fixed-length data)."""
    return "n/a" if value is None else format(value, spec)


def exported(data: list[Path] | None) -> Any:
    """Exported runs to build from (``--from``), or None: read MLflow."""
    if not data:
        return None
    from rnnbench.tracking.records import read

    return read(data)


def warn_exposed(host: str, what: str) -> None:
    """A server bound beyond loopback has no authentication: say so."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        err_console.print(
            f"[yellow]Warning:[/] binding {escape(host)} lets anyone who can reach this machine {what}."
        )
