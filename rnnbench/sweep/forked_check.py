"""A sweep's data and cell checks in a forked child process, while the driver imports MLflow and starts Ray.

The checks import torch and datasets and run every cell once: in the one-trial sweep's driver they held
Python's global lock for 4.5 of the 7.8 s before Tune's set-up (py-spy ``--gil``), while the second core
waited on nothing but Ray's agents. A child forked from the command, before any thread or native runtime
has started, runs them on that core instead, and the driver never imports torch until its tail needs it.

The child tells the driver its outcome through a pipe: the task as loaded (a task's ``load`` may set what
the model is built from, such as ``hf``'s encoding), or the error to raise, with its traceback attached as a
note. Where forking is not safe (not Linux, a thread or Ray or torch already running in this process, as in
an in-process sweep under pytest) the checks run in the driver itself, as before.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rnnbench.sweep.plan import SweepPlan

# Modules that start threads or native runtimes a forked child would inherit half-held (OpenMP, gRPC).
_UNSAFE_MODULES = ("torch", "ray._raylet", "grpc")
_PR_SET_PDEATHSIG = 1
_INTERRUPTS = 5  # Ctrl-Cs sent to a child that is stopped, one second apart, before SIGKILL


def fork_is_safe() -> bool:
    """Whether this process can fork a child that runs Python code safely."""
    return (
        sys.platform.startswith("linux")
        and threading.active_count() == 1
        and not any(name in sys.modules for name in _UNSAFE_MODULES)
    )


class ForkedCheck:
    """``plan.check_data_and_cells()`` running in a forked child; ``wait`` gives its outcome here."""

    def __init__(self, plan: SweepPlan, pid: int, reading: int) -> None:
        self.plan, self.pid, self._reading = plan, pid, reading
        self._done = False

    @classmethod
    def start(cls, plan: SweepPlan) -> ForkedCheck | None:
        """Fork the child, or None where forking is not safe (the caller then checks in-process)."""
        if not fork_is_safe():
            return None
        for stream in (sys.stdout, sys.stderr):  # else what they buffered is written twice
            with contextlib.suppress(Exception):
                stream.flush()
        reading, writing = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover  (the child: coverage is not collected there)
            os.close(reading)
            _run_child(plan, writing)
        os.close(writing)
        return cls(plan, pid, reading)

    def wait(self) -> None:
        """Block until the child is done; raise its error, or take the task as it loaded it."""
        chunks = []
        with os.fdopen(self._reading, "rb") as pipe:
            while chunk := pipe.read(1 << 16):
                chunks.append(chunk)
        self._reap()
        if not chunks:  # killed (the OOM killer, a signal) before it could say anything
            raise RuntimeError(f"the process checking the task's data and the cells (pid {self.pid}) died")
        outcome, value = pickle.loads(b"".join(chunks))
        if outcome == "error":
            raise value
        if value is None:  # the task held something that does not pickle: check here, from the warm cache
            self.plan.check_data_and_cells()
        else:
            self.plan.task.__dict__.update(value)

    def close(self) -> None:
        """Stop the child if it still runs (Ctrl-C, an error in the driver) and reap it; idempotent."""
        if self._done:
            return
        with contextlib.suppress(OSError):
            os.close(self._reading)
        # Its Ctrl-C: it removes a half-written cache entry and ends. Sent again while it runs: one that lands
        # as the child starts is dropped (CPython clears pending signals after a fork); SIGKILL at last.
        for attempt in range(_INTERRUPTS + 1):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGINT if attempt < _INTERRUPTS else signal.SIGKILL)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                try:
                    if os.waitpid(self.pid, os.WNOHANG)[0]:
                        self._done = True
                        return
                except ChildProcessError:
                    self._done = True
                    return
                time.sleep(0.02)
        self._reap()

    def _reap(self) -> None:
        if not self._done:
            self._done = True
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)


def _run_child(plan: SweepPlan, writing: int) -> None:
    """The child's whole life: check, report, and leave without running the driver's exit handlers."""
    from rnnbench.util.timings import mark

    code = 0
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # the driver's hold on Ctrl-C is not ours
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _die_with_parent()
        mark("check forked")
        try:
            plan.check_data_and_cells()
            outcome: tuple[str, Any] = ("ok", _picklable(vars(plan.task)))
        except BaseException as exc:  # reported to the driver, which raises it
            outcome = ("error", _portable(exc))
        with os.fdopen(writing, "wb") as pipe:
            pipe.write(pickle.dumps(outcome))
    except BaseException:  # the driver is gone (a broken pipe) or went away meanwhile
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _die_with_parent() -> None:
    """Ctrl-C this child when the driver dies (killed, say): it never checks on for nobody."""
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGINT)


def _picklable(state: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return pickle.loads(pickle.dumps(state))
    except Exception:
        return None


def _portable(exc: BaseException) -> BaseException:
    """``exc`` as it can cross the pipe. Pickling keeps its type and message but not its traceback or chain:
    an error other than rnnbench's own (whose message is complete) carries the child's traceback as a note,
    and one that does not pickle becomes a RuntimeError (or RnnbenchError) naming its type."""
    import rnnbench.errors

    text = "".join(traceback.format_exception(exc)).rstrip()
    try:
        copy = pickle.loads(pickle.dumps(exc))
    except Exception:
        base = (
            rnnbench.errors.RnnbenchError if isinstance(exc, rnnbench.errors.RnnbenchError) else RuntimeError
        )
        copy = base(f"{type(exc).__name__}: {exc}")
    if not isinstance(copy, (KeyboardInterrupt, rnnbench.errors.RnnbenchError)):
        # A domain error's message is complete (the CLI shows it alone); anything else keeps its traceback.
        copy.add_note(f"raised in the process checking the data and the cells:\n{text}")
    return copy
