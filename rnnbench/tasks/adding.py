"""The adding problem (Hochreiter & Schmidhuber 1997), in the two-channel form of Le et al. 2015."""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnbench import hookimpl
from rnnbench.core.registry import TaskRegistry
from rnnbench.tasks.base import Sizes, Task, log_uniform_lengths, spread_low


class Adding(Task):
    """Channel 0 holds values in U[0, 1], channel 1 marks two of them (one in each half of the
    example); the target, read at the last step, is the sum of the two marked values.

    Example lengths are log-uniform in [length / spread, length] (left-padded with zeros), so the
    distance from the first marker to the end covers several log2 buckets; ``spread=1`` gives
    the classic fixed-length problem.
    """

    name = "adding"
    description = "Sum the two marked values of a long sequence (regression, success: |error| < 0.04)"
    reference = "Hochreiter & Schmidhuber 1997; Le, Jaitly & Hinton 2015"
    data_version = "adding-1"
    output = "regression"
    head = "last"
    encoding = "linear"
    default_length = 100
    default_sizes = Sizes(train=10_000, validation=1_000, test=2_000)
    min_length = 4

    def __init__(self, length: int | None = None, spread: float = 8.0, **sizes: Any) -> None:
        super().__init__(length, **sizes)
        self.spread = self._spread(spread)

    input_size = 2
    output_size = 1

    @property
    def chance(self) -> float:
        # Always predicting 1.0 (the mode of a sum of two U[0, 1]) succeeds with P(|S - 1| < tol).
        return 1.0 - (1.0 - self.tolerance) ** 2

    def options(self) -> dict[str, Any]:
        return {**super().options(), "spread": self.spread}

    def generate(self, split: str, size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        steps = self.length
        lengths = log_uniform_lengths(rng, size, spread_low(steps, self.spread, 2), steps)
        start = steps - lengths
        half = lengths // 2
        first = start + (rng.random(size) * half).astype(np.int64)
        second = start + half + (rng.random(size) * (lengths - half)).astype(np.int64)
        values = rng.random((size, steps), dtype=np.float32)
        values[np.arange(steps)[None, :] < start[:, None]] = 0.0
        markers = np.zeros((size, steps), dtype=np.float32)
        rows = np.arange(size)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        return {
            "inputs": np.stack([values, markers], axis=-1),
            "target": (values[rows, first] + values[rows, second]).astype(np.float32),
            "distance": (steps - 1 - first).astype(np.int32),
            "length": lengths.astype(np.int32),
        }


@hookimpl
def register_tasks(register: TaskRegistry) -> None:
    register("adding", Adding, description=Adding.description, reference=Adding.reference)
