"""`rnnbench status`: what a sweep has finished and what is left."""

from __future__ import annotations

import typer

from rnnbench.cli import options as o
from rnnbench.cli.output import (
    console,
    err_console,
    print_json,
    reports_errors,
)


@reports_errors
def status_command(
    name: o.SweepFolderName,
    sweeps_dir: o.SweepsDir = None,
    as_json: o.Json = False,
    require_learned: o.RequireLearned = None,
) -> None:
    """What a sweep has finished (trials per cell, reseeds) and what is left, with an estimate of its time."""
    from rnnbench.sweep.settings import DEFAULT_SWEEPS_DIR
    from rnnbench.sweep.status import sweep_status

    found = sweep_status(name, sweeps_dir or DEFAULT_SWEEPS_DIR)
    if as_json:
        print_json(found.as_dict())
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
