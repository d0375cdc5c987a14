"""A sweep's folder (``rnnbench-sweeps/NAME``): its settings and parent run, and the Optuna journal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rnnbench.errors import RnnbenchError

DEFAULT_SWEEPS_DIR = "rnnbench-sweeps"
STATE_FILE = "sweep.json"
JOURNAL_FILE = "optuna.journal"


class SweepError(RnnbenchError):
    """The sweep cannot start or continue: the message says why and what to do."""


class SweepInterrupted(RnnbenchError):
    """The sweep stopped before every trial ran; ``rnnbench sweep --resume NAME`` continues it."""

    def __init__(self, name: str, sweeps_dir: str) -> None:
        self.name = name
        self.resume_command = resume_command(name, sweeps_dir)
        super().__init__(f"sweep {name!r} interrupted; continue it with: {self.resume_command}")


class SweepStopped(SweepInterrupted):
    """Ray or Tune gave up on the sweep (a node out of memory, a lost raylet): what finished is kept, the
    runs cut short are KILLED, and ``--resume`` continues it."""

    def __init__(self, name: str, sweeps_dir: str, reason: str) -> None:
        super().__init__(name, sweeps_dir)
        self.reason = reason
        self.args = (f"sweep {name!r} stopped ({reason}); finished trials are kept; continue it with: "
                     f"{self.resume_command}",)  # fmt: skip


def resume_command(name: str, sweeps_dir: str) -> str:
    flag = "" if sweeps_dir == DEFAULT_SWEEPS_DIR else f" --sweeps-dir {sweeps_dir}"
    return f"rnnbench sweep --resume {name}{flag}"


def sweep_folder(sweeps_dir: str, name: str) -> Path:
    return Path(sweeps_dir) / name


def load_state(name: str, sweeps_dir: str) -> dict[str, Any]:
    """The state a sweep wrote when it started; SweepError lists the sweeps there are."""
    path = sweep_folder(sweeps_dir, name) / STATE_FILE
    if not path.is_file():
        known = sorted(p.name for p in Path(sweeps_dir).glob("*") if (p / STATE_FILE).is_file())
        raise SweepError(
            f"no sweep named {name!r} in {sweeps_dir}/; sweeps there: {', '.join(known) or '(none)'}"
        )
    return json.loads(path.read_text())


def write_state(folder: Path, state: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / STATE_FILE).write_text(json.dumps(state, indent=2, default=str))
