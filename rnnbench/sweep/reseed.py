"""Re-train each cell's best configuration of a sweep with fresh seeds (mean ± std on the leaderboard)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rnnbench.analysis.setups import PATH_OPTIONS
from rnnbench.errors import RnnbenchError
from rnnbench.sweep.state import SweepError
from rnnbench.tracking.store import Store
from rnnbench.tracking.tracked_run import TrackedRun, record_trained, run_tracked
from rnnbench.training.config import TrainConfig, build_task, parse_option, recorded_fields
from rnnbench.training.data import data_identity

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
    jobs: list[Reseed] = []
    for entry in board.entries:
        if not entry.run_id:
            continue
        best = store.client.get_run(entry.run_id)
        # The trial's CPU share is its thread count: oversubscribed threads make small RNN kernels crawl.
        cpus = int(float(best.data.params.get("cpus_per_trial", 0))) or None
        config = replace(config_from_params(best.data.params), cache_dir=cache_dir, threads=cpus)
        if missing := files_not_here(config):
            raise SweepError(
                f"sweep {sweep!r} names its data as given to it, relative to the folder it ran in, and this folder "
                f"({Path.cwd()}) has no {', '.join(missing)}: run the reseed from the sweep's folder"
            )
        # Idempotent: a seed already re-trained (a resumed script, a second call) is not trained again.
        done = {r.data.params.get("seed") for r in board.runs.reseed_runs(entry.run_id)
                if r.data.tags.get("status") in ("completed", "diverged")}  # fmt: skip
        for k in range(1, seeds + 1):
            if str(config.seed + SEED_STRIDE * k) not in done:
                tags = {"kind": "reseed", "reseed_of": entry.run_id, "sweep": sweep}
                jobs.append(Reseed(entry, k, replace(config, seed=config.seed + SEED_STRIDE * k),
                                   best.data.tags.get("mlflow.parentRunId"), tags))  # fmt: skip
    runs = train_and_record(jobs, store, on_run)
    _log_leaderboard(sweep, store)
    return runs


def files_not_here(config: TrainConfig) -> list[str]:
    """The data files that ``config``'s task options name by a relative path (``path=data.csv``,
    ``data_files=train=a.csv``) and this folder lacks, as ``option=file``; a name without a suffix is a data
    set on the hub, not a file."""
    missing = []
    for key in sorted(PATH_OPTIONS):
        value = config.task_options.get(key)
        for part in value.split(",") if isinstance(value, str) else []:
            file = Path(part.split("=", 1)[-1].strip()).expanduser()
            if file.suffix and not file.is_absolute() and not file.exists():
                missing.append(f"{key}={file}")
    return missing


@dataclass
class Reseed:
    """One seed of one cell's best configuration to train, and where its run goes."""

    entry: Any
    k: int
    config: TrainConfig
    parent_run_id: str | None
    tags: dict[str, str]

    @property
    def run_name(self) -> str:
        return f"{self.entry.cell}-reseed{self.k}"


def train_and_record(jobs: list[Reseed], store: Store, on_run: Any = None) -> list[TrackedRun]:
    """Train and record ``jobs``: side by side in worker processes where they fit (``reseed_pool``), else
    one after another here; returns their runs in the order given."""
    from rnnbench.core.plugin_manager import get_cell
    from rnnbench.sweep.reseed_pool import trained_side_by_side, workers_for

    recorded: dict[int, TrackedRun] = {}

    def keep(index: int, run: TrackedRun) -> None:
        recorded[index] = run
        if on_run is not None:
            on_run(jobs[index].entry, jobs[index].k, run)

    workers = workers_for([job.config for job in jobs])
    if workers > 1:
        tasks, built = [], {}
        for job in jobs:  # a bad configuration, an unknown cell or bad data fail before any worker starts
            job.config.validate()
            get_cell(job.config.cell)
            key = data_identity(job.config)
            if key not in built:  # a sweep's reseeds share their data: built and checked once for all
                built[key] = build_task(job.config)
                # Built here once for all workers (cached data are not read again); a task's load may set what
                # its run records (hf's encoding).
                built[key].ensure_cached(seed=job.config.data_seed, cache_dir=job.config.cache_dir)
            tasks.append(built[key])
        # Closed as soon as a record fails: its workers end then, not when the generator is collected.
        with contextlib.closing(trained_side_by_side([job.config for job in jobs], workers)) as outcomes:
            for index, trained, folder in outcomes:
                job = jobs[index]
                keep(index, record_trained(job.config, tasks[index], trained, folder, store, job.run_name,
                                           job.parent_run_id, job.tags))  # fmt: skip
    for index, job in enumerate(jobs):  # those that could not train side by side (a GPU, one CPU)
        if index not in recorded:
            keep(index, run_tracked(job.config, run_name=job.run_name, parent_run_id=job.parent_run_id,
                                    extra_tags=job.tags, store=store))  # fmt: skip
    return [recorded[index] for index in range(len(jobs))]


def _log_leaderboard(sweep: str, store: Store) -> None:
    """The sweep's leaderboard, now ranked on the seeds, on its parent run (plots, tables, page)."""
    import logging

    from rnnbench.report.leaderboard import log_sweep_leaderboard

    try:
        log_sweep_leaderboard(store, sweep)
    except Exception as exc:  # a page is not a result: the reseed runs are complete without it
        logging.getLogger("rnnbench").warning("warning: the sweep's leaderboard was not logged: %s", exc)
