"""Training of one configuration: seeded, clipped, early-stopped, with divergence recorded, not raised."""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from rnnbench.errors import TrainingConfigError
from rnnbench.lrd import LRDResult, lrd_score
from rnnbench.model import SequenceModel, parameter_count
from rnnbench.plugin_manager import get_cell, get_task
from rnnbench.reports import EPOCH_METRICS, FINAL_METRICS, pick
from rnnbench.tasks.base import Task
from rnnbench.train_config import TrainConfig

__all__ = ["EpochReport", "StopTraining", "TrainConfig", "TrainResult", "train"]

Status = Literal["completed", "diverged", "pruned"]
EVAL_BATCH = 512


@dataclass(frozen=True)
class EpochReport:
    epoch: int
    step: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    seconds: float

    def metrics(self) -> dict[str, float]:
        """The epoch's metrics under their declared names (rnnbench.reports.EPOCH_METRICS)."""
        values = {
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "val_accuracy": self.val_accuracy,
            "epoch_seconds": self.seconds,
        }
        return _declared(values, EPOCH_METRICS)


class StopTraining(Exception):
    """Raised by an epoch callback to end the run early (a sweep's pruner), with a status."""

    def __init__(self, status: Status = "pruned") -> None:
        super().__init__(status)
        self.status = status


@dataclass
class TrainResult:
    status: Status
    config: TrainConfig
    data_version: str
    param_count: int
    epochs_run: int = 0
    steps: int = 0
    best_epoch: int | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    test_loss: float | None = None
    test_accuracy: float | None = None
    baseline_loss: float | None = None
    lrd: LRDResult | None = None
    train_seconds: float = 0.0
    diverged_step: int | None = None
    chance: float | None = None
    test_count: int | None = None
    history: list[EpochReport] = field(default_factory=list)

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.train_seconds if self.train_seconds > 0 else 0.0

    def final_metrics(self) -> dict[str, float]:
        values: dict[str, float | int | None] = {
            # Per-epoch curves are val_loss / val_accuracy; these are the epoch the test used.
            "best_val_loss": self.val_loss,
            "best_val_accuracy": self.val_accuracy,
            "test_loss": self.test_loss,
            "test_accuracy": self.test_accuracy,
            "baseline_loss": self.baseline_loss,
            "lrd_score": self.lrd.score if self.lrd else None,
            "lrd_horizon": self.lrd.horizon if self.lrd else None,
            "param_count": self.param_count,
            "train_seconds": self.train_seconds,
            "steps_per_second": self.steps_per_second,
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "diverged_step": self.diverged_step,
            "chance": self.chance,
            "test_count": self.test_count,
        }
        return _declared(values, FINAL_METRICS)


def _declared(values: dict[str, Any], names: tuple[str, ...]) -> dict[str, float]:
    """``values`` as floats, checked against the declared metric names (rnnbench.reports)."""
    if set(values) != set(names):
        raise AssertionError(f"metrics {sorted(values)} differ from the declared {sorted(names)}")
    return pick(values, names)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise TrainingConfigError(f"device {device!r} is not a torch device: {exc}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise TrainingConfigError(f"device {device!r} asked for, but CUDA is not available here")
    return resolved


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_task(config: TrainConfig) -> Task:
    return get_task(config.task).build(**config.task_options)


def _tensors(split: Any, device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in split.with_format("torch")[:].items()}


def _make_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = model.parameters()
    if config.optimizer in ("sgd", "nesterov"):
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
            nesterov=config.optimizer == "nesterov" and config.momentum > 0,
        )  # fmt: skip
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


@torch.no_grad()
def evaluate(model: SequenceModel, task: Task, data: dict[str, torch.Tensor]) -> tuple[float, torch.Tensor]:
    """Mean loss and the per-example scores over a split, in eval mode."""
    model.eval()
    total, count, scores = 0.0, 0, []
    inputs, target = data["inputs"], data["target"]
    for begin in range(0, len(target), EVAL_BATCH):
        x, y = inputs[begin : begin + EVAL_BATCH], target[begin : begin + EVAL_BATCH]
        output = model(x)
        total += float(task.loss(output, y)) * len(y)
        count += len(y)
        scores.append(task.example_scores(output, y).cpu())
    model.train()
    return total / count, torch.cat(scores)


