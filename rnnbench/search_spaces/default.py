"""The default search space: depth, width, gradient clipping and learning rate."""

from __future__ import annotations

from typing import Any

from rnnbench import hookimpl
from rnnbench.core.registry import SearchSpaceRegistry


def default_space(trial: Any) -> dict[str, Any]:
    """depth 1..4; width 16..512 (log); clipping off or a norm 0.1..10 (log); lr 1e-4..3e-2 (log)."""
    depth = trial.suggest_int("depth", 1, 4)
    width = trial.suggest_int("width", 16, 512, log=True)
    clipping = trial.suggest_categorical("clipping", ["off", "norm"])
    clip = trial.suggest_float("clip", 0.1, 10.0, log=True) if clipping == "norm" else None
    lr = trial.suggest_float("lr", 1e-4, 3e-2, log=True)
    return {"depth": depth, "width": width, "clip": clip, "lr": lr}


@hookimpl
def register_search_spaces(register: SearchSpaceRegistry) -> None:
    register(
        "default",
        default_space,
        description="depth 1-4, width 16-512 (log), clipping off or norm 0.1-10 (log), lr 1e-4-3e-2 (log)",
        reference="rnnbench; learning rate first, after Greff et al. 2017",
    )
