"""The ``rnnbench`` command line."""

from __future__ import annotations

import functools
import json
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
console = Console()
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
            err_console.print(f"[bold red]Error:[/] {exc}", highlight=False, soft_wrap=True)
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
    """List every loaded plugin, its version and what it registered."""
    from rnnbench.plugins import plugin_infos

    infos = plugin_infos()
    if as_json:
        _print_json([info.as_dict() for info in infos])
        return
    table = Table(title="rnnbench plugins")
    for column in ("plugin", "version", "source", "registered"):
        table.add_column(column, overflow="fold")
    for info in infos:
        registered = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in info.registered.items())
        location = info.source if info.location == info.name else f"{info.source}: {info.location}"
        table.add_row(*map(escape, (info.name, info.version or "-", location, registered or "(nothing)")))
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


def main() -> None:
    app()
