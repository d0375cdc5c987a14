"""A sweep's data and cell checks in a forked child (rnnbench/sweep/forked_check.py): what crosses back to
the driver (the task as loaded, the error to raise), a child that dies, a child stopped by Ctrl-C; and,
through the command, that the checks ran in a child and that a broken cell still fails the sweep before
anything is recorded."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from rnnbench.errors import CellContractError, DuplicateNameError, UnknownCellError
from rnnbench.sweep import forked_check
from rnnbench.sweep.forked_check import CheckerDied, ForkedCheck
from rnnbench.util.timings import ENV, read
from tests.test_sweep import cli


class _Task:
    def __init__(self) -> None:
        self.encoding = "linear"


class _Plan:
    """A plan whose check runs ``work`` (pure Python: the pytest process holds torch and Ray threads, which a
    forked child must not touch)."""

    def __init__(self, work) -> None:
        self.task, self.work, self.in_process = _Task(), work, 0

    def check_data_and_cells(self) -> None:
        if os.getpid() == self.parent:
            self.in_process += 1
        self.work(self.task)

    parent = os.getpid()


@pytest.fixture
def forkable(monkeypatch):
    monkeypatch.setattr(forked_check, "fork_is_safe", lambda: True)


def _checked(work) -> _Plan:
    plan = _Plan(work)
    check = ForkedCheck.start(plan)
    assert check is not None
    try:
        check.wait()
    finally:
        check.close()
    return plan


def test_the_task_as_the_child_loaded_it_crosses_back(forkable):
    def load(task):  # as hf's load learns its encoding and sizes
        task.encoding, task._meta = "one-hot", {"input_size": 7, "chance": 0.5}

    plan = _checked(load)
    assert (plan.task.encoding, plan.task._meta) == ("one-hot", {"input_size": 7, "chance": 0.5})
    assert plan.in_process == 0, "the check ran in the child alone"


def test_a_task_that_does_not_pickle_is_checked_again_here(forkable):
    def load(task):
        task.lock = threading.Lock()

    plan = _checked(load)
    assert plan.in_process == 1 and isinstance(plan.task.lock, type(threading.Lock()))


@pytest.mark.parametrize(
    "error",
    [
        CellContractError(
            "cell 'x' from plugin p broke the cell contract: gave shape (3, 5), expected (3, 4, 5)"
        ),
        # Errors whose __init__ takes other arguments than their message: rebuilt without calling it.
        DuplicateNameError("cell", "gru", "plugin-a", "plugin-b"),
        UnknownCellError("grue", ["gru", "lstm"]),
    ],
    ids=lambda error: type(error).__name__,
)
def test_the_childs_domain_error_is_raised_here_as_it_was(forkable, error):
    def broken(task):
        raise error

    with pytest.raises(type(error)) as raised:
        _checked(broken)
    assert str(raised.value) == str(error) and vars(raised.value) == vars(error)
    assert not getattr(raised.value, "__notes__", None), "a domain error's message is complete"


def test_any_other_error_keeps_the_childs_traceback(forkable):
    def broken(task):
        {}["no such key"]

    with pytest.raises(KeyError) as raised:
        _checked(broken)
    note = "\n".join(raised.value.__notes__)
    assert "raised in the process checking the data and the cells" in note
    assert "in broken" in note and "KeyError: 'no such key'" in note


def test_a_child_that_dies_is_a_clear_error(forkable):
    def dies(task):
        os._exit(9)

    with pytest.raises(CheckerDied, match=r"cells \(pid \d+\) ended with exit code 9 without an answer"):
        _checked(dies)

    def killed(task):
        os.kill(os.getpid(), signal.SIGKILL)

    with pytest.raises(CheckerDied, match=r"was killed by SIGKILL \(the kernel's out-of-memory killer"):
        _checked(killed)


def test_closing_stops_a_child_still_checking_and_reaps_it(forkable):
    """Ctrl-C, sent at once (the child blocks it until its handler is in place, so none is lost): the child
    stops by itself, well before the SIGKILL that a child still running after the grace period gets."""

    def slow(task):
        time.sleep(60)

    check = ForkedCheck.start(_Plan(slow))
    assert check is not None
    started = time.monotonic()
    check.close()
    assert time.monotonic() - started < forked_check.GRACE / 2
    assert check.status is not None and os.WIFEXITED(check.status), "it ended itself, not by SIGKILL"
    with pytest.raises(ChildProcessError):  # reaped: no zombie left behind
        os.waitpid(check.pid, os.WNOHANG)
    check.close()  # idempotent


def test_a_ctrl_c_held_while_waiting_stops_the_child_and_the_wait(forkable):
    def slow(task):
        time.sleep(60)

    check = ForkedCheck.start(_Plan(slow))
    assert check is not None
    held: list[int] = []
    threading.Timer(0.5, held.append, (2,)).start()  # the driver's handler records a Ctrl-C
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        check.wait(held)
    assert time.monotonic() - started < forked_check.GRACE / 2
    assert check.status is not None and os.WIFEXITED(check.status)


def test_the_child_does_not_hold_what_it_is_told_to_close(forkable, tmp_path):
    """The sweep's lock on a resume: a child that outlived the driver would keep the next driver out."""
    import fcntl

    seen = tmp_path / "seen"

    def probe(task):
        seen.write_text(str(os.path.exists(f"/proc/self/fd/{locked.fileno()}")))

    with open(tmp_path / "driver.lock", "a+") as locked:
        fcntl.flock(locked, fcntl.LOCK_EX | fcntl.LOCK_NB)
        plan = _Plan(probe)
        check = ForkedCheck.start(plan, close_in_child=(locked.fileno(),))
        assert check is not None
        try:
            check.wait()
        finally:
            check.close()
    assert seen.read_text() == "False"


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
    assert not list((tmp_path / "cache").rglob(".partial-*")), "no half-built cache entry is left"
    assert not (tmp_path / "rnnbench-sweeps" / "early").exists()
