"""The ranges of Greff et al., "LSTM: A Search Space Odyssey" (IEEE TNNLS 2017), to reproduce it.

One hidden layer trained with SGD and momentum: hidden size log-uniform in [20, 200], learning
rate log-uniform in [1e-6, 1e-2], momentum uniform in [0, 0.99], Gaussian input noise with std
uniform in [0, 1] (on real-valued inputs), no clipping.
"""

from __future__ import annotations

from typing import Any

from rnnbench import hookimpl
from rnnbench.registry import SearchSpaceRegistry


def greff_space(trial: Any) -> dict[str, Any]:
    return {
        "depth": 1,
        "width": trial.suggest_int("width", 20, 200, log=True),
        "lr": trial.suggest_float("lr", 1e-6, 1e-2, log=True),
        "momentum": trial.suggest_float("momentum", 0.0, 0.99),
        "input_noise": trial.suggest_float("input_noise", 0.0, 1.0),
        "optimizer": "sgd",
        "clip": None,
    }


@hookimpl
def register_search_spaces(register: SearchSpaceRegistry) -> None:
    register(
        "greff",
        greff_space,
        description="SGD with momentum; width 20-200 (log), lr 1e-6-1e-2 (log), momentum 0-0.99, input noise 0-1",
        reference="Greff, Srivastava, Koutník, Steunebrink & Schmidhuber 2017, LSTM: A Search Space Odyssey",
    )
