"""A trial worker's scratch folder: where its checkpoints are written before Tune copies them out.

Each worker process writes under a folder of its own in the system's temporary folder
(``rnnbench-scratch-*``), one short-lived folder per checkpoint, removed once Tune has copied it.
``tune.report`` waits for the driver to take the result, so a worker killed meanwhile (Ray's memory monitor,
a killed driver or node, ``ray stop``) leaves that checkpoint behind: weights and the optimizer's moments,
gigabytes for a large model, in the host's temporary folder for good, as anonymous ``tempfile`` folders did.

The owner holds a lock (``flock``) on a file in its folder for as long as it lives; the kernel lets it go
when the process ends, however it ends. The next worker to start removes the folders whose lock it can take:
those of ended processes only, whatever their pid (reused or not) and whichever pid namespace (container)
they ran in, since the lock is on the shared file itself.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock to tell an ended owner by, nothing is removed
    fcntl = None  # type: ignore[assignment]

PREFIX = "rnnbench-scratch-"
LOCK = ".owner.lock"
_held: dict[str, tuple[Path, int]] = {}  # this process's folder and its lock's descriptor


def scratch_root() -> Path:
    """This process's scratch folder: made on first use (after removing those of ended processes), and
    made again should something remove it while the process lives (a cleaner of old temporary files)."""
    held = _held.get("root")
    if held is not None and held[0].is_dir():
        return held[0]
    if held is None:
        try:
            remove_dead_roots()
        except Exception as exc:  # removing leftovers never fails a trial
            logging.getLogger("rnnbench").debug("scratch folders left as they were: %s", exc)
    else:
        os.close(held[1])
    root = Path(tempfile.mkdtemp(prefix=PREFIX))  # new, private (0700), never a name someone prepared
    descriptor = os.open(root / LOCK, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    if fcntl is not None:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _held["root"] = (root, descriptor)
    return root


def remove_dead_roots(folder: Path | None = None) -> list[Path]:
    """Remove the scratch folders in ``folder`` (the temporary folder) that this user's ended processes
    left; returns those removed. A folder without its lock file is left alone: its owner may be making it."""
    if fcntl is None:
        return []
    removed = []
    for root in Path(folder or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        if _owner_ended(root):
            shutil.rmtree(root, ignore_errors=True)
            if not root.exists():
                removed.append(root)
    return removed


def _owner_ended(root: Path) -> bool:
    try:
        info = root.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            return False
        descriptor = os.open(root / LOCK, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:  # gone, not ours, or no lock file yet
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held: its owner lives
        return False
    finally:
        os.close(descriptor)  # a lock taken goes with it; the folder is removed next
    return True
