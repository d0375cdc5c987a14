"""Scenarios of rnnbench.sweep.forked_check, each run in a fresh Python process as a command would (no thread,
no torch, no Ray: a forked child of the pytest process would inherit their locks half-held). Run as
``python -m tests.forked_scenarios NAME``; prints what happened as one JSON object (tests/test_forked_check.py)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from rnnbench.errors import CellContractError, DuplicateNameError, UnknownCellError
from rnnbench.sweep.forked_check import ForkedCheck, fork_is_safe

DOMAIN_ERRORS = {
    "contract": CellContractError(
        "cell 'x' from plugin p broke the cell contract: gave shape (3, 5), expected (3, 4, 5)"
    ),
    # Errors whose __init__ takes other arguments than their message: rebuilt without calling it.
    "duplicate": DuplicateNameError("cell", "gru", "plugin-a", "plugin-b"),
    "unknown": UnknownCellError("grue", ["gru", "lstm"]),
}


class Task:
    def __init__(self) -> None:
        self.encoding = "linear"


class Plan:
    """A plan whose check runs ``work``, counting the checks run in this process."""

    def __init__(self, work: Callable[[Task], None]) -> None:
        self.task, self.work, self.in_process, self.parent = Task(), work, 0, os.getpid()

    def check_data_and_cells(self) -> None:
        if os.getpid() == self.parent:
            self.in_process += 1
        self.work(self.task)


def checked(work: Callable[[Task], None], **start: Any) -> dict[str, Any]:
    """Run ``work`` as the forked check; what the driver got."""
    plan = Plan(work)
    check = ForkedCheck.start(plan, **start)
    assert check is not None, "a fresh process can fork"
    deadline = time.monotonic() + 60  # the driver asks without waiting, as it does between its imports
    while not check.answered() and time.monotonic() < deadline:
        time.sleep(0.01)
    answered = check.answered()
    try:
        check.wait()
    except BaseException as exc:
        return {"raised": type(exc).__name__, "message": str(exc), "notes": getattr(exc, "__notes__", []),
                "same": _same(exc), "in_process": plan.in_process, "answered": answered}  # fmt: skip
    finally:
        check.close()
    state = {k: v for k, v in vars(plan.task).items() if k != "lock"}
    return {
        "raised": None,
        "state": state,
        "has_lock": hasattr(plan.task, "lock"),
        "in_process": plan.in_process,
        "answered": answered,
        "answered_after_wait": check.answered(),
    }


def _same(exc: BaseException) -> bool | None:
    """Whether ``exc`` is the domain error the child raised, attributes and all."""
    for error in DOMAIN_ERRORS.values():
        if type(error) is type(exc):
            return str(error) == str(exc) and vars(error) == vars(exc)
    return None


def slow(task: Task) -> None:
    time.sleep(60)


def stopped(held_after: float | None) -> dict[str, Any]:
    """Stop a child that runs on: by ``close`` at once, or by a Ctrl-C the driver holds after ``held_after`` s."""
    check = ForkedCheck.start(Plan(slow))
    assert check is not None
    started = time.monotonic()
    raised = None
    # Asked at once: the Ctrl-C below still comes right after the fork.
    answered_while_running = check.answered()
    if held_after is None:
        check.close()
    else:
        held: list[int] = []
        threading.Timer(held_after, held.append, (signal.SIGINT,)).start()
        try:
            check.wait(held)
        except KeyboardInterrupt:
            raised = "KeyboardInterrupt"
    seconds = time.monotonic() - started
    status = check.status
    try:
        os.waitpid(check.pid, os.WNOHANG)
        reaped = False
    except ChildProcessError:
        reaped = True
    check.close()  # idempotent
    return {"raised": raised, "seconds": seconds, "exited_itself": status is not None and os.WIFEXITED(status),
            "reaped": reaped, "answered_while_running": answered_while_running}  # fmt: skip


def lock_closed(folder: str) -> dict[str, Any]:
    import fcntl

    seen = os.path.join(folder, "seen")
    with open(os.path.join(folder, "driver.lock"), "a+") as locked:
        fcntl.flock(locked, fcntl.LOCK_EX | fcntl.LOCK_NB)

        def probe(task: Task) -> None:
            held = os.path.exists(f"/proc/self/fd/{locked.fileno()}")  # before opening reuses the number
            with open(seen, "w") as out:
                out.write(str(held))

        checked(probe, close_in_child=(locked.fileno(),))
    with open(seen) as found:
        return {"open_in_child": found.read()}


def _raise(error: BaseException) -> Callable[[Task], None]:
    def work(task: Task) -> None:
        raise error

    return work


def _learns(task: Task) -> None:  # as hf's load learns its encoding and sizes
    task.encoding, task._meta = "one-hot", {"input_size": 7, "chance": 0.5}  # type: ignore[attr-defined]


def _holds_a_lock(task: Task) -> None:
    task.lock = threading.Lock()  # type: ignore[attr-defined]


def _missing_key(task: Task) -> None:
    {}["no such key"]


SCENARIOS: dict[str, Callable[..., dict[str, Any]]] = {
    "learns": lambda: checked(_learns),
    "unpicklable": lambda: checked(_holds_a_lock),
    **{
        f"domain-{name}": (lambda error=error: checked(_raise(error)))
        for name, error in DOMAIN_ERRORS.items()
    },
    "other": lambda: checked(_missing_key),
    "exits": lambda: checked(lambda task: os._exit(9)),
    "killed": lambda: checked(lambda task: os.kill(os.getpid(), signal.SIGKILL)),
    "closed": lambda: stopped(None),
    "held": lambda: stopped(0.5),
    "lock": lock_closed,
}


if __name__ == "__main__":
    name, *args = sys.argv[1:]
    safe = fork_is_safe()  # before the scenario starts any thread
    print(json.dumps({"fork_was_safe": safe, **SCENARIOS[name](*args)}, default=str))
