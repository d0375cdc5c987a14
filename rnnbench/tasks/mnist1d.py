"""MNIST-1D (Greydanus 2020): ten 1-D digit templates, padded, translated, sheared and noised into
length-40 sequences; built offline from the ``mnist1d`` package's generator, never downloaded."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from rnnbench import hookimpl
from rnnbench.core.registry import TaskRegistry
from rnnbench.errors import TaskOptionError
from rnnbench.tasks.base import Sizes, Task

STEPS = 40
TRAIN_POOL = 4_000  # the standard split: 4,000 training and 1,000 test examples
TEST_POOL = 1_000


@functools.lru_cache(maxsize=2)
def standard_dataset(shuffled: bool) -> dict[str, np.ndarray]:
    """The paper's data set: ``make_dataset(get_dataset_args())`` (seed 42), optionally with its time
    steps shuffled by one fixed permutation (the paper's shuffled variant).

    Generated once per variant and process (6 s here, and every split is cut from it), its arrays
    read-only."""
    data = _generated(shuffled)
    for value in data.values():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    return data


def _generated(shuffled: bool) -> dict[str, np.ndarray]:
    import random

    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.shuffle_seq = shuffled
    # make_dataset seeds Python's and numpy's global generators: keep the caller's streams intact.
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        return make_dataset(args)
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


class Mnist1D(Task):
    """MNIST-1D's standard 4,000 / 1,000 split of length-40 sequences, one value per step, 10 classes.

    The test split is the standard test set; validation is carved from the standard training set by a
    permutation seeded with the data seed (``validation_size`` examples), the rest is training. Every
    label depends on the whole sequence: the distance of an example is 39, so the test set has one
    distance bucket and no LRD measure (the leaderboard ranks by accuracy).
    """

    name = "mnist1d"
    description = "Classify MNIST-1D sequences (40 steps, 10 classes; shuffled=true: steps permuted)"
    reference = "Greydanus 2020, Scaling down deep learning with MNIST-1D (arXiv:2011.14439)"
    data_version = "mnist1d-1"
    output = "classes"
    head = "last"
    encoding = "linear"
    default_length = STEPS
    default_sizes = Sizes(train=3_500, validation=500, test=1_000)

    def __init__(self, length: int | None = None, shuffled: bool = False, **sizes: Any) -> None:
        if length not in (None, STEPS):
            raise TaskOptionError(f"task 'mnist1d': the length is fixed at {STEPS} steps, got {length!r}")
        if not isinstance(shuffled, bool):
            raise TaskOptionError(f"task 'mnist1d': shuffled must be true or false, got {shuffled!r}")
        super().__init__(STEPS, **sizes)
        self.shuffled = shuffled
        if self.sizes.train + self.sizes.validation > TRAIN_POOL:
            raise TaskOptionError(
                f"task 'mnist1d': train_size + validation_size is {self.sizes.train + self.sizes.validation}, "
                f"but the standard training set has {TRAIN_POOL} examples"
            )
        if self.sizes.test > TEST_POOL:
            raise TaskOptionError(
                f"task 'mnist1d': test_size {self.sizes.test} is more than the standard test set's {TEST_POOL}"
            )

    input_size = 1
    output_size = 10
    chance = 0.1

    def options(self) -> dict[str, Any]:
        return {**super().options(), "shuffled": self.shuffled}

    def build_split(self, split: str, seed: int) -> Any:
        import datasets

        data = standard_dataset(self.shuffled)
        if split == "test":
            x, y = data["x_test"][: self.sizes.test], data["y_test"][: self.sizes.test]
        else:
            order = np.random.default_rng(seed).permutation(len(data["y"]))  # one permutation: disjoint
            begin = 0 if split == "validation" else self.sizes.validation
            chosen = order[begin : begin + self.sizes.of(split)]
            x, y = data["x"][chosen], data["y"][chosen]
        columns = {
            "inputs": np.asarray(x, dtype=np.float32)[:, :, None],
            "target": np.asarray(y, dtype=np.int64),
            "distance": np.full(len(y), STEPS - 1, dtype=np.int32),
            "length": np.full(len(y), STEPS, dtype=np.int32),
        }
        return datasets.Dataset.from_dict(columns, features=self.features(columns), split=split)


@hookimpl
def register_tasks(register: TaskRegistry) -> None:
    register("mnist1d", Mnist1D, description=Mnist1D.description, reference=Mnist1D.reference)
