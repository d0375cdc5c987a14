"""The plugin manager: built-ins, entry points and one-file plugins, loaded once per process, and the
look-ups of what they registered."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import os
import sys
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Literal, TypeVar

import pluggy

from rnnbench.core import hookspecs
from rnnbench.core.registry import (
    CellRegistry,
    CellSpec,
    Registry,
    SearchSpaceRegistry,
    SearchSpaceSpec,
    TaskRegistry,
    TaskSpec,
)
from rnnbench.errors import PluginError, PluginLoadError, UnknownNameError
from rnnbench.version import __version__

DEFAULT_PLUGINS: tuple[str, ...] = (
    "rnnbench.plugins.lstm",
    "rnnbench.plugins.gru",
    "rnnbench.plugins.rnn",
    "rnnbench.plugins.peephole",
    "rnnbench.plugins.odyssey",
    "rnnbench.tasks.adding",
    "rnnbench.tasks.copy",
    "rnnbench.tasks.temporal_order",
    "rnnbench.tasks.digits",
    "rnnbench.tasks.mnist1d",
    "rnnbench.tasks.hf",
    "rnnbench.search_spaces.default",
    "rnnbench.search_spaces.greff",
)
ENTRY_POINT_GROUP = "rnnbench"
S = TypeVar("S", CellSpec, TaskSpec, SearchSpaceSpec)
PLUGINS_ENV = "RNNBENCH_PLUGINS"

Source = Literal["built-in", "entry point", "file", "module"]


@dataclass
class PluginInfo:
    """What ``rnnbench plugins`` shows about one plugin."""

    name: str
    source: Source
    location: str
    version: str | None
    registered: dict[str, list[str]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        detail = self.source if self.location == self.name else f"{self.source} {self.location}"
        return f"{self.name!r} ({detail})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "location": self.location,
            "version": self.version,
            "registered": self.registered,
        }


@dataclass
class Registries:
    cells: CellRegistry
    tasks: TaskRegistry
    search_spaces: SearchSpaceRegistry

    def by_hook(self) -> dict[str, Registry[Any]]:
        return {
            "register_cells": self.cells,
            "register_tasks": self.tasks,
            "register_search_spaces": self.search_spaces,
        }


pm = pluggy.PluginManager("rnnbench")
pm.add_hookspecs(hookspecs)

_infos: dict[str, PluginInfo] = {}
# Installed plugins that failed (import, hook, clash): disabled with a warning so the rest keep working.
_broken: dict[str, str] = {}
_defaults_loaded = False
_registries: Registries | None = None


def load_plugins(paths: tuple[str | os.PathLike[str], ...] | list[Any] = ()) -> None:
    """Load the built-ins and entry points (once), then the one-file plugins named in
    ``RNNBENCH_PLUGINS`` and ``paths``.

    Afterwards ``RNNBENCH_PLUGINS`` lists every file plugin loaded, so that child
    processes (Ray workers) load exactly the same set.
    """
    global _defaults_loaded
    if not _defaults_loaded:
        for module_name in DEFAULT_PLUGINS:
            if module_name in _infos:  # a retry after an entry point failed to load
                continue
            register_plugin(
                importlib.import_module(module_name),
                name=module_name,
                source="built-in",
                location=module_name,
                version=__version__,
            )
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            if entry_point.name not in _infos:
                _load_entry_point(entry_point)
        _defaults_loaded = True
    requested = [load_plugin_file(path).location for path in [*env_plugin_paths(), *paths]]
    if paths:
        os.environ[PLUGINS_ENV] = os.pathsep.join(dict.fromkeys(requested))


def env_plugin_paths() -> list[str]:
    return [p for p in os.environ.get(PLUGINS_ENV, "").split(os.pathsep) if p.strip()]


def load_plugin_file(path: str | os.PathLike[str]) -> PluginInfo:
    """Import a one-file plugin by path and register it (a second load of the same file is a no-op)."""
    resolved = Path(path).expanduser().resolve()
    key = str(resolved)
    if key in _infos:
        return _infos[key]
    where = f"plugin file {path} (from --plugin or {PLUGINS_ENV})"
    if not resolved.is_file():
        raise PluginLoadError(f"{where} does not exist or is not a file")
    if resolved.suffix != ".py":
        raise PluginLoadError(f"{where} is not a .py file")
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    module_name = f"rnnbench_plugin_{resolved.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise PluginLoadError(f"{where} failed to import: {type(exc).__name__}: {exc}") from exc
    return register_plugin(
        module,
        name=key,
        source="file",
        location=key,
        version=getattr(module, "__version__", None),
    )


def _load_entry_point(entry_point: EntryPoint) -> None:
    dist = getattr(entry_point, "dist", None)
    version = dist.version if dist is not None else None
    where = f"{entry_point.value} from distribution {dist.name if dist else '?'} {version or ''}".strip()
    try:
        plugin = entry_point.load()
        register_plugin(plugin, name=entry_point.name, source="entry point", location=where, version=version)
    except Exception as exc:
        cause = exc if isinstance(exc, PluginError) else f"failed to import: {type(exc).__name__}: {exc}"
        _disable(
            entry_point.name, f"plugin {entry_point.name!r} (entry point {where}) {cause}", registered=False
        )


def _disable(name: str, message: str, registered: bool = True) -> None:
    """Set an installed plugin aside: the user did not name it, so the others keep working without it."""
    if registered:
        pm.unregister(name=name)
        _infos.pop(name, None)
    if name not in _broken:
        logging.getLogger("rnnbench").warning("warning: %s; it is disabled", message)
    _broken[name] = message


def broken_plugins() -> dict[str, str]:
    """Installed plugins disabled because they failed, with the reason."""
    registries()
    return dict(_broken)


def register_plugin(
    plugin: object,
    *,
    name: str,
    source: Source = "module",
    location: str | None = None,
    version: str | None = None,
) -> PluginInfo:
    """Register a plugin object (usually a module with ``@hookimpl`` functions)."""
    global _registries
    info = PluginInfo(name=name, source=source, location=location or name, version=version)
    if pm.has_plugin(name) or pm.is_registered(plugin):
        other = _infos.get(name)
        raise PluginLoadError(
            f"plugin {info.label} cannot be registered: the name {name!r} or the same object "
            f"is already registered{f' by {other.label}' if other else ''}"
        )
    try:
        pm.register(plugin, name=name)
        pm.check_pending()  # a misspelled hook name would otherwise be silently ignored
    except pluggy.PluginValidationError as exc:
        if pm.is_registered(plugin):
            pm.unregister(plugin)
        raise PluginLoadError(
            f"plugin {info.label} has an invalid hook: {exc}. Valid hooks: {', '.join(hook_names())}"
        ) from exc
    if not pm.get_hookcallers(plugin):
        pm.unregister(plugin)
        raise PluginLoadError(
            f"plugin {info.label} implements no rnnbench hook; decorate its functions with "
            f"@rnnbench.hookimpl and name them after a hook: {', '.join(hook_names())}"
        )
    _infos[name] = info
    _registries = None
    return info


def unregister_plugin(name: str) -> None:
    global _registries
    plugin = pm.get_plugin(name)
    if plugin is None:
        raise PluginError(f"no plugin named {name!r} is registered")
    pm.unregister(plugin)
    info = _infos.pop(name, None)
    _registries = None
    if info is not None and info.source == "file":  # so that child processes do not load it either
        remaining = [p for p in env_plugin_paths() if Path(p).expanduser().resolve() != Path(info.location)]
        os.environ[PLUGINS_ENV] = os.pathsep.join(remaining)


def hook_names() -> list[str]:
    return sorted(name for name in dir(hookspecs) if name.startswith("register_"))


def registries() -> Registries:
    """Load the plugins if needed and return what they registered (built once, then cached)."""
    global _registries
    load_plugins()
    while _registries is None:
        try:
            _registries = _collect()
        except _InstalledPluginFailed as failed:
            _disable(failed.name, str(failed.error))
    return _registries


class _InstalledPluginFailed(Exception):
    def __init__(self, name: str, error: Exception) -> None:
        self.name, self.error = name, error


def _collect() -> Registries:
    found = Registries(CellRegistry(), TaskRegistry(), SearchSpaceRegistry())
    for info in _infos.values():
        info.registered = {}
    for hook_name, registry in found.by_hook().items():
        # Call each implementation on its own so every registration is attributed to its plugin.
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            info = _infos[impl.plugin_name]
            with registry.registering_for(info.name, info.label) as added:
                try:
                    try:
                        impl.function(register=registry)
                    except PluginError:
                        raise
                    except Exception as exc:
                        raise PluginLoadError(
                            f"plugin {info.label}: hook {hook_name} raised {type(exc).__name__}: {exc}"
                        ) from exc
                except PluginError as exc:
                    if info.source == "entry point":  # an installed plugin the user did not name
                        raise _InstalledPluginFailed(info.name, exc) from exc
                    raise
            if added:
                info.registered.setdefault(registry.kind, []).extend(added)
    return found


def plugin_infos() -> list[PluginInfo]:
    """Every loaded plugin with what it registered."""
    registries()
    return list(_infos.values())


def get_cell(name: str) -> CellSpec:
    """The registered cell ``name``; UnknownCellError lists the valid names."""
    return _lookup(registries().cells, name)


def get_task(name: str) -> TaskSpec:
    """The registered task ``name``; UnknownTaskError lists the valid names."""
    return _lookup(registries().tasks, name)


def get_search_space(name: str) -> SearchSpaceSpec:
    """The registered search space ``name``; UnknownSearchSpaceError lists the valid names."""
    return _lookup(registries().search_spaces, name)


def _lookup(registry: Registry[S], name: str) -> S:
    try:
        return registry.get(name)
    except UnknownNameError as exc:
        if _broken:  # the name may belong to an installed plugin that failed to load
            exc.args = (f"{exc}. Disabled plugins: {'; '.join(_broken.values())}",)
        raise


def cell_names() -> list[str]:
    return registries().cells.names()


def task_names() -> list[str]:
    return registries().tasks.names()


def search_space_names() -> list[str]:
    return registries().search_spaces.names()
