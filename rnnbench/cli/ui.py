"""`rnnbench ui`: the MLflow UI on a sweep's ranked runs."""

from __future__ import annotations

from typing import Annotated

import typer

from rnnbench.cli import options as o
from rnnbench.cli.output import (
    err_console,
    reports_errors,
    warn_exposed,
)


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
    warn_exposed(host, "read every run")
    serve(urls, host, port, workers, lambda line: err_console.print(line, highlight=False, soft_wrap=True))
