"""`rnnbench ui`: the MLflow UI on a sweep's ranked runs."""

from __future__ import annotations

from rnnbench.cli import options as o
from rnnbench.cli.output import (
    err_console,
    reports_errors,
    warn_exposed,
)


@reports_errors
def ui_command(
    port: o.UiPort = 5000,
    host: o.Host = "127.0.0.1",
    tracking_uri: o.TrackingUri = None,
    sweep: o.UiSweep = None,
    metric: o.UiMetric = "lrd_score",
    experiment: o.Experiment = "rnnbench",
    workers: o.UiWorkers = 1,
) -> None:
    """Start the MLflow UI on the store and print the URL of a sweep's runs table, sorted by the metric."""
    from rnnbench.serve.ui import open_views, serve

    urls = open_views(tracking_uri, experiment, sweep, metric, f"http://{host}:{port}")
    warn_exposed(host, "read every run")
    serve(urls, host, port, workers, lambda line: err_console.print(line, highlight=False, soft_wrap=True))
