"""A sweep's data and cell checks in a forked child (rnnbench/sweep/forked_check.py): what crosses back to
the driver (the task as loaded, the error to raise), a child that dies, a child stopped by Ctrl-C, and what
the child must not hold, each forked from a fresh process as a command forks (tests/forked_scenarios.py:
the pytest process runs torch's and Ray's threads, whose locks a child would inherit); and, through the
command, that the checks ran in a child, that a broken cell still fails the sweep before anything is
recorded, and that a SIGTERM to the command's process group stops it as one to the command."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnbench.sweep.forked_check import GRACE, fork_is_safe
from rnnbench.util.timings import ENV, read
from tests.test_sweep import cli

REPO = Path(__file__).resolve().parents[1]


def scenario(name: str, *args: str) -> dict:
    """Run one of tests/forked_scenarios.py in a fresh process, as a command forks (no thread, torch or Ray)."""
    done = subprocess.run([sys.executable, "-m", "tests.forked_scenarios", name, *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.splitlines()[-1])
    assert found.pop("fork_was_safe"), "a fresh process with no thread, torch or Ray forks"
    return found


def test_the_task_as_the_child_loaded_it_crosses_back():
    found = scenario("learns")  # as hf's load learns its encoding and sizes
    assert found["state"] == {"encoding": "one-hot", "_meta": {"input_size": 7, "chance": 0.5}}
    assert found["in_process"] == 0, "the check ran in the child alone"
    assert found["answered"] and not found["answered_after_wait"], "answered, without a wait; read once"


def test_a_task_that_does_not_pickle_is_checked_again_here():
    found = scenario("unpicklable")
    assert found["in_process"] == 1 and found["has_lock"]


@pytest.mark.parametrize("name", ["contract", "duplicate", "unknown"])
def test_the_childs_domain_error_is_raised_here_as_it_was(name):
    """Errors whose __init__ takes other arguments than their message too (DuplicateNameError)."""
    found = scenario(f"domain-{name}")
    assert found["same"] is True, found
    assert found["answered"], "an error is an answer the driver sees without waiting (and then skips imports)"
    assert found["notes"] == [], "a domain error's message is complete"


def test_any_other_error_keeps_the_childs_traceback():
    found = scenario("other")
    assert found["raised"] == "KeyError" and found["message"] == "'no such key'"
    note = "\n".join(found["notes"])
    assert "raised in the process checking the data and the cells" in note
    assert "in _missing_key" in note and "KeyError: 'no such key'" in note


def test_a_child_that_dies_is_a_clear_error():
    found = scenario("exits")
    assert found["raised"] == "CheckerDied"
    assert found["answered"], "a child that ended is seen without a wait too"
    assert re.search(r"cells \(pid \d+\) ended with exit code 9 without an answer", found["message"])
    found = scenario("killed")
    assert found["raised"] == "CheckerDied"
    assert "was killed by SIGKILL (the kernel's out-of-memory killer" in found["message"]


def test_closing_stops_a_child_still_checking_and_reaps_it():
    """Ctrl-C, sent at once (the child blocks it until its handler is in place, so none is lost): the child
    stops by itself, well before the SIGKILL a child still running after the grace period gets."""
    found = scenario("closed")
    assert found["seconds"] < GRACE / 2 and found["exited_itself"], found
    assert not found["answered_while_running"], "a child still checking has not answered"
    assert found["reaped"], "no zombie left behind"


def test_a_ctrl_c_held_while_waiting_stops_the_child_and_the_wait():
    found = scenario("held")
    assert found["raised"] == "KeyboardInterrupt" and found["seconds"] < GRACE / 2, found
    assert found["exited_itself"] and found["reaped"]


def test_the_child_does_not_hold_what_it_is_told_to_close(tmp_path):
    """The sweep's lock on a resume: a child that outlived the driver would keep the next driver out."""
    assert scenario("lock", str(tmp_path)) == {"open_in_child": "False"}


def test_a_process_that_imported_torch_checks_in_process():
    """As an in-process sweep under pytest, or a plugin that imports torch as it loads: no fork (the fresh
    processes of the scenarios above, which imported neither, do fork)."""
    import torch  # noqa: F401

    assert not fork_is_safe()


LAZY_BROKEN = '''"""A cell that imports torch only when built, and breaks the contract."""
import rnnbench


def last_step(input_size, hidden_size, num_layers, dropout):
    from torch import nn

    class LastStep(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(input_size, hidden_size, num_layers, batch_first=True)

        def forward(self, x):
            return self.rnn(x)[0][:, -1]

    return LastStep()


@rnnbench.hookimpl
def register_cells(register):
    register("lazy-last-step", last_step, description="(B, H) instead of (B, T, H)", reference="test")
'''


