"""`rnnbench check-cell`: the cell conformance kit on one cell."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from rnnbench.cli import options as o
from rnnbench.cli.output import (
    EXIT_FAILED,
    console,
    print_json,
    reports_errors,
)


@reports_errors
def check_cell_command(
    name: o.CellName,
    input_size: o.KitInputSize = 3,
    hidden_size: o.KitHiddenSize = 5,
    num_layers: o.KitLayers = 2,
    dropout: o.KitDropout = 0.0,
    seed: o.KitSeed = 0,
    device: o.KitDevice = None,
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
        print_json(report.as_dict())
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
