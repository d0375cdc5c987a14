"""CPU seconds per test, of the test process's whole tree: ``pytest -p tests.cpu_profile``.

The suite is CPU-bound on two cores, so a test's cost is the CPU it and every process it starts (its
sweeps' commands, their Ray, each trial's worker) use, not its wall time: a test that sleeps while its
paced trials run leaves its core to the other test process. Each test's row (``RNNBENCH_CPU_PROFILE``,
default ``cpu-profile.jsonl`` in the current folder; rows are appended, so several runs can share a file)
holds its CPU, its wall time and the pytest-xdist worker that ran it; the session ends with the ten that
used the most CPU. Processes that outlive their parent (reparented away from the tree) are not counted.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ENV = "RNNBENCH_CPU_PROFILE"
SHOWN = 10


def _output() -> Path:
    return Path(os.environ.get(ENV) or "cpu-profile.jsonl")


def tree_cpu(root: int) -> float:
    """CPU seconds (user and system, with those of reaped children) of ``root`` and every live descendant."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            text = Path(f"/proc/{name}/stat").read_text()
        except OSError:  # it ended while we looked
            continue
        fields = text[text.rfind(")") + 2 :].split()  # the name in parentheses may hold spaces
        parents[int(name)] = int(fields[1])
        used[int(name)] = sum(int(x) for x in fields[11:15]) / tick  # utime stime cutime cstime
    total = 0.0
    for pid, cpu in used.items():
        ancestor = pid
        while ancestor != root and ancestor in parents and ancestor > 1:
            ancestor = parents[ancestor]
        if ancestor == root:
            total += cpu
    return total


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    me = os.getpid()
    cpu, wall = tree_cpu(me), time.monotonic()
    yield
    row = {"test": item.nodeid, "cpu_s": round(tree_cpu(me) - cpu, 2), "wall_s": round(time.monotonic() - wall, 2),
           "worker": os.environ.get("PYTEST_XDIST_WORKER", "")}  # fmt: skip
    with _output().open("a") as out:
        out.write(json.dumps(row) + "\n")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if (
        hasattr(config, "workerinput") or not _output().is_file()
    ):  # a pytest-xdist worker: the controller sums
        return
    rows = [json.loads(line) for line in _output().read_text().splitlines() if line.strip()]
    rows.sort(key=lambda r: -r["cpu_s"])
    terminalreporter.section(f"CPU per test, the {min(SHOWN, len(rows))} that used most ({_output()})")
    for r in rows[:SHOWN]:
        terminalreporter.write_line(f"{r['cpu_s']:8.1f} s CPU {r['wall_s']:8.1f} s wall  {r['test']}")
    terminalreporter.write_line(f"{sum(r['cpu_s'] for r in rows):8.1f} s CPU in all, {len(rows)} tests")
