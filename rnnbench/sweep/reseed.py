"""Re-train each cell's best configuration of a sweep with fresh seeds (mean ± std on the leaderboard)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from rnnbench.errors import RnnbenchError
from rnnbench.tracking.store import Store
from rnnbench.tracking.tracked_run import TrackedRun, run_tracked
from rnnbench.training.config import TrainConfig, parse_option, recorded_fields

SEED_STRIDE = 1000  # re-seeds use seed + 1000 k, far from the search's seed


def config_from_params(params: dict[str, str]) -> TrainConfig:
    """The TrainConfig that an MLflow trial run recorded."""
    values: dict[str, Any] = {"cell": params["cell"], "task": params["task"]}
    for key, kind in recorded_fields().items():
        if key in params:  # an unset value (clipping off) is recorded as "none"
            values[key] = None if params[key] in ("none", "None", "") else kind(params[key])
    values.setdefault("clip", None)
    values["task_options"] = dict(
        parse_option(f"{k[5:]}={v}") for k, v in params.items() if k.startswith("task.")
    )
    return TrainConfig(**values)


def reseed(
    sweep: str,
    seeds: int,
    tracking_uri: str | None = None,
    experiment: str = "rnnbench",
    cache_dir: str | None = None,
    on_run: Any = None,
) -> list[TrackedRun]:
    """Train the best trial of every cell of ``sweep`` with the seeds seed + 1000 k, k = 1..``seeds``, that it
    has not been re-trained with yet (so a second call, or a resumed script, adds nothing it has)."""
    from rnnbench.analysis.leaderboard import build

    if seeds < 1:
        raise RnnbenchError(f"seeds must be a positive integer, got {seeds}")
    board = build(tracking_uri, sweep=sweep, experiment=experiment, with_importance=False)
    store = board.runs  # the store's runs (MlflowRuns): the store the reseed runs are recorded in
    runs: list[TrackedRun] = []
    for entry in board.entries:
        if not entry.run_id:
            continue
        best = store.client.get_run(entry.run_id)
        parent = best.data.tags.get("mlflow.parentRunId")
        # The trial's CPU share is its thread count: oversubscribed threads make small RNN kernels crawl.
        cpus = int(float(best.data.params.get("cpus_per_trial", 0))) or None
        config = replace(config_from_params(best.data.params), cache_dir=cache_dir, threads=cpus)
        # Idempotent: a seed already re-trained (a resumed script, a second call) is not trained again.
        done = {r.data.params.get("seed") for r in board.runs.reseed_runs(entry.run_id)
                if r.data.tags.get("status") in ("completed", "diverged")}  # fmt: skip
        for k in range(1, seeds + 1):
            if str(config.seed + SEED_STRIDE * k) in done:
                continue
            run = run_tracked(
                replace(config, seed=config.seed + SEED_STRIDE * k),
                run_name=f"{entry.cell}-reseed{k}",
                parent_run_id=parent,
                extra_tags={"kind": "reseed", "reseed_of": entry.run_id, "sweep": sweep},
                store=store,
            )
            runs.append(run)
            if on_run is not None:
                on_run(entry, k, run)
    _log_leaderboard(sweep, store)
    return runs


def _log_leaderboard(sweep: str, store: Store) -> None:
    """The sweep's leaderboard, now ranked on the seeds, on its parent run (plots, tables, page)."""
    import logging

    from rnnbench.report.leaderboard import log_sweep_leaderboard

    try:
        log_sweep_leaderboard(store, sweep)
    except Exception as exc:  # a page is not a result: the reseed runs are complete without it
        logging.getLogger("rnnbench").warning("warning: the sweep's leaderboard was not logged: %s", exc)
