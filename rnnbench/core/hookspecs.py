"""The pluggy hook specifications: every extension point rnnbench offers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pluggy import HookimplMarker, HookspecMarker

if TYPE_CHECKING:
    from rnnbench.core.registry import CellRegistry, SearchSpaceRegistry, TaskRegistry

hookspec = HookspecMarker("rnnbench")
hookimpl = HookimplMarker("rnnbench")


@hookspec
def register_cells(register: CellRegistry) -> None:
    """Register recurrent cell backends: register("gru", build_gru, description=..., reference=...)."""


@hookspec
def register_tasks(register: TaskRegistry) -> None:
    """Register benchmark tasks: register("adding", build_adding, description=..., reference=...)."""


@hookspec
def register_search_spaces(register: SearchSpaceRegistry) -> None:
    """Register Optuna define-by-run search spaces: register("default", suggest, description=..., reference=...)."""
