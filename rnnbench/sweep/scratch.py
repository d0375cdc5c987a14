"""A trial worker's scratch folder: where its checkpoints are written before Tune copies them out.

Each worker process writes under ``TMP/rnnbench-scratch-HOST-PID/``, one short-lived folder per
checkpoint, removed once Tune has copied it. ``tune.report`` waits for the driver to take the result, so a
worker killed meanwhile (Ray's memory monitor, a killed driver or node, ``ray stop``) leaves that folder
behind: one epoch checkpoint (weights and the optimizer's moments, gigabytes for a large model) in the
host's temporary folder for good, as anonymous ``tempfile`` folders did. Here the leftover names its
process, and the next worker started on the host removes those of processes no longer running.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import tempfile
from pathlib import Path

PREFIX = "rnnbench-scratch-"


def _host() -> str:
    # Hosts (containers) sharing one temporary folder never remove one another's folders.
    return "".join(c if c.isalnum() or c in ".-" else "_" for c in socket.gethostname()) or "host"


def root_of(pid: int) -> Path:
    return Path(tempfile.gettempdir()) / f"{PREFIX}{_host()}-{pid}"


@functools.cache
def scratch_root() -> Path:
    """This process's scratch folder, made on first use, after removing those of this host's processes
    that have ended."""
    remove_dead_roots()
    root = root_of(os.getpid())
    root.mkdir(mode=0o700, exist_ok=True)
    return root


def remove_dead_roots() -> list[Path]:
    """Remove the scratch folders this host's ended processes left; returns them."""
    mine = f"{PREFIX}{_host()}-"
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{mine}*"):
        pid = folder.name.removeprefix(mine)
        if not pid.isdigit() or int(pid) == os.getpid() or _running(int(pid)):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True
