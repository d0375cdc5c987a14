"""Test plugin: a cell whose trial worker allocates memory until Ray's memory monitor kills it.

In a Ray worker (never in the driver's pre-flight), the first training-mode forward call allocates
and touches ``RNNBENCH_TEST_HOG_GB`` GiB in 128 MiB steps, then waits; the test starts Ray with a
memory threshold just above what the machine already uses, so the monitor kills the worker.
"""

import os
import time

import numpy as np
from torch import nn

import rnnbench

_held = []


class Hog(nn.Module):
    def __init__(self, input_size, hidden_size, num_layers, dropout):
        super().__init__()
        self.rnn = nn.GRU(input_size, hidden_size, num_layers, batch_first=True)

    def forward(self, x):
        if self.training and not _held and _in_ray_worker():
            for _ in range(int(float(os.environ.get("RNNBENCH_TEST_HOG_GB", "2")) * 8)):
                _held.append(np.ones(128 * 2**20 // 8))  # 128 MiB, touched
                time.sleep(0.05)
            time.sleep(30)  # the monitor samples every few hundred ms
        return self.rnn(x)[0]


def _in_ray_worker():
    import ray

    return ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None


@rnnbench.hookimpl
def register_cells(register):
    register("memory-hog", Hog, description="Allocates until Ray's memory monitor kills it", reference="test")
