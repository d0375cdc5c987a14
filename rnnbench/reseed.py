"""Re-train each cell's best configuration of a sweep with fresh seeds (mean ± std on the leaderboard)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from rnnbench.errors import RnnbenchError
from rnnbench.run import TrackedRun, parse_option, run_tracked
from rnnbench.training import TrainConfig

INT_KEYS = ("depth", "width", "epochs", "batch_size", "seed", "data_seed", "patience")
FLOAT_KEYS = ("lr", "momentum", "weight_decay", "dropout", "input_noise")
SEED_STRIDE = 1000  # re-seeds use seed + 1000 k, far from the search's seed


def config_from_params(params: dict[str, str]) -> TrainConfig:
    """The TrainConfig that an MLflow trial run recorded."""
    values: dict[str, Any] = {"cell": params["cell"], "task": params["task"]}
    for key in INT_KEYS:
        if key in params:
            values[key] = int(params[key])
    for key in FLOAT_KEYS:
        if key in params:
            values[key] = float(params[key])
    if "optimizer" in params:
        values["optimizer"] = params["optimizer"]
    clip = params.get("clip", "none")
    values["clip"] = None if clip in ("none", "None", "") else float(clip)
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
    """Train the best trial of every cell of ``sweep`` again with ``seeds`` new seeds."""
    from mlflow.tracking import MlflowClient

    from rnnbench.leaderboard import build

    if seeds < 1:
        raise RnnbenchError(f"seeds must be a positive integer, got {seeds}")
    board = build(tracking_uri, sweep=sweep, experiment=experiment, with_importance=False)
    client = MlflowClient(board.tracking_uri)
    runs: list[TrackedRun] = []
    for entry in board.entries:
        if not entry.run_id:
            continue
        best = client.get_run(entry.run_id)
        parent = best.data.tags.get("mlflow.parentRunId")
        config = replace(config_from_params(best.data.params), cache_dir=cache_dir)
        for k in range(1, seeds + 1):
            run = run_tracked(
                replace(config, seed=config.seed + SEED_STRIDE * k),
                board.tracking_uri,
                experiment,
                run_name=f"{entry.cell}-reseed{k}",
                parent_run_id=parent,
                extra_tags={"kind": "reseed", "reseed_of": entry.run_id, "sweep": sweep},
            )
            runs.append(run)
            if on_run is not None:
                on_run(entry, k, run)
    return runs
