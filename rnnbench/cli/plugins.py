"""`rnnbench plugins`: every loaded plugin, its version and what it registered."""

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
def plugins(as_json: o.Json = False) -> None:
    """List every loaded plugin, its version and what it registered (and installed plugins disabled)."""
    from rnnbench.core.plugin_manager import broken_plugins, plugin_infos

    infos = plugin_infos()
    broken = broken_plugins()
    if as_json:
        disabled = [{"name": name, "source": "entry point", "disabled": why} for name, why in broken.items()]
        print_json([info.as_dict() for info in infos] + disabled)
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
