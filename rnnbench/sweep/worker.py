"""The trial function that runs in a Ray worker: one trial, built from names only (cell, task, space values)."""

from __future__ import annotations

import json
import os
import traceback
from dataclasses import dataclass, field
from typing import Any

from rnnbench.train_config import TrainConfig, trainable_fields


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


def trial_entry(config: dict[str, Any], spec: TrialSpec) -> None:
    """Ray Tune's entry point: load the driver's plugins in this worker, then run the trial."""
    from rnnbench.plugin_manager import load_plugins

    # Built-ins, entry points and RNNBENCH_PLUGINS, as on the driver, and its one-file plugins.
    load_plugins(list(spec.plugin_paths))
    run_trial(config, spec)


def run_trial(config: dict[str, Any], spec: TrialSpec) -> None:
    """Train one sampled configuration, reporting every epoch to Tune and a final result."""
    from ray import tune

    from rnnbench.training import EpochReport, train

    train_config = trial_config(config, spec)
    placement = _placement()

    def on_epoch(report: EpochReport) -> None:
        tune.report({"epoch": report.epoch, **report.metrics(), "final": False, **placement})

    try:
        result = train(train_config, on_epoch=on_epoch)
    except Exception as exc:
        # An exception is this trial's result (FAILED, not retried): Ray's retries are for dead workers.
        # (Tune ends a stopped trial with SystemExit, which is not caught here.)
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-4000:]}"
        tune.report({"final": True, "status": "failed", "error": error, "val_loss": float("inf"),
                     "val_accuracy": 0.0, **placement})  # fmt: skip
        return
    # The searcher and the scheduler read val_loss / val_accuracy: report the tested epoch's.
    tune.report(
        {
            **result.final_metrics(),
            "val_loss": result.val_loss if result.val_loss is not None else float("inf"),
            "val_accuracy": result.val_accuracy if result.val_accuracy is not None else 0.0,
            "status": result.status,
            "final": True,
            "data_version": result.data_version,
            # JSON text: Tune's TensorBoard logger warns about list values.
            "lrd_curve": json.dumps(result.lrd.rows() if result.lrd else []),
            "device": "cuda" if train_config.device != "cpu" and _cuda() else "cpu",
            **placement,
        }
    )


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
