"""`rnnbench cells`: the registered recurrent cells."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from rnnbench.cli import options as o
from rnnbench.cli.output import (
    console,
    print_json,
    reports_errors,
)


@reports_errors
def cells(as_json: o.Json = False) -> None:
    """List the registered recurrent cells with their description, reference and plugin."""
    from rnnbench.core.plugin_manager import registries

    specs = list(registries().cells)
    if as_json:
        print_json(
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
