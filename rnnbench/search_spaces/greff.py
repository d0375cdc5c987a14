"""The ranges of Greff et al., "LSTM: A Search Space Odyssey" (IEEE TNNLS 2017), to reproduce it.

One hidden layer trained with stochastic gradient descent with Nesterov momentum: hidden size
log-uniform in [20, 200], learning rate log-uniform in [1e-6, 1e-2], momentum 1 - log-uniform[0.01, 1]
(so half the draws are above 0.9), Gaussian input noise with std uniform in [0, 1], no clipping.

Input noise only acts on real-valued inputs: on tasks with one-hot inputs the sweep neither samples
nor records it (``rnnbench.search_spaces.overrides.for_task``), so fANOVA can never credit it there.
The sampled quantity behind momentum is recorded as ``momentum_complement`` (1 - momentum), the
parameter fANOVA sees, as Greff et al. analysed it.
"""

from __future__ import annotations

from typing import Any

from rnnbench import hookimpl
from rnnbench.core.registry import SearchSpaceRegistry


def greff_space(trial: Any) -> dict[str, Any]:
    complement = trial.suggest_float("momentum_complement", 0.01, 1.0, log=True)
    return {
        "depth": 1,
        "width": trial.suggest_int("width", 20, 200, log=True),
        "lr": trial.suggest_float("lr", 1e-6, 1e-2, log=True),
        "momentum": 1.0 - complement,
        "momentum_complement": complement,
        "input_noise": trial.suggest_float("input_noise", 0.0, 1.0),
        "optimizer": "nesterov",
        "clip": None,
    }


@hookimpl
def register_search_spaces(register: SearchSpaceRegistry) -> None:
    register(
        "greff",
        greff_space,
        description="SGD with Nesterov momentum; width 20-200 (log), lr 1e-6-1e-2 (log), momentum "
        "1 - log-uniform[0.01, 1], input noise 0-1",
        reference="Greff, Srivastava, Koutník, Steunebrink & Schmidhuber 2017, LSTM: A Search Space Odyssey",
    )
