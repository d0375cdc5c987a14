"""`rnnbench tasks`: the registered tasks with their defaults."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from rnnbench.cli import options as o
from rnnbench.cli.output import (
    console,
    print_json,
    reports_errors,
)
from rnnbench.errors import RnnbenchError


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


@reports_errors
def tasks(as_json: o.Json = False) -> None:
    """List the registered tasks with their description, reference and defaults."""
    from rnnbench.core.plugin_manager import registries

    rows = [_task_row(spec) for spec in registries().tasks]
    if as_json:
        print_json(rows)
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
