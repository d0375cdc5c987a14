"""A worker's task and its data, loaded once for the runs it trains in a row (a sweep's trials, reseeds)."""

from __future__ import annotations

import json
from typing import Any

from rnnbench.training.config import TrainConfig, build_task

_loaded: dict[str, tuple[Any, Any]] = {}  # one entry: the task and data of this process's last run


def data_identity(config: TrainConfig) -> str:
    """What decides the configuration's task and data: the task, its options, the data seed and the cache
    folder. Configurations that share it train on the same data, so one task built and loaded serves them."""
    # Options come from TOML, flags or MLflow params: JSON values, or a TOML date, whose repr is exact.
    return json.dumps([config.task, config.task_options, config.data_seed, config.cache_dir], sort_keys=True,
                      default=repr)  # fmt: skip


def task_and_data(config: TrainConfig) -> tuple[Any, Any]:
    """The run's task and its data splits, loaded once for the runs a worker process trains in a row: Tune
    hands a trial's worker to the next trial, and a reseed's worker trains the next seed. Otherwise every run
    loads them again: 23 ms of a tiny trial's 0.2 s (py-spy, the harness's trials), and an ``hf`` task
    re-splits and re-encodes its dataset at every load (0.5 s for 4,000 rows of text). The loaded task is
    kept with its data: a task's load may set what the model is built from (``hf``'s encoding)."""
    key = data_identity(config)
    if key not in _loaded:
        _loaded.clear()  # one task's data at a time: a worker never holds two
        task = build_task(config)
        _loaded[key] = (task, splits_of(task, config))
    return _loaded[key]


def splits_of(task: Any, config: TrainConfig) -> Any:
    """``task``'s splits for ``config``: the cached columns, read without datasets, where the task keeps its data
    so (``Task.load_columns``), else its load (which builds and caches them, or runs ``hf``'s encoding)."""
    kept = task.load_columns(seed=config.data_seed, cache_dir=config.cache_dir)
    return kept or task.load(seed=config.data_seed, cache_dir=config.cache_dir)
