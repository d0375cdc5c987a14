"""The temporal order problem (Hochreiter & Schmidhuber 1997, experiments 6a and 6b)."""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnbench import hookimpl
from rnnbench.core.registry import TaskRegistry
from rnnbench.errors import TaskOptionError
from rnnbench.tasks.base import Sizes, Task, log_uniform_lengths, spread_low

PAD, START, END = 0, 1, 2
DISTRACTORS = (3, 4, 5, 6)  # a, b, c, d
X, Y = 7, 8
# Where the relevant X/Y symbols sit, as fractions of the example's length: experiment 6a puts
# them at steps 10-20 and 50-60 of 100-110, experiment 6b at 10-20, 33-43 and 66-76.
WINDOWS = {2: ((0.1, 0.2), (0.5, 0.6)), 3: ((0.1, 0.2), (0.33, 0.43), (0.66, 0.76))}


class TemporalOrder(Task):
    """A sequence starts with E and ends with B; in between, distractors a-d and two (or three)
    X/Y symbols at widely separated positions. The class, read at the last step, is the order of
    the X/Y symbols: 4 classes with two symbols (XX, XY, YX, YY), 8 with three.

    Example lengths are log-uniform in [length / spread, length] (left-padded); the distance is
    from the first relevant symbol to the end.
    """

    name = "temporal_order"
    description = "Classify the order of 2 or 3 widely separated X/Y symbols among distractors"
    reference = "Hochreiter & Schmidhuber 1997 (experiment 6)"
    data_version = "temporal-order-1"
    output = "classes"
    head = "last"
    encoding = "one-hot"
    default_length = 100
    default_sizes = Sizes(train=10_000, validation=1_000, test=2_000)
    min_length = 12

    def __init__(
        self, length: int | None = None, symbols: int = 2, spread: float = 4.0, **sizes: Any
    ) -> None:
        super().__init__(length, **sizes)
        if symbols not in WINDOWS:
            raise TaskOptionError(
                f"task 'temporal_order': symbols must be 2 (4 classes) or 3 (8 classes), got {symbols!r}"
            )
        self.symbols, self.spread = symbols, self._spread(spread)

    input_size = 9

    @property
    def output_size(self) -> int:
        return 2**self.symbols

    @property
    def chance(self) -> float:
        return 1.0 / 2**self.symbols

    def options(self) -> dict[str, Any]:
        return {**super().options(), "symbols": self.symbols, "spread": self.spread}

    def generate(self, split: str, size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        steps = self.length
        lengths = log_uniform_lengths(rng, size, spread_low(steps, self.spread, self.min_length), steps)
        start = steps - lengths
        inputs = rng.choice(np.array(DISTRACTORS), size=(size, steps))
        inputs[np.arange(steps)[None, :] < start[:, None]] = PAD
        rows = np.arange(size)
        inputs[rows, start] = START
        inputs[:, steps - 1] = END
        label = np.zeros(size, dtype=np.int64)
        first = None
        for low, high in WINDOWS[self.symbols]:
            lo = np.floor(low * lengths).astype(np.int64)
            hi = np.maximum(np.floor(high * lengths).astype(np.int64), lo + 1)
            offset = lo + (rng.random(size) * (hi - lo)).astype(np.int64)
            position = start + np.clip(offset, 1, lengths - 2)
            is_y = rng.random(size) < 0.5
            inputs[rows, position] = np.where(is_y, Y, X)
            label = 2 * label + is_y
            first = position if first is None else first
        assert first is not None
        return {
            "inputs": inputs.astype(np.int64),
            "target": label,
            "distance": (steps - 1 - first).astype(np.int32),
            "length": lengths.astype(np.int32),
        }


@hookimpl
def register_tasks(register: TaskRegistry) -> None:
    register(
        "temporal_order",
        TemporalOrder,
        description=TemporalOrder.description,
        reference=TemporalOrder.reference,
    )
