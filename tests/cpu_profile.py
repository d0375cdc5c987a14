"""CPU seconds per test, of the test process's whole tree: ``pytest -p tests.cpu_profile``.

The suite is CPU-bound on two cores, so a test's cost is the CPU it and every process it starts (its
sweeps' commands, their Ray, each trial's worker) use, not its wall time: a test that sleeps while its
paced trials run leaves its core to the other test process. Each test's row (``RNNBENCH_CPU_PROFILE``,
default ``cpu-profile.jsonl`` in the current folder; rows are appended, so several runs can share a file)
holds its CPU, its wall time and the pytest-xdist worker that ran it; the session ends with the ten that
used the most CPU, counted from the rows this session wrote.

What a row leaves out or misplaces: a process reparented out of the tree (its parent ended first) takes its
CPU with it, so a test that kills a driver, or ends a Ray whose workers outlive it, counts low (even below
zero); the CPU of a module or session fixture, and the background of the test process's Ray, go to the test
that was running. Linux only (it reads ``/proc``).
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


OUTPUT = pytest.StashKey[Path]()  # the output file, resolved once
START = pytest.StashKey[int]()  # its size when this session started: the summary reads this session's rows


def pytest_configure(config: pytest.Config) -> None:
    if not Path("/proc/self/stat").is_file():
        raise pytest.UsageError("tests.cpu_profile reads /proc: it runs on Linux only")
    output = Path(os.environ.get(ENV) or "cpu-profile.jsonl").resolve()  # a test may change the folder
    config.stash[OUTPUT] = output
    config.stash[START] = output.stat().st_size if output.is_file() else 0


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
    inside: dict[int, bool] = {root: True}

    def in_tree(pid: int) -> bool:
        chain = []
        # The snapshot is not atomic: a pid reused while it was read could close a loop, hence the bound.
        while pid not in inside and pid in parents and pid > 1 and len(chain) <= len(parents):
            chain.append(pid)
            pid = parents[pid]
        found = inside.get(pid, False)
        inside.update(dict.fromkeys(chain, found))
        return found

    return sum(cpu for pid, cpu in used.items() if in_tree(pid))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    me = os.getpid()
    cpu, wall = tree_cpu(me), time.monotonic()
    yield
    row = {"test": item.nodeid, "cpu_s": round(tree_cpu(me) - cpu, 2), "wall_s": round(time.monotonic() - wall, 2),
           "worker": os.environ.get("PYTEST_XDIST_WORKER", "")}  # fmt: skip
    with item.config.stash[OUTPUT].open("a") as out:
        out.write(json.dumps(row) + "\n")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    # A pytest-xdist worker (it has workerinput) leaves the summary to the controller.
    output = config.stash[OUTPUT]
    if hasattr(config, "workerinput") or not output.is_file():
        return
    with output.open() as found:
        found.seek(config.stash[START])
        rows = [json.loads(line) for line in found.read().splitlines() if line.strip()]
    if not rows:
        return
    rows.sort(key=lambda r: -r["cpu_s"])
    terminalreporter.section(f"CPU per test, the {min(SHOWN, len(rows))} that used most ({output})")
    for r in rows[:SHOWN]:
        terminalreporter.write_line(f"{r['cpu_s']:8.1f} s CPU {r['wall_s']:8.1f} s wall  {r['test']}")
    terminalreporter.write_line(f"{sum(r['cpu_s'] for r in rows):8.1f} s CPU in all, {len(rows)} tests")
