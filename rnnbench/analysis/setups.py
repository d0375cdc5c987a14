"""A ranking group is a set-up: the task and every option that changes its data, never the task name alone.

Two sweeps of the adding problem at lengths 50 and 100, or two data files through the ``hf`` task,
are two set-ups and are never ranked together. A set-up is read from what a trial run recorded: its
``task`` param, every ``task.*`` param (all of the task's options as built) and its ``data_seed``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath

# Options that name a set-up for people without changing its data.
DISPLAY_ONLY = frozenset({"label"})
# Options that hold a file or folder: shown by their last part (a published page names no path).
PATH_OPTIONS = frozenset({"path", "data_files"})
NO_VALUE = ("", "None", "none")
BUILDERS = ("csv", "json", "parquet", "text")  # a builder names a format, not a data set


@dataclass(frozen=True)
class Setup:
    task: str
    options: tuple[tuple[str, str], ...]  # (option, recorded value), sorted; data_seed included
    label: str  # a readable name: the task, or for a data set its label or file stem

    @property
    def id(self) -> str:
        """A short name that tells set-ups apart: ``adding-1a2b3c``."""
        blob = json.dumps([self.task, self.options])
        return f"{self.label}-{hashlib.sha256(blob.encode()).hexdigest()[:6]}"

    def describe(self) -> str:
        """The options as ``key=value``, paths by their file name."""
        shown = [f"{k}={short(v) if k in PATH_OPTIONS else v}" for k, v in self.options]
        return f"task {self.task}" + (f": {', '.join(shown)}" if shown else "")

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "task": self.task, "label": self.label,
                "options": {k: short(v) if k in PATH_OPTIONS else v for k, v in self.options}}  # fmt: skip


def short(value: str) -> str:
    """A path's last part (``data/train.csv`` -> ``train.csv``); other values as they are."""
    return PurePath(value).name if ("/" in value or "\\" in value) else value


def setup_of(params: Mapping[str, str], task: str) -> Setup:
    """The set-up a trial (or reseed) run trained on, from its params."""
    options = {k.removeprefix("task."): v for k, v in params.items() if k.startswith("task.")}
    if "length" in params and "length" not in options:  # runs that recorded only the options given
        options["length"] = params["length"]
    options = {k: v for k, v in options.items() if k not in DISPLAY_ONLY and v not in NO_VALUE}
    options["data_seed"] = params.get("data_seed", "0")
    label = params.get("task.label") or _data_name(options) or task
    return Setup(task=task, options=tuple(sorted(options.items())), label=label)


def _data_name(options: Mapping[str, str]) -> str | None:
    """A data set's name: its file's stem, or the hub name's last part."""
    for key in ("data_files", "path"):
        value = options.get(key)
        if value and PurePath(value).stem not in BUILDERS:
            return PurePath(value).stem
    return None
