"""Named moments of a command, for the harness benchmark (``benchmarks/harness.py``).

With ``RNNBENCH_TIMINGS=FILE`` in the environment, each mark appends one JSON line (its name, the wall
clock, the process id, whether that process has imported torch: 2.9 s of CPU a sweep's driver avoids) to
FILE; Ray workers inherit the variable, so a trial's worker marks its moments in the same file. Unset, a
mark costs one environment lookup.
"""

from __future__ import annotations

import json
import os
import sys
import time

ENV = "RNNBENCH_TIMINGS"


def mark(name: str) -> None:
    """Record that the command reached ``name`` now (when RNNBENCH_TIMINGS names a file)."""
    path = os.environ.get(ENV)
    if not path:
        return
    entry = {"mark": name, "time": time.time(), "pid": os.getpid(), "torch": "torch" in sys.modules}
    # One short line per write: appends from several processes interleave whole.
    with open(path, "a") as handle:
        handle.write(json.dumps(entry) + "\n")


def read(path: str) -> dict[str, float]:
    """Each mark's first time in a timings file."""
    found: dict[str, float] = {}
    with open(path) as handle:
        for line in handle:
            entry = json.loads(line)
            found.setdefault(entry["mark"], entry["time"])
    return found
