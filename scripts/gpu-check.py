"""Device check (run on a CUDA machine, not in CI): training on the GPU resumes from an epoch snapshot
as if never stopped (CUDA's random stream included), and the tested weights, saved as a trial's final
checkpoint, rebuild on the CPU through the recipe with the GPU run's test accuracy.

    python3 scripts/gpu-check.py [OUT_JSON]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from rnnbench.tracking.models import score
from rnnbench.training.loop import TrainConfig, TrainState, build_task, train
from rnnbench.training.model import rebuild
from rnnbench.training.recipe import final_checkpoint, input_example, read_final_checkpoint, recipe

TASK = {"length": 50, "train_size": 2000, "validation_size": 256, "test_size": 512}


def check(cell: str, folder: Path, dropout: float) -> dict:
    config = TrainConfig(cell=cell, task="adding", width=64, depth=2, dropout=dropout, epochs=4, patience=0, device="cuda",
                         task_options=TASK, cache_dir=str(folder / "cache"))  # fmt: skip
    saved = folder / f"{cell}-state.pt"

    def keep_epoch_2(report):
        if report.epoch == 2:
            report.snapshot().save(saved)

    began = time.perf_counter()
    whole = train(config, on_epoch=keep_epoch_2)
    seconds = time.perf_counter() - began
    resumed = train(config, resume=TrainState.load(saved))
    task = build_task(config)
    final = folder / f"{cell}-model"
    example = input_example(task.load(seed=0, cache_dir=config.cache_dir))
    final_checkpoint(whole.best_state, recipe(config, task), example, final)
    model = rebuild(*read_final_checkpoint(final)[:2])
    cpu_loss, cpu_accuracy = score(model, cache_dir=config.cache_dir)
    return {
        "cell": cell,
        "dropout": dropout,
        "device": torch.cuda.get_device_name(0),
        "seconds": round(seconds, 1),
        "test_accuracy": whole.test_accuracy,
        "resumed_test_accuracy": resumed.test_accuracy,
        "resumed_val_losses_equal": [r.val_loss for r in whole.history]
        == [r.val_loss for r in resumed.history],
        "max_val_loss_difference": max(
            abs(a.val_loss - b.val_loss) for a, b in zip(whole.history, resumed.history, strict=True)
        ),
        "weights_device": str(next(iter(read_final_checkpoint(final)[1].values())).device),
        "cpu_rebuilt_test_accuracy": cpu_accuracy,
        "cpu_rebuilt_test_loss": cpu_loss,
        "gpu_test_loss": whole.test_loss,
    }


def main() -> None:
    assert torch.cuda.is_available(), "no CUDA device"
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for cell in ("lstm", "gru", "peephole", "cifg"):
            for dropout in (0.2, 0.0):
                try:
                    results.append(check(cell, Path(folder), dropout))
                except Exception as exc:  # report every cell, not only the first failure
                    results.append(
                        {"cell": cell, "dropout": dropout, "error": f"{type(exc).__name__}: {exc}"}
                    )
                print(json.dumps(results[-1]), flush=True)
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
