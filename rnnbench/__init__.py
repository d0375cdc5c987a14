"""rnnbench: a plugin-based AutoML benchmarking harness for recurrent neural networks."""

from __future__ import annotations

from typing import Any

from rnnbench.core.hookspecs import hookimpl
from rnnbench.core.plugin_manager import (
    cell_names,
    get_cell,
    get_search_space,
    get_task,
    search_space_names,
    task_names,
)
from rnnbench.core.registry import CellSpec, SearchSpaceSpec, TaskSpec
from rnnbench.errors import (
    CellContractError,
    DuplicateNameError,
    InvalidRegistrationError,
    PluginError,
    PluginLoadError,
    RnnbenchError,
    UnknownCellError,
    UnknownNameError,
    UnknownSearchSpaceError,
    UnknownTaskError,
)
from rnnbench.version import __version__


def load_model(model_uri: str, tracking_uri: str | None = None) -> Any:
    """A model rnnbench logged (``models:/m-...``), rebuilt from its recipe (JSON) and weights (safetensors):
    nothing is unpickled, so a shared store's files run no code (rnnbench.tracking.models)."""
    from rnnbench.tracking.models import load_model as load

    return load(model_uri, tracking_uri)


__all__ = [
    "CellContractError",
    "CellSpec",
    "DuplicateNameError",
    "InvalidRegistrationError",
    "PluginError",
    "PluginLoadError",
    "RnnbenchError",
    "SearchSpaceSpec",
    "TaskSpec",
    "UnknownCellError",
    "UnknownNameError",
    "UnknownSearchSpaceError",
    "UnknownTaskError",
    "__version__",
    "cell_names",
    "get_cell",
    "get_search_space",
    "get_task",
    "hookimpl",
    "load_model",
    "search_space_names",
    "task_names",
]
