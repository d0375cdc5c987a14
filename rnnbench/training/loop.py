"""Training of one configuration: seeded, clipped, early-stopped, with divergence recorded, not raised."""

from __future__ import annotations

import copy
import dataclasses
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from rnnbench.core.plugin_manager import get_cell
from rnnbench.errors import TrainingConfigError
from rnnbench.tasks.base import Task
from rnnbench.tasks.columns import split_column, split_tensors
from rnnbench.training.config import TrainConfig, build_task
from rnnbench.training.eager_optim import eager
from rnnbench.training.lrd import LRDResult, lrd_score
from rnnbench.training.metrics import EPOCH_METRICS, FINAL_METRICS, pick
from rnnbench.training.model import SequenceModel, parameter_count

__all__ = [
    "EpochReport",
    "StopTraining",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "build_task",
    "resolve_device",
    "train",
]

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
    # The state to continue from after this epoch (a checkpoint); valid only during the epoch callback,
    # whose caller must save it before returning: training goes on in the same tensors.
    snapshot: Callable[[], TrainState] | None = field(default=None, repr=False, compare=False)

    def metrics(self) -> dict[str, float]:
        """The epoch's metrics under their declared names (rnnbench.training.metrics.EPOCH_METRICS)."""
        values = {
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "val_accuracy": self.val_accuracy,
            "epoch_seconds": self.seconds,
        }
        return _declared(values, EPOCH_METRICS)


@dataclass
class TrainState:
    """Everything that continues a run after an epoch as if it had never stopped: the weights, the
    optimizer, the random streams, the best weights so far and the epochs' history."""

    epoch: int
    steps: int
    model: dict[str, Any]
    optimizer: dict[str, Any]
    batch_order_rng: torch.Tensor  # the generator of the batch order
    torch_rng: torch.Tensor  # dropout and input noise on the CPU
    cuda_rng: list[torch.Tensor] | None
    best_state: dict[str, Any] | None
    best_loss: float
    stale: int
    best_epoch: int | None
    val_loss: float | None
    val_accuracy: float | None
    train_seconds: float
    history: list[dict[str, float]]

    def save(self, path: Path) -> None:
        torch.save(asdict(self), path)

    @classmethod
    def load(cls, path: Path) -> TrainState:
        # Our own checkpoint: tensors, dicts and numbers only, so the safe loader reads it.
        return cls(**torch.load(path, map_location="cpu", weights_only=True))


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
    best_state: dict[str, Any] | None = field(default=None, repr=False)  # the tested weights
    resumed_from_epoch: int = 0  # the checkpoint's epoch when the run continued one

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
    """``values`` as floats, checked against the declared metric names (rnnbench.training.metrics)."""
    if set(values) != set(names):
        raise AssertionError(f"metrics {sorted(values)} differ from the declared {sorted(names)}")
    return pick(values, names)


