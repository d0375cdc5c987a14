"""`rnnbench reseed`: each cell's best configuration re-trained with fresh seeds."""

from __future__ import annotations

from typing import Any

from rnnbench.cli import options as o
from rnnbench.cli.output import (
    err_console,
    fmt,
    reports_errors,
)


@reports_errors
def reseed_command(
    sweep: o.ReseedSweep,
    seeds: o.ReseedSeeds = 3,
    tracking_uri: o.TrackingUri = None,
    experiment: o.Experiment = "rnnbench",
    cache_dir: o.ReseedCacheDir = None,
) -> None:
    """Re-train each cell's best configuration of a sweep with K fresh seeds (the leaderboard shows mean ± std)."""
    from rnnbench.sweep.reseed import reseed

    def done(entry: Any, k: int, run: Any) -> None:
        metrics = run.result.final_metrics()
        err_console.print(
            f"{entry.cell} seed {k}/{seeds}: test accuracy {metrics.get('test_accuracy', float('nan')):.4f}, "
            f"LRD score {fmt(metrics.get('lrd_score'), '.3f')}",
            highlight=False,
        )

    reseed(sweep, seeds, tracking_uri, experiment, cache_dir, on_run=done)
