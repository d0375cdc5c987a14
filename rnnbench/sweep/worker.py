"""The trial function that runs in a Ray worker: one trial, built from names only (cell, task, space values)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnbench.training.config import TrainConfig, trainable_fields

if TYPE_CHECKING:
    from rnnbench.training.loop import TrainResult, TrainState


@dataclass(frozen=True)
class TrialSpec:
    """What every trial of one cell of a sweep is given besides its sampled values (pickled to workers)."""

    cell: str
    task: str
    epochs: int
    seed: int
    cpus_per_trial: float
    task_options: dict[str, Any] = field(default_factory=dict)
    cache_dir: str | None = None
    train: dict[str, Any] = field(default_factory=dict)  # the sweep's [train] values
    plugin_paths: tuple[str, ...] = ()  # one-file plugins the driver loaded


def trial_config(sampled: dict[str, Any], spec: TrialSpec) -> TrainConfig:
    """The TrainConfig of a trial: the sweep's fixed values, then the space's sampled ones."""
    names = trainable_fields()
    values = {k: v for k, v in {**spec.train, **sampled}.items() if k in names}
    return TrainConfig(
        cell=spec.cell,
        task=spec.task,
        epochs=spec.epochs,
        seed=spec.seed,
        threads=max(1, int(spec.cpus_per_trial)),
        task_options=spec.task_options,
        cache_dir=spec.cache_dir,
        **values,
    )


def trial_entry(config: dict[str, Any], specs: dict[str, TrialSpec]) -> None:
    """Ray Tune's entry point: load the driver's plugins in this worker, then run the trial with its
    cell's spec (the config names the cell: ``rnnbench.sweep.routing``)."""
    from rnnbench.sweep.routing import cell_of, sampled_values
    from rnnbench.util.timings import mark

    mark("worker entered")
    spec = specs[cell_of(config)]
    with _first_imports():
        from rnnbench.core.plugin_manager import load_plugins

        # Built-ins, entry points and RNNBENCH_PLUGINS, as on the driver, and its one-file plugins.
        load_plugins(list(spec.plugin_paths))
        import rnnbench.training.loop  # noqa: F401  (torch; a task's data without datasets: tasks.columns)
    run_trial(sampled_values(config), spec)


_imported = threading.Event()  # set once this worker process imported what its trials run on


@contextlib.contextmanager
def _first_imports() -> Iterator[None]:
    """The first trial of a worker process imports torch and datasets with Python's garbage collector off, then
    freezes it over them for the worker's lifetime (``rnnbench.util.collector``: each full collection scanned
    every object imported so far). Later trials of the process find them imported."""
    if _imported.is_set():
        yield
        return
    from rnnbench.util.collector import uncollected_start

    with uncollected_start(thaw=False) as imported:
        yield
        imported()
    _imported.set()


STATE_FILE = "state.pt"  # an epoch checkpoint: rnnbench.training.loop.TrainState


def run_trial(config: dict[str, Any], spec: TrialSpec) -> None:
    """Train one sampled configuration, reporting every epoch to Tune with a checkpoint (a retried trial
    continues from its last epoch) and a final result whose checkpoint holds the tested weights."""
    from ray import tune

    from rnnbench.sweep.scratch import scratch_root
    from rnnbench.training.data import task_and_data
    from rnnbench.training.loop import EpochReport, train
    from rnnbench.training.recipe import input_example, keep_final_checkpoint, recipe
    from rnnbench.util.timings import mark

    mark("worker imported")
    train_config = trial_config(config, spec)
    placement = _placement()
    resume = _resume_state()
    resumed = {"resumed_from_epoch": resume.epoch if resume else 0}

    def on_epoch(report: EpochReport) -> None:
        assert report.snapshot is not None
        with tempfile.TemporaryDirectory(prefix="checkpoint-", dir=scratch_root()) as folder:
            report.snapshot().save(Path(folder) / STATE_FILE)
            tune.report({"epoch": report.epoch, **report.metrics(), "final": False, **resumed, **placement},
                        checkpoint=tune.Checkpoint.from_directory(folder))  # fmt: skip

    try:
        scratch_root()  # made (and what ended workers left removed) before the first epoch, not in its report
        task, splits = task_and_data(train_config)
        result = train(train_config, on_epoch=on_epoch, task=task, splits=splits, resume=resume)
    except Exception as exc:
        # An exception is this trial's result (FAILED, not retried): Ray's retries are for dead workers.
        # (Tune ends a stopped trial with SystemExit, which is not caught here.)
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-4000:]}"
        tune.report({"final": True, "status": "failed", "error": error, "val_loss": float("inf"),
                     "val_accuracy": 0.0, **resumed, **placement})  # fmt: skip
        return
    metrics = {**_final_report(result, train_config), **resumed, **placement}
    if result.best_state is None:  # no epoch finished: nothing to keep
        tune.report(metrics)
        return
    with tempfile.TemporaryDirectory(prefix="model-", dir=scratch_root()) as folder:
        keep_final_checkpoint(
            result.best_state, recipe(train_config, task), input_example(splits), Path(folder)
        )
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def _resume_state() -> TrainState | None:
    """The last epoch's state when Ray retries this trial after its worker died, else None."""
    from ray import tune

    from rnnbench.training.loop import TrainState

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        if (Path(folder) / STATE_FILE).is_file():  # not the final one (died after its last report)
            return TrainState.load(Path(folder) / STATE_FILE)
    return None


def _final_report(result: TrainResult, train_config: TrainConfig) -> dict[str, Any]:
    """A finished trial's last report; the searcher and the scheduler read val_loss / val_accuracy: the
    tested epoch's."""
    return {
        **result.final_metrics(),
        "val_loss": result.val_loss if result.val_loss is not None else float("inf"),
        "val_accuracy": result.val_accuracy if result.val_accuracy is not None else 0.0,
        "status": result.status,
        "final": True,
        "data_version": result.data_version,
        # JSON text: Tune's TensorBoard logger warns about list values.
        "lrd_curve": json.dumps(result.lrd.rows() if result.lrd else []),
        "device": "cuda" if train_config.device != "cpu" and _cuda() else "cpu",
    }


def _placement() -> dict[str, Any]:
    """Where this trial runs: its GPUs, node and process."""
    import ray

    return {
        "gpu_ids": ",".join(str(g) for g in ray.get_gpu_ids()),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        "node_ip": ray.util.get_node_ip_address(),
        "node_id": ray.get_runtime_context().get_node_id(),
        "pid": os.getpid(),
    }


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