def test_a_cell_broken_in_the_child_fails_the_sweep_before_anything_is_recorded(tmp_path):
    """The plugin imports nothing heavy, so the command forks its checks; the child's contract error reaches
    the user as the one-line error an in-process check gives."""
    plugin = tmp_path / "lazy_broken.py"
    plugin.write_text(LAZY_BROKEN)
    timings = tmp_path / "timings.jsonl"
    process = cli(tmp_path, "--plugin", str(plugin), "sweep", "--cells", "lazy-last-step", "--trials", "1",
                  "--name", "bad", "--length", "16", extra_env={ENV: str(timings)})  # fmt: skip
    _, err = process.communicate(timeout=300)
    said = " ".join(err.split())
    assert process.returncode == 2 and "Traceback" not in err, err[-2000:]
    assert f"cell 'lazy-last-step' from plugin {plugin.resolve()} broke the cell contract" in said, said
    pids = {json.loads(line)["pid"] for line in timings.read_text().splitlines()}
    assert "check forked" in read(str(timings)) and len(pids) == 2, "the check ran in a child of the command"
    assert not (tmp_path / "mlflow.db").exists(), "no store created before the checks passed"
    assert not (tmp_path / "rnnbench-sweeps" / "bad").exists()


def test_sigterm_to_the_process_group_while_the_child_checks_stops_the_sweep(tmp_path):
    """``timeout``, Slurm and systemd signal every process of the command's group: the child stops as on
    Ctrl-C (its half-built cache entry removed) and the command exits 143 as for a SIGTERM to it alone."""
    process = cli(tmp_path, "sweep", "--cells", "gru", "--trials", "1", "--epochs", "1", "--length", "16",
                  "--name", "early", "-o", "train_size=200000", "--json")  # fmt: skip
    time.sleep(2.0)
    os.killpg(process.pid, signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err[-2000:]
    assert "Traceback" not in err
    # The signal ended Ray's GCS too: the command did not wait out ray.init's retries to reach it (5 s
    # each, with this warning after the first; the command exited 15 s later).
    assert "Failed to connect to GCS" not in err, err[-2000:]
    assert not list((tmp_path / "cache").rglob(".partial-*")), "no half-built cache entry is left"
    assert not (tmp_path / "rnnbench-sweeps" / "early").exists()


class _Answered:
    """A forked check as the driver sees it: answered or not yet, and the error its wait raises."""

    def __init__(self, answered: bool, error: BaseException) -> None:
        self.answered_now, self.error, self.closed = answered, error, False

    def answered(self) -> bool:
        return self.answered_now

    def wait(self, held: list[int]) -> None:
        raise self.error

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("answered", [True, False])
def test_the_driver_imports_the_store_only_while_the_child_still_checks(tmp_path, monkeypatch, answered):
    """A child that has already named a broken cell when the driver has imported MLflow: its error is raised
    without the store's modules imported first; a child still checking: they are imported meanwhile."""
    from types import SimpleNamespace

    from rnnbench.errors import CellContractError
    from rnnbench.sweep import driver
    from rnnbench.sweep.forked_check import ForkedCheck

    error = CellContractError("cell 'x' from plugin p broke the cell contract")
    check = _Answered(answered, error)
    monkeypatch.setattr(ForkedCheck, "start", classmethod(lambda cls, plan, close_in_child=(): check))
    imports: list[str] = []
    monkeypatch.setattr(driver, "_import_the_store", lambda: imports.append("store"))
    released: list[bool] = []
    lock = SimpleNamespace(path=tmp_path / "new" / "driver.lock", handle=None,
                           release=lambda: released.append(True))  # fmt: skip
    ray = SimpleNamespace(begin=lambda settings: None)
    with pytest.raises(CellContractError) as raised:
        driver._start_beside_ray(SimpleNamespace(settings=None), lock, False, ray)
    assert raised.value is error
    assert imports == ([] if answered else ["store"])
    assert check.closed and released == [True]


RACE = """
import os, signal
from rnnbench.sweep.forked_check import _STOPPING, _stop_once
for number in _STOPPING:
    signal.signal(number, _stop_once)
signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING)
os.kill(os.getpid(), signal.SIGINT)
os.kill(os.getpid(), signal.SIGTERM)
try:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPPING)  # both land at once
    for _ in range(1000):
        pass
except KeyboardInterrupt:
    for _ in range(1000):  # where the child reports the stop
        pass
print("stopped once")
"""


def test_two_stops_at_once_stop_the_child_once_without_a_traceback():
    """The group's SIGTERM and the SIGINT the dying parent sends can land together: the second, still pending
    when the first's handler runs, once surfaced as "OSError: Signal 15 ignored due to race condition"."""
    done = subprocess.run([sys.executable, "-c", RACE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "stopped once", done.stderr
    assert "race condition" not in done.stderr and "Traceback" not in done.stderr, done.stderr
