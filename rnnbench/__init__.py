"""rnnbench: a plugin-based AutoML benchmarking harness for recurrent neural networks."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

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
from rnnbench.registry import CellSpec, SearchSpaceSpec, TaskSpec

try:
    __version__ = version("rnnbench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"


def get_cell(name: str) -> CellSpec:
    """The registered cell ``name``; UnknownCellError lists the valid names."""
    return _lookup("cells", name)


def get_task(name: str) -> TaskSpec:
    """The registered task ``name``; UnknownTaskError lists the valid names."""
    return _lookup("tasks", name)


def get_search_space(name: str) -> SearchSpaceSpec:
    """The registered search space ``name``; UnknownSearchSpaceError lists the valid names."""
    return _lookup("search_spaces", name)


def _lookup(kind: str, name: str) -> Any:
    from rnnbench.plugins import broken_plugins, registries

    try:
        return getattr(registries(), kind).get(name)
    except UnknownNameError as exc:
        broken = broken_plugins()
        if broken:  # the name may belong to an installed plugin that failed to load
            exc.args = (f"{exc}. Disabled plugins: {'; '.join(broken.values())}",)
        raise


def cell_names() -> list[str]:
    from rnnbench.plugins import registries

    return registries().cells.names()


def task_names() -> list[str]:
    from rnnbench.plugins import registries

    return registries().tasks.names()


def search_space_names() -> list[str]:
    from rnnbench.plugins import registries

    return registries().search_spaces.names()


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
