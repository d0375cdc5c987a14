"""`rnnbench export`: sweeps' runs as parquet."""

from __future__ import annotations

from rnnbench.cli import options as o
from rnnbench.cli.output import (
    err_console,
    reports_errors,
)
from rnnbench.errors import RnnbenchError


@reports_errors
def export_command(
    out: o.ExportOut,
    sweeps: o.ExportSweeps = None,
    tracking_uri: o.TrackingUri = None,
    experiment: o.Experiment = "rnnbench",
) -> None:
    """Write sweeps' runs (parent, trials, reseeds: params, tags, metrics, curves, LRD buckets) as parquet."""
    from rnnbench.analysis.leaderboard import NothingToRank, open_runs
    from rnnbench.tracking.records import rows_of, write

    if sweeps:
        from rnnbench.tracking.run_search import check_sweep_name

        for name in sweeps:
            check_sweep_name(name, "--sweep")
    try:
        source = open_runs(tracking_uri, experiment)
    except NothingToRank as exc:
        raise RnnbenchError(f"nothing to export: {exc}") from None
    if sweeps:
        missing = [name for name in sweeps if source.sweep_run(name) is None]
        if missing:
            raise RnnbenchError(f"no sweep named {', '.join(map(repr, missing))} in {source.uri}")
    rows = rows_of(source, sweeps)
    write(rows, out)
    kinds = {k: sum(r["kind"] == k for r in rows) for k in ("sweep", "trial", "reseed")}
    err_console.print(
        f"Exported {len(rows)} runs ({kinds['sweep']} sweeps, {kinds['trial']} trials, {kinds['reseed']} "
        f"reseeds) to {out}", highlight=False,
    )  # fmt: skip