def resolve_device(device: str) -> torch.device:
    """The torch device ``device`` names (``auto``: CUDA where there is one, else the CPU); a name torch does
    not know, a kind of device this machine lacks or an index past its last device is a TrainingConfigError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise TrainingConfigError(f"device {device!r} is not a torch device: {exc}") from None
    if resolved.type == "cpu":
        return resolved
    # torch.cuda, torch.xpu, ...: each backend module says whether it is here and how many devices it has
    # (MPS says it through torch.backends); a kind with neither ("meta") cannot train.
    backend = getattr(torch, resolved.type, None)
    available = (
        torch.backends.mps.is_available if resolved.type == "mps" else getattr(backend, "is_available", None)
    )
    if available is None or not available():
        raise TrainingConfigError(
            f"device {device!r} asked for, but {resolved.type.upper()} is not available here"
        )
    count = getattr(backend, "device_count", lambda: 1)()
    if resolved.index is not None and resolved.index >= count:
        raise TrainingConfigError(
            f"device {device!r} asked for, but this machine has {count} {resolved.type.upper()} devices "
            f"({resolved.type}:0 to {resolved.type}:{count - 1})"
        )
    return resolved


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _make_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = model.parameters()
    if config.optimizer in ("sgd", "nesterov"):
        return eager(torch.optim.SGD)(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
            nesterov=config.optimizer == "nesterov" and config.momentum > 0,
        )  # fmt: skip
    if config.optimizer == "rmsprop":
        return eager(torch.optim.RMSprop)(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    return eager(torch.optim.Adam)(params, lr=config.lr, weight_decay=config.weight_decay)


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
    resume: TrainState | None = None,
) -> TrainResult:
    """Train one configuration and evaluate its best-validation weights on the test split.

    ``on_epoch`` receives each epoch's metrics (and its ``snapshot``, a checkpoint to continue from)
    and may raise StopTraining (a pruner); ``on_step`` receives (step, loss) for progress displays.
    ``task`` and ``splits`` may be passed in when the caller has already built and loaded them;
    ``resume`` continues from a snapshot, with the result an uninterrupted run would have had. A NaN or
    infinite loss ends the run with status ``diverged``: the best weights so far, if any epoch
    finished, are still tested.
    """
    config.validate()
    cell = get_cell(config.cell)
    task = task if task is not None else build_task(config)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    if splits is None:
        splits = task.load(seed=config.data_seed, cache_dir=config.cache_dir)
    data = {name: split_tensors(split, device=device) for name, split in splits.items()}

    seed_everything(config.seed)
    model = SequenceModel(cell, task, config.width, config.depth, config.dropout).to(device)
    result = TrainResult(
        status="completed", config=config, data_version=task.data_version, param_count=parameter_count(model)
    )
    result.baseline_loss = task.baseline_loss(split_column(splits["test"], "length"))
    run = _Run(config, task, model, _make_optimizer(config, model), torch.Generator().manual_seed(config.seed),
               data, result, on_epoch, on_step)  # fmt: skip
    if resume is not None:
        run.restore(resume)
    run.started = time.perf_counter() - result.train_seconds
    best_state = _fit(run)
    result.train_seconds = time.perf_counter() - run.started
    if best_state is not None:
        model.load_state_dict(best_state)
        result.best_state = best_state
        result.test_loss, test_scores = evaluate(model, task, data["test"])
        result.test_accuracy = float(test_scores.mean())
        result.chance, result.test_count = float(task.chance), len(test_scores)
        result.lrd = lrd_score(data["test"]["distance"].cpu().numpy(), test_scores.numpy(), task.chance)
    return result


@dataclass
class _Progress:
    """The best validation so far, and the epochs since it improved."""

    epoch: int = 0
    best_state: dict[str, Any] | None = None
    best_loss: float = math.inf
    stale: int = 0


# What a checkpoint keeps of each epoch's report: every field but the (unpicklable) snapshot.
_HISTORY_FIELDS = tuple(f.name for f in dataclasses.fields(EpochReport) if f.name != "snapshot")


@dataclass
class _Run:
    """One training run's moving parts, handed from epoch to epoch (and into a snapshot)."""

    config: TrainConfig
    task: Task
    model: SequenceModel
    optimizer: torch.optim.Optimizer
    generator: torch.Generator  # the batch order's random stream
    data: dict[str, dict[str, torch.Tensor]]
    result: TrainResult
    on_epoch: Callable[[EpochReport], None] | None = None
    on_step: Callable[[int, float], None] | None = None
    progress: _Progress = field(default_factory=_Progress)
    started: float = 0.0  # perf_counter at the (virtual) start: a resumed run counts its earlier seconds

    def restore(self, state: TrainState) -> None:
        """Put a snapshot back: weights, optimizer, random streams, history and best so far."""
        device = next(self.model.parameters()).device
        self.model.load_state_dict(state.model)
        self.optimizer.load_state_dict(state.optimizer)
        self.generator.set_state(state.batch_order_rng)
        torch.set_rng_state(state.torch_rng)
        if state.cuda_rng is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state.cuda_rng)
        result = self.result
        result.steps, result.epochs_run, result.best_epoch = state.steps, state.epoch, state.best_epoch
        result.val_loss, result.val_accuracy = state.val_loss, state.val_accuracy
        result.train_seconds, result.resumed_from_epoch = state.train_seconds, state.epoch
        result.history = [EpochReport(**row) for row in state.history]
        best = None if state.best_state is None else {k: v.to(device) for k, v in state.best_state.items()}
        self.progress = _Progress(state.epoch, best, state.best_loss, state.stale)

    def snapshot(self) -> TrainState:
        """Everything :meth:`restore` needs to continue after this epoch as if never stopped."""
        result, progress = self.result, self.progress
        return TrainState(
            epoch=progress.epoch, steps=result.steps, model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(), batch_order_rng=self.generator.get_state(),
            torch_rng=torch.get_rng_state(),
            cuda_rng=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            best_state=progress.best_state, best_loss=progress.best_loss, stale=progress.stale,
            best_epoch=result.best_epoch, val_loss=result.val_loss, val_accuracy=result.val_accuracy,
            train_seconds=time.perf_counter() - self.started,
            history=[{k: getattr(r, k) for k in _HISTORY_FIELDS} for r in result.history],
        )  # fmt: skip


