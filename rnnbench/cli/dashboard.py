"""`rnnbench dashboard`: optuna-dashboard on a sweep's study."""

from __future__ import annotations

from rnnbench.cli import options as o
from rnnbench.cli.output import (
    err_console,
    reports_errors,
    warn_exposed,
)


@reports_errors
def dashboard_command(
    name: o.SweepFolderName,
    sweeps_dir: o.SweepsDir = None,
    port: o.DashboardPort = 8080,
    host: o.Host = "127.0.0.1",
    allow_writes: o.AllowWrites = False,
    verbose: o.Verbose = False,
) -> None:
    """optuna-dashboard on a sweep's Optuna journal (one study per cell), read-only, live while the sweep runs."""
    from rnnbench.serve.dashboard import serve_dashboard
    from rnnbench.sweep.settings import DEFAULT_SWEEPS_DIR

    warn_exposed(host, "read the sweep's trials" + (" and change them" if allow_writes else ""))
    serve_dashboard(name, sweeps_dir or DEFAULT_SWEEPS_DIR, host, port,
                    lambda line: err_console.print(line, highlight=False, soft_wrap=True),
                    allow_writes=allow_writes, verbose=verbose)  # fmt: skip
