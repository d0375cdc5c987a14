"""A trial worker's scratch folder: where its checkpoints are written before Tune copies them out.

Each worker process writes under a folder of its own in the system's temporary folder
(``rnnbench-scratch-KERNEL-*``), one short-lived folder per checkpoint, removed once Tune has copied it.
``tune.report`` waits for the driver to take the result, so a worker killed meanwhile (Ray's memory monitor,
a killed driver or node, ``ray stop``) leaves that checkpoint behind: weights and the optimizer's moments,
gigabytes for a large model, in the host's temporary folder for good, as anonymous ``tempfile`` folders did.

The owner holds a lock (``flock``) on a file in its folder for as long as it lives; the kernel lets it go
when the process ends, however it ends (a child forked from the worker holds it too, until it ends). The
next worker to start removes the folders whose lock it can take: those of ended processes, whatever their
pid and whichever container on this kernel they ran in. Folders made under another kernel (``KERNEL``:
the boot id; a temporary folder on a network filesystem, whose locks may be local to each host) are left
alone, and so is any folder whose lock cannot be judged.
"""

from __future__ import annotations

import contextlib
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
_held: dict[str, tuple[Path, int | None]] = {}  # this process's folder and its lock's descriptor
log = logging.getLogger("rnnbench")


def kernel_id() -> str:
    """This kernel's boot id, short (the host name where there is none)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:12]
    except OSError:
        import socket

        return "".join(c for c in socket.gethostname() if c.isalnum())[:12] or "host"


def scratch_root() -> Path:
    """This process's scratch folder: made on first use (after removing those of ended processes), and
    made again should something remove it while the process lives (a cleaner of old temporary files)."""
    held = _held.pop("root", None)
    if held is not None and held[0].is_dir():
        _held["root"] = held
        return held[0]
    if held is None:
        try:
            remove_dead_roots()
        except Exception as exc:  # removing leftovers never fails a trial
            log.debug("scratch folders left as they were: %s", exc)
    elif held[1] is not None:
        with contextlib.suppress(OSError):
            os.close(held[1])
    root = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{kernel_id()}-"))  # private (0700), never a prepared name
    _held["root"] = (root, _lock(root))
    return root


def _lock(root: Path) -> int | None:
    """Lock the owner's file, then give it its name: a cleaner only judges a folder by a lock file already
    held. Where the filesystem has no such locks, the folder goes unlocked and no cleaner removes it."""
    if fcntl is None:
        return None
    pending = root / f"{LOCK}.new"
    descriptor = None
    try:
        descriptor = os.open(pending, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_CLOEXEC, 0o600)
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(pending, root / LOCK)
    except OSError as exc:
        log.debug("scratch folder %s not locked (%s): it will not be removed after this process", root, exc)
        if descriptor is not None:
            os.close(descriptor)
        return None
    return descriptor


def remove_dead_roots(folder: Path | None = None) -> list[Path]:
    """Remove the scratch folders in ``folder`` (the temporary folder) that this user's ended processes on
    this kernel left; returns those removed."""
    if fcntl is None:
        return []
    mine = f"{PREFIX}{kernel_id()}-"
    return [root for root in Path(folder or tempfile.gettempdir()).glob(f"{mine}*") if _remove_if_ended(root)]


def _remove_if_ended(root: Path) -> bool:
    """Remove ``root`` if its owner has ended: its lock is taken and held until the folder is gone, so that
    two cleaners never work on one folder, and a cleaner stopped halfway leaves the lock file (last removed)
    for the next to judge."""
    try:
        info = root.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            return False
        # Read-write: over NFS an exclusive flock is a write lock, which a read-only descriptor cannot take.
        descriptor = os.open(root / LOCK, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:  # gone, not ours, or no lock file (its owner is making it, or could not lock it)
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held (its owner lives), or a lock this filesystem cannot give: left alone
        os.close(descriptor)
        return False
    try:
        for child in root.iterdir():
            if child.name == LOCK:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
        if [child.name for child in root.iterdir()] == [LOCK]:  # else the lock file stays, to judge it by
            (root / LOCK).unlink()
            root.rmdir()
    except OSError as exc:
        log.debug("scratch folder %s not wholly removed: %s", root, exc)
    finally:
        os.close(descriptor)
    return not root.exists()
