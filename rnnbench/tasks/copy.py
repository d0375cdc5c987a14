"""Copy memory (Arjovsky, Shah & Bengio 2016): recall 10 symbols after a long run of blanks."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rnnbench import hookimpl
from rnnbench.core.registry import TaskRegistry
from rnnbench.tasks.base import IGNORE_INDEX, Sizes, Task, log_uniform_lengths, spread_low

BLANK, DELIMITER = 0, 9
SYMBOLS = 8  # tokens 1..8
RECALL = 10


class Copy(Task):
    """Input: 10 symbols drawn from 8, T-1 blanks, a delimiter, 10 blanks (T + 20 steps).
    Output: blanks until the delimiter, then the 10 symbols. Tokens: 0 blank, 1-8 symbols,
    9 delimiter (one-hot); outputs: blank or one of the 8 symbols.

    T varies per example, log-uniform in [length / spread, length], left-padded (padding carries
    no loss); every recalled symbol sits T + 10 steps after its input. Accuracy is per recalled
    symbol; the memoryless baseline cross-entropy 10 log 8 / (T + 20) is logged as ``baseline_loss``.
    """

    name = "copy"
    description = "Recall 10 symbols (from 8) after T blanks (classification at every step)"
    reference = "Arjovsky, Shah & Bengio 2016; Hochreiter & Schmidhuber 1997"
    data_version = "copy-1"
    output = "classes"
    head = "sequence"
    encoding = "one-hot"
    default_length = 100
    default_sizes = Sizes(train=10_000, validation=1_000, test=2_000)
    min_length = 1

    def __init__(self, length: int | None = None, spread: float = 8.0, **sizes: Any) -> None:
        super().__init__(length, **sizes)
        self.spread = self._spread(spread)

    input_size = 10
    output_size = 1 + SYMBOLS
    chance = 1.0 / SYMBOLS

    def options(self) -> dict[str, Any]:
        return {**super().options(), "spread": self.spread}

    def generate(self, split: str, size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        blanks = self.length
        steps = blanks + 2 * RECALL
        lengths = log_uniform_lengths(rng, size, spread_low(blanks, self.spread, 1), blanks)
        start = blanks - lengths  # left padding
        symbols = rng.integers(1, SYMBOLS + 1, size=(size, RECALL))
        rows = np.arange(size)[:, None]
        positions = start[:, None] + np.arange(RECALL)[None, :]
        inputs = np.zeros((size, steps), dtype=np.int64)
        inputs[rows, positions] = symbols
        inputs[:, blanks + RECALL - 1] = DELIMITER
        target = np.full((size, steps), BLANK, dtype=np.int64)
        target[np.arange(steps)[None, :] < start[:, None]] = IGNORE_INDEX
        target[:, steps - RECALL :] = symbols
        return {
            "inputs": inputs,
            "target": target,
            "distance": (lengths + RECALL).astype(np.int32),
            "length": (lengths + 2 * RECALL).astype(np.int32),
        }

    def baseline_loss(self, lengths: np.ndarray) -> float:
        """Cross-entropy per scored step of the memoryless strategy over these examples."""
        return float(RECALL * math.log(SYMBOLS) * len(lengths) / np.sum(lengths))

    def scored_steps(self, target: Any) -> Any:
        """Accuracy counts the recalled symbols only, not the blanks."""
        return target > BLANK


@hookimpl
def register_tasks(register: TaskRegistry) -> None:
    register("copy", Copy, description=Copy.description, reference=Copy.reference)
