"""`rnnbench reseed`: each cell's best configuration re-trained with fresh seeds."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from rnnbench.cli.output import (
    err_console,
    fmt,
    reports_errors,
)


@reports_errors
def reseed_command(
    sweep: Annotated[str, typer.Option(help="The sweep whose best configurations to re-train.")],
    seeds: Annotated[int, typer.Option(min=1, help="Fresh seeds per cell.")] = 3,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI of the sweep.")] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment name.")] = "rnnbench",
    cache_dir: Annotated[str | None, typer.Option(help="Task data cache.")] = None,
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
