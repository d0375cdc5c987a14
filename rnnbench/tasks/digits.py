"""Real data that works offline: scikit-learn's 8x8 handwritten digits, read pixel by pixel."""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnbench import hookimpl
from rnnbench.core.registry import TaskRegistry
from rnnbench.errors import TaskOptionError
from rnnbench.tasks.base import SPLITS, Sizes, Task

PIXELS = 64


class Digits(Task):
    """The 1,797 8x8 digit images of the UCI optical-digits test set, shipped inside
    scikit-learn, fed one pixel (intensity / 16) per step in row-major order: 64 steps, 10 classes.
    The splits are a seeded permutation of the images (disjoint). The distance is from the first
    inked pixel to the last step.
    """

    name = "digits"
    description = "Classify 8x8 handwritten digits read pixel by pixel (64 steps, 10 classes)"
    reference = (
        "Alpaydin & Kaynak 1998 (UCI optical digits), via scikit-learn; pixel-by-pixel as Le et al. 2015"
    )
    data_version = "digits-1"
    output = "classes"
    head = "last"
    encoding = "linear"
    default_length = PIXELS
    default_sizes = Sizes(train=1_297, validation=250, test=250)

    def __init__(self, length: int | None = None, **sizes: Any) -> None:
        if length not in (None, PIXELS):
            raise TaskOptionError(f"task 'digits': the length is fixed at {PIXELS} pixels, got {length!r}")
        super().__init__(PIXELS, **sizes)
        total = self.sizes.train + self.sizes.validation + self.sizes.test
        if total > 1797:
            raise TaskOptionError(
                f"task 'digits': train + validation + test sizes add up to {total}, "
                "but the data set has 1797 images"
            )

    input_size = 1
    output_size = 10
    chance = 0.1

    def build_split(self, split: str, seed: int) -> Any:
        import datasets
        from sklearn.datasets import load_digits

        images, labels = load_digits(return_X_y=True)
        order = np.random.default_rng(seed).permutation(len(labels))  # one permutation: disjoint splits
        sizes = [self.sizes.of(s) for s in SPLITS]
        begin = sum(sizes[: SPLITS.index(split)])
        chosen = order[begin : begin + self.sizes.of(split)]
        pixels = (images[chosen] / 16.0).astype(np.float32)
        inked = pixels > 0
        first_ink = np.where(inked.any(axis=1), inked.argmax(axis=1), PIXELS - 1)
        columns = {
            "inputs": pixels[:, :, None],
            "target": labels[chosen].astype(np.int64),
            "distance": (PIXELS - 1 - first_ink).astype(np.int32),
            "length": np.full(len(chosen), PIXELS, dtype=np.int32),
        }
        return datasets.Dataset.from_dict(columns, features=self.features(columns), split=split)


@hookimpl
def register_tasks(register: TaskRegistry) -> None:
    register("digits", Digits, description=Digits.description, reference=Digits.reference)
