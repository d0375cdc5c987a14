"""The Ray Tune trainable: one trial, run in a worker from names only (cell, task, space values)."""

from __future__ import annotations

import json
import os
import traceback
from typing import Any

TRAIN_FIELDS = {
    "depth", "width", "clip", "lr", "batch_size", "patience", "data_seed", "optimizer", "momentum",
    "weight_decay", "dropout", "input_noise",
}  # fmt: skip


def trial_config(sampled: dict[str, Any], fixed: dict[str, Any]) -> Any:
    """The TrainConfig of a trial: the sweep's fixed values, then the space's sampled ones."""
    from rnnbench.training import TrainConfig

    values = {k: v for k, v in {**fixed.get("train", {}), **sampled}.items() if k in TRAIN_FIELDS}
    threads = max(1, int(fixed["cpus_per_trial"]))
    return TrainConfig(
        cell=fixed["cell"],
        task=fixed["task"],
        epochs=fixed["epochs"],
        seed=fixed["seed"],
        threads=threads,
        task_options=fixed["task_options"],
        cache_dir=fixed.get("cache_dir"),
        **values,
    )


def run_trial(config: dict[str, Any], fixed: dict[str, Any]) -> None:
    """Train one sampled configuration, reporting every epoch to Tune and a final result."""
    import ray
    from ray import tune

    from rnnbench.plugins import load_plugins
    from rnnbench.training import EpochReport, train

    load_plugins()  # built-ins, entry points and RNNBENCH_PLUGINS, as on the driver
    train_config = trial_config(config, fixed)
    placement = {
        "gpu_ids": ",".join(str(g) for g in ray.get_gpu_ids()),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        "node_ip": ray.util.get_node_ip_address(),
        "node_id": ray.get_runtime_context().get_node_id(),
        "pid": os.getpid(),
    }

    def on_epoch(report: EpochReport) -> None:
        tune.report(
            {
                "epoch": report.epoch,
                "train_loss": report.train_loss,
                "val_loss": report.val_loss,
                "val_accuracy": report.val_accuracy,
                "epoch_seconds": report.seconds,
                "final": False,
                **placement,
            }
        )

    try:
        result = train(train_config, on_epoch=on_epoch)
    except Exception as exc:
        # An exception is this trial's result (FAILED, not retried): Ray's retries are for dead workers.
        # (Tune ends a stopped trial with SystemExit, which is not caught here.)
        tune.report(
            {
                "final": True,
                "status": "failed",
                "error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-4000:]}",
                "val_loss": float("inf"),
                "val_accuracy": 0.0,
                **placement,
            }
        )
        return
    final = result.final_metrics()
    # The searcher and the scheduler read val_loss / val_accuracy: report the tested epoch's.
    tune.report(
        {
            **final,
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


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
