"""rnnbench: a plugin-based AutoML benchmarking harness for recurrent neural networks."""

from __future__ import annotations

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
from rnnbench.hookspecs import hookimpl
from rnnbench.plugin_manager import (
    cell_names,
    get_cell,
    get_search_space,
    get_task,
    search_space_names,
    task_names,
)
from rnnbench.registry import CellSpec, SearchSpaceSpec, TaskSpec
from rnnbench.version import __version__

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
    "search_space_names",
    "task_names",
]
