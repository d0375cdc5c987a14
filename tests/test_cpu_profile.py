"""The suite's CPU profiler (``pytest -p tests.cpu_profile``): a test's row counts the CPU of the processes it
starts, and the session's summary puts the test that used most first, counting that session's rows only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

TESTS = """
import subprocess, sys

BURN = "import time\\nstart = time.process_time()\\nwhile time.process_time() - start < 1.0:\\n    pass\\n"


def test_idle():
    pass


def test_burns_a_second_in_a_child():
    subprocess.run([sys.executable, "-c", BURN], check=True)
"""


def _profiled(folder: Path, out: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.cpu_profile", "-p", "no:cacheprovider", "-q",
         "--rootdir", str(folder), str(folder / "test_some.py"), *args],
        cwd=REPO, env={**env, "RNNBENCH_CPU_PROFILE": str(out)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout[done.stdout.index("CPU per test") :]


def test_a_tests_row_counts_the_cpu_of_the_processes_it_started(tmp_path):
    (tmp_path / "test_some.py").write_text(TESTS)
    out = tmp_path / "cpu.jsonl"
    summary = _profiled(tmp_path, out).splitlines()
    rows = {r["test"].split("::")[-1]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(rows) == {"test_idle", "test_burns_a_second_in_a_child"}
    assert rows["test_burns_a_second_in_a_child"]["cpu_s"] >= 0.9, rows
    assert rows["test_idle"]["cpu_s"] < 0.5, rows
    assert "test_burns_a_second_in_a_child" in summary[1], summary
    assert summary[3].strip().endswith("2 tests"), summary
    # A second session appends to the same file; its summary counts its own rows only.
    again = _profiled(tmp_path, out, "-k", "idle").splitlines()
    assert len(out.read_text().splitlines()) == 3
    assert "test_idle" in again[1] and again[2].strip().endswith("1 tests"), again
