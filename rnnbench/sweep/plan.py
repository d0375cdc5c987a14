"""A sweep's plan: every check that needs no cluster (plugins, task options and data, space overrides,
store), and what each cell's trials are given and recorded with."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnbench.analysis.setups import PATH_OPTIONS
from rnnbench.core.plugin_manager import get_cell, get_search_space, get_task, plugin_infos
from rnnbench.core.registry import SearchSpaceSpec
from rnnbench.errors import RnnbenchError
from rnnbench.search_spaces.overrides import check_overrides
from rnnbench.sweep.settings import SweepConfigError, SweepSettings, validate
from rnnbench.sweep.worker import TrialSpec
from rnnbench.tasks.base import CACHE_ENV, Task
from rnnbench.tracking.store import check_tracking_uri, resolve_tracking_uri
from rnnbench.training.config import TrainConfig
from rnnbench.version import __version__


@dataclass
class SweepPlan:
    """A checked sweep: its settings, search space and task, and the plugins behind its cells."""

    settings: SweepSettings
    space: SearchSpaceSpec
    task: Task
    task_options: dict[str, Any]  # as the workers get them: data paths absolute
    given_options: dict[str, Any]  # as the user typed them: what the set-up is named and identified by
    plugin_paths: tuple[str, ...]  # one-file plugins, loaded again in every worker
    plugins: dict[str, str]  # cell -> the plugin that registered it
    versions: dict[str, str | None]  # cell -> that plugin's version

    def trial_spec(self, cell: str) -> TrialSpec:
        """What every trial of ``cell`` is given besides its sampled values."""
        s = self.settings
        # $RNNBENCH_CACHE_DIR is read here, where the command runs: the workers of a cluster the sweep
        # joins were started with the environment of whoever started that cluster, not this one's.
        cache_dir = s.cache_dir or os.environ.get(CACHE_ENV)
        return TrialSpec(
            cell=cell, task=s.task, epochs=s.epochs, seed=s.seed, cpus_per_trial=s.cpus_per_trial,
            task_options=self.task_options, cache_dir=str(Path(cache_dir).expanduser().resolve()) if cache_dir else None,
            train=dict(s.train), plugin_paths=self.plugin_paths,
        )  # fmt: skip

    def trial_params(self, cell: str, gpus: float) -> dict[str, Any]:
        """The MLflow params every trial run of ``cell`` shares (its sampled values are added)."""
        s = self.settings
        params = {
            "cell": cell, "task": s.task, "space": s.space, "seed": s.seed, "metric": s.metric,
            "epochs": s.epochs, "length": self.task_options.get("length"), "plugin": self.plugins[cell],
            "plugin_version": self.versions[cell] or "unknown", "cpus_per_trial": s.cpus_per_trial,
            "gpus_per_trial": gpus, "data_seed": self.data_seed, "input_encoding": self.task.encoding,
            # Every option of the task as built (defaults too): the set-up the leaderboard groups by.
            **{f"task.{k}": v for k, v in self.task.options().items()}, **s.train,
            # A data file by the path the user typed: the set-up is the same from whichever folder it ran.
            **{f"task.{k}": self.given_options[k] for k in PATH_OPTIONS if self.given_options.get(k)},
        }  # fmt: skip
        return {k: v for k, v in params.items() if v is not None}

    def check_data_and_cells(self) -> None:
        """Build the task's data (cached for the workers) and try every cell on it: the seconds of torch and
        datasets, in a child process beside the driver's start where it can fork (``forked_check``)."""
        self.task.ensure_cached(seed=self.data_seed, cache_dir=self.settings.cache_dir)
        for cell in self.settings.cells:  # a broken cell fails here, naming its plugin, before any trial time
            get_cell(cell).preflight(self.task.input_size)

    @property
    def data_seed(self) -> int:
        return int(self.settings.train.get("data_seed", 0))

    def trial_tags(self) -> dict[str, str]:
        """The tags every trial run carries."""
        return {"rnnbench_version": __version__, "task_data_version": self.task.data_version}

    def sweep_params(self, gpus: float) -> dict[str, Any]:
        """The MLflow params of the sweep's parent run: its settings (tables as JSON)."""
        values = self.settings.as_dict().items()
        return {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in values} | {
            "gpus_per_trial": gpus
        }

    def sweep_tags(self) -> dict[str, str]:
        s = self.settings
        from rnnbench.util.machine import machine_line

        return {"sweep": s.name or "", "kind": "sweep", "task": s.task, "space": s.space, "machine": machine_line(),
                **self.trial_tags()}  # fmt: skip


def absolute_paths(options: dict[str, Any]) -> dict[str, Any]:
    """Task options with every relative data path that names an existing file made absolute against the
    current folder (``path=data.csv``, ``data_files=train=a.csv,test=b.csv``); hub names stay as they are."""

    def resolve(text: str) -> str:
        found = Path(text).expanduser()
        return str(found.resolve()) if not found.is_absolute() and found.exists() else text

    fixed = dict(options)
    for key in PATH_OPTIONS:
        value = fixed.get(key)
        if isinstance(value, str) and value:
            parts = [part.split("=", 1) if "=" in part else [part] for part in value.split(",")]
            fixed[key] = ",".join("=".join([*part[:-1], resolve(part[-1])]) for part in parts)
    return fixed


def prepare(settings: SweepSettings) -> SweepPlan:
    """Check everything that needs neither torch nor a cluster (the data and the cells are checked by
    ``SweepPlan.check_data_and_cells``); the store's URI is resolved in ``settings``."""
    validate(settings)
    try:
        TrainConfig(cell=settings.cells[0], task=settings.task, **settings.train).validate()
    except RnnbenchError as exc:
        raise SweepConfigError(f"sweep settings, table 'train': {exc}") from None
    for cell in settings.cells:
        get_cell(cell)
    space = get_search_space(settings.space)
    sets = check_overrides(space, settings.space_overrides, "sweep settings")
    for key in sorted(set(settings.train) & sets):  # the space's value would win: say so, do not ignore it
        raise SweepConfigError(
            f"sweep settings, key 'train.{key}': search space {settings.space!r} sets {key} for every trial, "
            f"so [train] cannot fix it; use [space_overrides] {key} = ... to fix a sampled parameter"
        )
    given = dict(settings.task_options)
    if settings.length is not None:
        given["length"] = settings.length
    options = absolute_paths(given)  # the workers run in Ray's folders, not in the one the command ran in
    task = get_task(settings.task).build(**options)
    settings.tracking_uri = resolve_tracking_uri(settings.tracking_uri)
    check_tracking_uri(settings.tracking_uri)
    infos = {info.name: info for info in plugin_infos()}
    plugins = {c: get_cell(c).plugin for c in settings.cells}
    return SweepPlan(
        settings=settings, space=space, task=task, task_options=options, given_options=given,
        plugin_paths=tuple(i.location for i in infos.values() if i.source == "file"),
        plugins=plugins, versions={c: infos[plugins[c]].version for c in settings.cells},
    )  # fmt: skip
