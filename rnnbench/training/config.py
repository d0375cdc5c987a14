"""What one training run is: a point of the search space plus everything else that determines it.

The fields of ``TrainConfig`` are the one list of training settings: a sweep's ``[train]`` table, the
worker that builds a trial's configuration and ``rnnbench reseed`` (rebuilding a configuration from an
MLflow run's params) all read them from the dataclass.
"""

from __future__ import annotations

import math
import typing
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from rnnbench.errors import RnnbenchError, TrainingConfigError

if TYPE_CHECKING:
    from rnnbench.tasks.base import Task

MAX_SEED = 2**32 - 1  # numpy's generators take seeds in [0, 2**32 - 1]
OPTIMIZERS = ("adam", "sgd", "nesterov", "rmsprop")  # nesterov: SGD with Nesterov momentum (Greff et al.)


@dataclass
class TrainConfig:
    """One point of the search space plus everything else that determines a training run."""

    cell: str
    task: str
    depth: int = 1
    width: int = 64
    clip: float | None = 1.0  # gradient-norm clipping; None or 0 turns it off
    lr: float = 3e-3
    epochs: int = 30
    batch_size: int = 64
    seed: int = 0  # model initialisation and batch order
    data_seed: int = 0  # the task's data: the same for every trial of a comparison
    optimizer: str = "adam"
    momentum: float = 0.9  # for sgd, nesterov and rmsprop
    weight_decay: float = 0.0
    dropout: float = 0.0  # between stacked layers
    input_noise: float = 0.0  # std of Gaussian noise added to linear inputs in training (Greff et al.)
    patience: int = 10  # epochs without a better validation loss before stopping; 0 never stops early
    threads: int | None = None  # torch intra-op threads; None leaves torch's default
    device: str = "auto"  # auto: cuda when available, else cpu
    task_options: dict[str, Any] = field(default_factory=dict)
    cache_dir: str | None = None

    def validate(self) -> None:
        def fail(name: str, rule: str) -> None:
            raise TrainingConfigError(f"{name} must be {rule}, got {getattr(self, name)!r}")

        for name in ("depth", "width", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                fail(name, "a positive integer")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            fail("lr", "a positive number")
        if self.clip is not None and not (math.isfinite(self.clip) and self.clip >= 0):
            fail("clip", "a non-negative number (0 or none: no clipping)")
        if self.optimizer not in OPTIMIZERS:
            fail("optimizer", f"one of {', '.join(OPTIMIZERS)}")
        if not 0.0 <= self.dropout < 1.0:
            fail("dropout", "in [0, 1)")
        for name in ("momentum", "weight_decay", "input_noise"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                fail(name, "a non-negative number")
        for name in ("seed", "data_seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
                fail(name, f"an integer in [0, {MAX_SEED}] (numpy's seed range)")
        if self.patience < 0:
            fail("patience", "0 (off) or a positive integer")
        if self.threads is not None and self.threads < 1:
            fail("threads", "a positive integer")

    def params(self) -> dict[str, Any]:
        return asdict(self)


# Named by a sweep's own settings (its cells, task, epochs, seed and task options), not by [train].
SWEEP_FIELDS = frozenset({"cell", "task", "epochs", "seed", "task_options"})
# Where a run executes, not what it trains: set on each machine, never rebuilt from a record.
PLACEMENT_FIELDS = frozenset({"threads", "device", "cache_dir"})


def field_types() -> dict[str, type]:
    """Each scalar field's type (int, float or str; ``float | None`` counts as float)."""
    hints = typing.get_type_hints(TrainConfig)
    found = {}
    for f in fields(TrainConfig):
        kinds = [t for t in typing.get_args(hints[f.name]) or (hints[f.name],) if t is not type(None)]
        if len(kinds) == 1 and kinds[0] in (int, float, str):
            found[f.name] = kinds[0]
    return found


def trainable_fields() -> dict[str, type]:
    """The fields a sweep's [train] table may fix for every trial (its space samples the rest)."""
    return {k: t for k, t in field_types().items() if k not in SWEEP_FIELDS | PLACEMENT_FIELDS}


def recorded_fields() -> dict[str, type]:
    """The fields that an MLflow run's params hold and a configuration is rebuilt from."""
    return {k: t for k, t in field_types().items() if k not in PLACEMENT_FIELDS}


def parse_option(text: str) -> tuple[str, Any]:
    """``key=value`` with value read as int, float, true/false/none, or else kept as text."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise RnnbenchError(f"task option {text!r} must look like KEY=VALUE")
    value: Any = raw
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        value = lowered == "true"
    elif lowered in ("none", "null"):
        value = None
    else:
        for cast in (int, float):
            try:
                value = cast(raw)
                break
            except ValueError:
                continue
    return key.strip(), value


def build_task(config: TrainConfig) -> Task:
    """The configuration's task, built from its options (neither torch nor datasets imported)."""
    from rnnbench.core.plugin_manager import get_task

    return get_task(config.task).build(**config.task_options)
