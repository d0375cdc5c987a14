"""A sweep's data and cell checks in a forked child process, while the driver imports MLflow and starts Ray.

The checks import torch and datasets and run every cell once: in the one-trial sweep's driver they held
Python's global lock 4.5 s of the 7.8 s it was held in the command's first 9 s (py-spy ``--gil``), while
the second core waited on nothing but Ray's agents. A child forked from the command, before any thread or
native runtime has started, runs them on that core instead, and the driver never imports torch until its
tail needs it.

The child tells the driver its outcome through a pipe: the task as loaded (a task's ``load`` may set what
the model is built from, such as ``hf``'s encoding), or the error to raise (rnnbench's own as it was; any
other with the child's traceback attached as a note). Where forking is not safe (not Linux, a thread or Ray
or torch already running in this process, as in an in-process sweep under pytest) the checks run in the
driver itself, as before.

Signals: Ctrl-C and SIGTERM are blocked across the fork, so none is lost while the child sets up its
handlers; in the child the first of them raises KeyboardInterrupt (the half-written cache entry is removed)
and later ones are ignored, so that clean-up runs to its end. A Ctrl-C or SIGTERM the driver holds while it
waits is passed on to the child, which is killed if it has not ended 10 s later; the child is sent Ctrl-C
too if the driver dies.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from rnnbench.errors import portable

if TYPE_CHECKING:
    from rnnbench.sweep.plan import SweepPlan

# Modules that start threads or native runtimes a forked child would inherit half-held (OpenMP, gRPC).
_UNSAFE_MODULES = ("torch", "ray._raylet", "grpc")
_PR_SET_PDEATHSIG = 1
_STOPPING = (signal.SIGINT, signal.SIGTERM)
GRACE = 10.0  # seconds a child told to stop has to remove what it was writing, before SIGKILL


class CheckerDied(RuntimeError):
    """The child checking the data and the cells ended without an answer (killed, out of memory)."""


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
        self.plan, self.pid = plan, pid
        self._reading: int | None = reading
        self.status: int | None = None  # the child's wait status, once reaped

    @classmethod
    def start(cls, plan: SweepPlan, close_in_child: tuple[int, ...] = ()) -> ForkedCheck | None:
        """Fork the child, or None where forking is not safe (the caller then checks in-process).
        ``close_in_child``: descriptors the child must not hold (the sweep's lock: a child that outlived the
        driver would keep it)."""
        if not fork_is_safe():
            return None
        for stream in (sys.stdout, sys.stderr):  # else what they buffered is written twice
            with contextlib.suppress(Exception):
                stream.flush()
        parent, prctl = os.getpid(), _prctl()
        reading, writing = os.pipe()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING)
        try:
            pid = os.fork()
            if pid == 0:  # pragma: no cover  (the child: coverage is not collected there)
                code = 1
                try:
                    os.close(reading)
                    for fd in close_in_child:
                        with contextlib.suppress(OSError):
                            os.close(fd)
                    code = _run_child(plan, writing, parent, prctl, blocked)
                finally:
                    os._exit(code)
        finally:
            if os.getpid() == parent:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        os.close(writing)
        return cls(plan, pid, reading)

    def answered(self) -> bool:
        """Whether the child has answered or ended (``wait`` then no longer waits on its check), asked
        without waiting; False once ``wait`` or ``close`` has taken the pipe."""
        return self._reading is not None and bool(select.select([self._reading], [], [], 0)[0])

    def wait(self, held: list[int] | None = None) -> None:
        """Block until the child is done; raise its error, or take the task as it loaded it. A signal that
        lands in ``held`` meanwhile (the driver's hold on Ctrl-C) stops the child and raises KeyboardInterrupt."""
        assert self._reading is not None
        reading, self._reading = self._reading, None
        chunks = []
        try:
            while True:
                if held:
                    raise KeyboardInterrupt
                if not select.select([reading], [], [], 0.1)[0]:
                    continue
                chunk = os.read(reading, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        except KeyboardInterrupt:
            self.close()
            raise
        finally:
            os.close(reading)
        self._reap()
        if held:  # arrived as the child ended (a Ctrl-C to the process group stops both)
            raise KeyboardInterrupt
        try:
            outcome, value = pickle.loads(b"".join(chunks))
        except Exception:  # nothing, or a cut answer: it died before it could say anything
            raise CheckerDied(f"the process checking the task's data and the cells (pid {self.pid}) "
                              f"{_how_it_ended(self.status)}") from None  # fmt: skip
        if outcome == "error":
            raise value
        if value is None:  # the task held something that does not pickle: check here, from the warm cache
            self.plan.check_data_and_cells()
        else:
            self.plan.task.__dict__.update(value)

    def close(self) -> None:
        """Stop the child if it still runs (Ctrl-C, an error in the driver) and reap it; idempotent."""
        if self._reading is not None:
            with contextlib.suppress(OSError):
                os.close(self._reading)
            self._reading = None
        if self.status is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGINT)
        deadline = time.monotonic() + GRACE
        while time.monotonic() < deadline:
            if self._reap(block=False):
                return
            time.sleep(0.02)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self._reap()

    def _reap(self, block: bool = True) -> bool:
        """Whether the child has been reaped (now or before)."""
        if self.status is None:
            try:
                pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere (a SIGCHLD handler): its status is unknown
                self.status = 0
                return True
            if pid:
                self.status = status
        return self.status is not None


def _how_it_ended(status: int | None) -> str:
    if status is not None and os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        hint = " (the kernel's out-of-memory killer, or kill -9?)" if number == signal.SIGKILL else ""
        return f"was killed by {signal.Signals(number).name}{hint}"
    code = os.WEXITSTATUS(status) if status is not None else "unknown"
    return f"ended with exit code {code} without an answer"


def _run_child(plan: SweepPlan, writing: int, parent: int, prctl: Any, blocked: set[signal.Signals]) -> int:
    """The child's whole life: check and report; returns its exit code (the caller leaves with os._exit,
    running none of the driver's exit handlers)."""
    from rnnbench.util.timings import mark

    for number in _STOPPING:
        signal.signal(number, _stop_once)
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # a signal held since the fork lands now
    _die_with_parent(parent, prctl)
    mark("check forked")
    try:
        plan.check_data_and_cells()
        outcome: tuple[str, Any] = ("ok", _picklable(vars(plan.task)))
    except BaseException as exc:  # reported to the driver, which raises it
        outcome = ("error", portable(exc, "the process checking the data and the cells"))
    try:
        with open(writing, "wb") as pipe:
            pipe.write(pickle.dumps(outcome))
        code = 0
    except BaseException:  # the driver is gone (a broken pipe)
        code = 1
    with contextlib.suppress(Exception):  # a warning the check logged (stdout: the checks print nothing)
        sys.stderr.flush()
    return code


def _stop_once(number: int, frame: Any) -> None:
    """The child's first Ctrl-C or SIGTERM stops its check; later ones are ignored while it cleans up."""
    for each in _STOPPING:
        # A handler that does nothing, not SIG_IGN: a signal that arrived with this one (the group's SIGTERM
        # beside the SIGINT its dying parent sends) is still pending, and Python raises "OSError: Signal 15
        # ignored due to race condition" for a pending signal whose handler became SIG_IGN, a traceback in
        # the command's output where it should stop quietly.
        signal.signal(each, _ignore)
    raise KeyboardInterrupt


def _ignore(number: int, frame: Any) -> None:
    """Later stops, while the child cleans up after the first."""


def _prctl() -> Any:
    """libc's prctl, looked up before the fork: a child must not load libraries (the loader's lock)."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except Exception:
        return None


def _die_with_parent(parent: int, prctl: Any) -> None:
    """Ctrl-C this child when the driver dies (killed, say): it never checks on for nobody."""
    if prctl is not None:
        with contextlib.suppress(Exception):
            prctl(_PR_SET_PDEATHSIG, signal.SIGINT)
    if os.getppid() != parent:  # it died before the request was made
        os.kill(os.getpid(), signal.SIGINT)


def _picklable(state: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return pickle.loads(pickle.dumps(state))
    except Exception:
        return None
