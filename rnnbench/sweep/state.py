"""A sweep's folder (``rnnbench-sweeps/NAME``): its settings and parent run, and the Optuna journal."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from rnnbench.errors import RnnbenchError

DEFAULT_SWEEPS_DIR = "rnnbench-sweeps"
STATE_FILE = "sweep.json"
JOURNAL_FILE = "optuna.journal"
LOCK_FILE = "driver.lock"


def study_name(sweep: str, cell: str) -> str:
    """The name of a cell's Optuna study in its sweep's journal."""
    return f"{sweep}:{cell}"


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
    """The state a sweep wrote when it started; SweepError lists the sweeps there are, or names the file
    when it is broken (a torn write, an edit)."""
    path = sweep_folder(sweeps_dir, name) / STATE_FILE
    if not path.is_file():
        known = sorted(p.name for p in Path(sweeps_dir).glob("*") if (p / STATE_FILE).is_file())
        raise SweepError(
            f"no sweep named {name!r} in {sweeps_dir}/; sweeps there: {', '.join(known) or '(none)'}"
        )
    try:
        state = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise SweepError(f"{path} is not a sweep's state ({type(exc).__name__}: {exc}); restore it from a "
                         "backup, or start the sweep again under another --name") from None  # fmt: skip
    if not isinstance(state, dict) or not isinstance(state.get("settings"), dict):
        raise SweepError(f"{path} is not a sweep's state (no settings object); restore it from a backup, or "
                         "start the sweep again under another --name")  # fmt: skip
    return state


def write_state(folder: Path, state: dict[str, Any]) -> None:
    """Written to a temporary file, then renamed over the old one: a crash leaves the old or the new."""
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{STATE_FILE}.tmp"
    with open(temporary, "w") as handle:
        handle.write(json.dumps(state, indent=2, default=str))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, folder / STATE_FILE)


def repair_journal(path: Path) -> Path | None:
    """A journal whose last line was cut by a crash mid-append: keep the whole file as a backup, cut the torn
    line off (Optuna then holds that trial as it was before the line: RUNNING, and ``--resume`` reruns it).
    Returns the backup's path, None when the journal was whole. A journal torn anywhere but at its end is a
    SweepError naming it."""
    if not path.is_file():
        return None
    data = path.read_bytes()
    last = _check_lines(path, data)
    if not last.strip() or _json_line(last):
        if last.strip():  # a whole entry without its newline: end it, so the next append starts a line
            with open(path, "ab") as handle:
                handle.write(b"\n")
        return None
    backup = path.with_name(f"{path.name}.torn-{int(time.time())}")
    backup.write_bytes(data)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data[: len(data) - len(last)])
    os.replace(temporary, path)
    return backup


def check_journal(path: Path, name: str) -> None:
    """Read-only: SweepError naming the journal when a line is not an entry (a torn last line included)."""
    last = _check_lines(path, path.read_bytes())
    if last.strip() and not _json_line(last):
        raise SweepError(f"{path}: its last line was cut by a crash; `rnnbench sweep --resume {name}` repairs it "
                         "(keeping the whole file as a backup)")  # fmt: skip


def _check_lines(path: Path, data: bytes) -> bytes:
    """SweepError for a bad line before the last; returns the last (possibly torn) line."""
    lines = data.split(b"\n")
    for number, line in enumerate(lines[:-1], 1):
        if line.strip() and not _json_line(line):
            raise SweepError(f"{path}: line {number} of {len(lines) - 1} is not a journal entry (the file was "
                             "changed or damaged, not cut by a crash); restore it from a backup")  # fmt: skip
    return lines[-1]


def _json_line(line: bytes) -> bool:
    """Whether ``line`` is an Optuna journal entry (a JSON object with its operation code)."""
    try:
        entry = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(entry, dict) and "op_code" in entry


class SweepLock:
    """One driver per sweep: an exclusive lock on ``NAME/driver.lock`` held while the driver runs and released
    by the kernel when it exits or dies; the holder's pid is written in the file."""

    def __init__(self, folder: Path, name: str) -> None:
        self.path, self.name = folder / LOCK_FILE, name
        self.handle: Any = None

    def acquire(self) -> None:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise SweepError(f"sweep {self.name!r} is being run by another driver (pid {holder}); wait for it "
                             "to finish, or stop it, before starting or resuming this sweep") from None  # fmt: skip
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self.handle = handle

    def release(self) -> None:
        if self.handle is not None:
            self.handle.close()  # closing the descriptor releases the lock
            self.handle = None