def _fit(run: _Run) -> dict[str, Any] | None:
    """The epochs: train, validate, keep the best weights, stop early. Returns the best weights (None
    when no epoch finished)."""
    config, result, progress = run.config, run.result, run.progress
    try:
        for epoch in range(progress.epoch + 1, config.epochs + 1):
            if config.patience and progress.stale >= config.patience:
                break  # a resumed run that had already stopped early
            epoch_start = time.perf_counter()
            train_loss = _train_epoch(run)
            if train_loss is None:  # a non-finite loss: diverged, nothing of this epoch is kept
                break
            val_loss, val_scores = evaluate(run.model, run.task, run.data["validation"])
            progress.epoch = result.epochs_run = epoch
            if not math.isfinite(val_loss):
                result.history.append(_report(epoch, result, train_loss, val_loss, val_scores, epoch_start))
                result.status, result.diverged_step = "diverged", result.steps
                break
            if val_loss < progress.best_loss:
                progress.best_loss, progress.stale, result.best_epoch = val_loss, 0, epoch
                progress.best_state = copy.deepcopy(run.model.state_dict())
                result.val_loss, result.val_accuracy = val_loss, float(val_scores.mean())
            else:
                progress.stale += 1
            report = _report(epoch, result, train_loss, val_loss, val_scores, epoch_start)
            result.history.append(report)
            if run.on_epoch is not None:
                run.on_epoch(dataclasses.replace(report, snapshot=run.snapshot))
            if config.patience and progress.stale >= config.patience:
                break
    except StopTraining as stop:
        result.status = stop.status
    return progress.best_state


def _report(
    epoch: int, result: TrainResult, train_loss: float, val_loss: float, scores: torch.Tensor, began: float
) -> EpochReport:
    return EpochReport(
        epoch=epoch,
        step=result.steps,
        train_loss=train_loss,
        val_loss=val_loss,
        val_accuracy=float(scores.mean()),
        seconds=time.perf_counter() - began,
    )


def _train_epoch(run: _Run) -> float | None:
    """One pass over the training split in a seeded order; the mean loss, or None once a loss is not
    finite (the result is then marked diverged at that step)."""
    config, result, model, optimizer = run.config, run.result, run.model, run.optimizer
    inputs, target = run.data["train"]["inputs"], run.data["train"]["target"]
    noisy = config.input_noise > 0 and run.task.encoding == "linear"
    running, batches = 0.0, 0
    order = torch.randperm(len(target), generator=run.generator).to(inputs.device)
    for begin in range(0, len(order), config.batch_size):
        index = order[begin : begin + config.batch_size]
        x, y = inputs[index], target[index]
        if noisy:
            x = x + config.input_noise * torch.randn_like(x)
        loss = run.task.loss(model(x), y)
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
        if run.on_step is not None:
            run.on_step(result.steps, value)
    return running / max(batches, 1)