def train(
    config: TrainConfig,
    on_epoch: Callable[[EpochReport], None] | None = None,
    on_step: Callable[[int, float], None] | None = None,
    task: Task | None = None,
    splits: Any = None,
) -> TrainResult:
    """Train one configuration and evaluate its best-validation weights on the test split.

    ``on_epoch`` receives each epoch's metrics and may raise StopTraining (a pruner);
    ``on_step`` receives (step, loss) for progress displays. ``task`` and ``splits`` may be passed
    in when the caller has already built and loaded them. A NaN or infinite loss ends the run
    with status ``diverged``: the best weights so far, if any epoch finished, are still tested.
    """
    config.validate()
    cell = get_cell(config.cell)
    task = task if task is not None else build_task(config)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    if splits is None:
        splits = task.load(seed=config.data_seed, cache_dir=config.cache_dir)
    data = {name: _tensors(split, device) for name, split in splits.items()}

    seed_everything(config.seed)
    model = SequenceModel(cell, task, config.width, config.depth, config.dropout).to(device)
    optimizer = _make_optimizer(config, model)
    result = TrainResult(
        status="completed", config=config, data_version=task.data_version, param_count=parameter_count(model)
    )
    baseline = task.baseline_loss(splits["test"].with_format("numpy")["length"])
    result.baseline_loss = baseline
    generator = torch.Generator().manual_seed(config.seed)
    started = time.perf_counter()
    best_state = _fit(config, model, optimizer, generator, task, data, result, on_epoch, on_step)
    result.train_seconds = time.perf_counter() - started
    if best_state is not None:
        model.load_state_dict(best_state)
        result.test_loss, test_scores = evaluate(model, task, data["test"])
        result.test_accuracy = float(test_scores.mean())
        result.chance, result.test_count = float(task.chance), len(test_scores)
        result.lrd = lrd_score(data["test"]["distance"].cpu().numpy(), test_scores.numpy(), task.chance)
    return result


def _fit(
    config: TrainConfig,
    model: SequenceModel,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    task: Task,
    data: dict[str, dict[str, torch.Tensor]],
    result: TrainResult,
    on_epoch: Callable[[EpochReport], None] | None,
    on_step: Callable[[int, float], None] | None,
) -> dict[str, Any] | None:
    """The epochs: train, validate, keep the best weights, stop early. Returns the best weights (None
    when no epoch finished)."""
    best_state, best_loss, stale = None, math.inf, 0
    try:
        for epoch in range(1, config.epochs + 1):
            epoch_start = time.perf_counter()
            train_loss = _train_epoch(
                config, model, optimizer, generator, task, data["train"], result, on_step
            )
            if train_loss is None:  # a non-finite loss: diverged, nothing of this epoch is kept
                break
            val_loss, val_scores = evaluate(model, task, data["validation"])
            report = EpochReport(
                epoch=epoch,
                step=result.steps,
                train_loss=train_loss,
                val_loss=val_loss,
                val_accuracy=float(val_scores.mean()),
                seconds=time.perf_counter() - epoch_start,
            )
            result.history.append(report)
            result.epochs_run = epoch
            if not math.isfinite(val_loss):
                result.status, result.diverged_step = "diverged", result.steps
                break
            if val_loss < best_loss:
                best_loss, stale, result.best_epoch = val_loss, 0, epoch
                best_state = copy.deepcopy(model.state_dict())
                result.val_loss, result.val_accuracy = val_loss, report.val_accuracy
            else:
                stale += 1
            if on_epoch is not None:
                on_epoch(report)
            if config.patience and stale >= config.patience:
                break
    except StopTraining as stop:
        result.status = stop.status
    return best_state


def _train_epoch(
    config: TrainConfig,
    model: SequenceModel,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    task: Task,
    split: dict[str, torch.Tensor],
    result: TrainResult,
    on_step: Callable[[int, float], None] | None,
) -> float | None:
    """One pass over the training split in a seeded order; the mean loss, or None once a loss is not
    finite (the result is then marked diverged at that step)."""
    inputs, target = split["inputs"], split["target"]
    noisy = config.input_noise > 0 and task.encoding == "linear"
    running, batches = 0.0, 0
    order = torch.randperm(len(target), generator=generator).to(inputs.device)
    for begin in range(0, len(order), config.batch_size):
        index = order[begin : begin + config.batch_size]
        x, y = inputs[index], target[index]
        if noisy:
            x = x + config.input_noise * torch.randn_like(x)
        loss = task.loss(model(x), y)
        result.steps += 1
        value = loss.item()
        if not math.isfinite(value):
            result.status, result.diverged_step = "diverged", result.steps
            return None
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
        optimizer.step()
        running += value
        batches += 1
        if on_step is not None:
            on_step(result.steps, value)
    return running / max(batches, 1)
