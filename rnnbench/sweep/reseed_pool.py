"""Reseeds trained side by side in worker processes; this process records each run once its worker is done.

A reseed trains one small model on its trial's CPU share (one thread in the README's quick start): one
after another, the quick start's 12 reseeds took 20.8 s on 2 cores, one of them idle. Here worker processes
(``python -m rnnbench.sweep.reseed_worker``: this process's environment and one-file plugins, none of its
threads, and not its main module, so a script calling ``reseed`` needs no ``__main__`` guard) import torch and
the training loop once each; a worker checks a reseed's cell, trains it and writes its model's files
(``final_checkpoint``); this process, the store's one writer as a sweep's driver is, then records the run with
the worker's start and end times and each epoch's time, and logs the model from those files without torch.

Used only where every reseed trains on the CPU (a worker says where ``auto`` lands) with a known thread
count, and more than one fits: anything else trains one after another in this process, as before.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rnnbench.training.config import TrainConfig

# What each worker imports as it starts, before its first reseed.
PRELOAD = ["torch", "rnnbench.training.loop", "rnnbench.training.recipe", "rnnbench.core.plugin_manager"]
POLL = 0.2  # seconds between looks for a finished worker: Ctrl-C is acted on between them
PR_SET_PDEATHSIG = 1


@dataclass
class Trained:
    """What a worker sends back: the result (its weights are in the model's files), each epoch's report
    with the time it ended, when training started and ended, and the errors of training or of writing the
    model's files, if any."""

    result: Any
    epochs: list[tuple[Any, float]]
    started: float
    ended: float
    error: BaseException | None = None
    model_error: BaseException | None = None  # the model's files could not be written


def workers_for(configs: list[TrainConfig]) -> int:
    """How many reseeds fit side by side on this machine's CPUs: 1 where any thread count is unknown."""
    threads = {config.threads for config in configs}
    if None in threads or len(configs) < 2:
        return 1
    return max(1, min(len(configs), int(usable_cpus() // max(t or 1 for t in threads))))


def usable_cpus(cgroup: Path = Path("/sys/fs/cgroup")) -> float:
    """The CPUs this process may use: those it may run on, fewer where its cgroup caps its CPU time (a
    container given 2 CPUs on a 64-core host: cgroup v2's ``cpu.max``, v1's ``cpu.cfs_quota_us``)."""
    cpus = float(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    for quota_file, period_file in (("cpu.max", None), ("cpu/cpu.cfs_quota_us", "cpu/cpu.cfs_period_us")):
        try:
            words = (cgroup / quota_file).read_text().split()
            if period_file is not None:
                words.append((cgroup / period_file).read_text().strip())
            quota, period = float(words[0]), float(words[1])
        except (OSError, ValueError, IndexError):  # no such file, or "max": no cap
            continue
        if quota > 0 and period > 0:
            return min(cpus, max(1.0, quota / period))
    return cpus


def device_kind(device: str) -> str:
    """In a worker: the kind of device a reseed given ``device`` trains on (``cpu``, ``cuda``, ...)."""
    from rnnbench.training.loop import resolve_device

    return resolve_device(device).type


def train_apart(config: TrainConfig, folder: str) -> Trained:
    """In a worker: check the cell and train ``config``; the model's files go to ``folder``. A cell that
    fails its check raises (no run is recorded, as in this process); an error in training is sent back."""
    from rnnbench.core.plugin_manager import get_cell
    from rnnbench.errors import portable
    from rnnbench.training.data import task_and_data
    from rnnbench.training.loop import train
    from rnnbench.training.recipe import final_checkpoint, input_example, recipe

    task, splits = task_and_data(config)  # the last reseed's, where they are the same data
    get_cell(config.cell).preflight(task.input_size)
    epochs: list[tuple[Any, float]] = []
    started = time.time()
    try:
        result = train(config, on_epoch=lambda r: epochs.append((replace(r, snapshot=None), time.time())),
                       task=task, splits=splits)  # fmt: skip
    except Exception as exc:  # recorded as the run's failure by the recording process
        return Trained(None, epochs, started, time.time(), portable(exc, "a reseed's worker"))
    model_error = None
    if result.best_state is not None:
        try:
            final_checkpoint(result.best_state, recipe(config, task), input_example(splits), Path(folder))
        except Exception as exc:  # the run is recorded all the same; its model is missing
            model_error = portable(exc, "a reseed's worker")
    result.best_state = None
    return Trained(result, epochs, started, time.time(), model_error=model_error)


class WorkerDied(RuntimeError):
    """A reseed's worker process ended without an answer (killed, out of memory)."""


class _Worker:
    """One worker process (``python -m rnnbench.sweep.reseed_worker``): pickles in on its standard input,
    pickles out on its own channel; its standard output and error go to a file, shown if it dies."""

    def __init__(self, plugin_files: list[str], log: Path) -> None:
        import subprocess
        import sys

        # Not the current folder first on its path (a local torch.py would shadow torch: PYTHONSAFEPATH,
        # Python 3.11+), and rnnbench where this process found it (a script may have put it on sys.path).
        found = str(Path(__file__).resolve().parents[2])
        path = os.pathsep.join(p for p in (found, os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "PYTHONSAFEPATH": "1", "PYTHONPATH": path}
        self.log = log
        with open(log, "wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "rnnbench.sweep.reseed_worker", str(os.getpid()), *plugin_files],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=output, env=env,
            )  # fmt: skip
        self.busy: int | None = None  # the index of the reseed it trains

    def send(self, message: tuple[Any, ...]) -> None:
        """Send a request; to a worker that has ended, nothing (``receive`` then says how it ended)."""
        with contextlib.suppress(BrokenPipeError):
            pickle.dump(message, self.process.stdin)
            self.process.stdin.flush()

    def receive(self) -> Any:
        """The worker's answer; WorkerDied where it ended without one."""
        try:
            return pickle.load(self.process.stdout)
        except (EOFError, pickle.UnpicklingError):
            import subprocess

            with contextlib.suppress(subprocess.TimeoutExpired):  # its own exit code, where it is ending
                self.process.wait(timeout=5)
            self.end()  # one that wrote something else and lives on is ended
            said = self.log.read_text(errors="replace").strip().splitlines()[-1:]  # a traceback's error
            raise WorkerDied(f"a reseed's worker (pid {self.process.pid}) ended with code "
                             f"{self.process.returncode} without an answer{': ' + said[0] if said else ''}"
                             ) from None  # fmt: skip

    def end(self) -> None:
        with contextlib.suppress(OSError):
            self.process.kill()
        self.process.wait()


def trained_side_by_side(configs: list[TrainConfig], workers: int) -> Iterator[tuple[int, Trained, Path]]:
    """Train ``configs`` on ``workers`` processes; yields (index, outcome, model folder) as each ends, or
    nothing where a reseed's device is not the CPU (the caller then trains them itself). A cell that fails
    its check raises here, as does a worker that dies training (an idle one that dies is let go); the other
    workers are ended."""
    from rnnbench.core.plugin_manager import plugin_infos

    files = [info.location for info in plugin_infos() if info.source == "file"]
    with tempfile.TemporaryDirectory(prefix="rnnbench-reseed-") as scratch:
        pool = [_Worker(files, Path(scratch) / "worker-0.log")]
        try:
            for device in dict.fromkeys(config.device for config in configs):  # before more workers start
                pool[0].send(("device", device))
                if _answer(pool[0].receive()) != "cpu":
                    return
            pool += [_Worker(files, Path(scratch) / f"worker-{k}.log") for k in range(1, workers)]
            yield from _dispatch(pool, configs, Path(scratch))
        finally:
            for worker in pool:
                worker.end()


def _dispatch(
    pool: list[_Worker], configs: list[TrainConfig], scratch: Path
) -> Iterator[tuple[int, Trained, Path]]:
    """Hand each idle worker the next reseed, and yield each outcome as it comes."""
    import selectors

    waiting, left = list(range(len(configs))), len(configs)

    def hand_on(worker: _Worker) -> None:
        if waiting:
            worker.busy = waiting.pop(0)
            worker.send(("train", configs[worker.busy], str(scratch / str(worker.busy))))

    with selectors.DefaultSelector() as ready:
        for worker in pool:
            ready.register(worker.process.stdout, selectors.EVENT_READ, worker)
            hand_on(worker)
        while left:
            worker = _first_done(ready)
            index, worker.busy = worker.busy, None
            if index is None:  # an idle worker has nothing to say: it ended; the others go on
                ready.unregister(worker.process.stdout)
                pool.remove(worker)
                with contextlib.suppress(Exception):
                    worker.receive()
                if not pool:
                    raise WorkerDied(f"every reseed's worker ended, {left} reseeds untrained")
                continue
            answer = worker.receive()
            hand_on(worker)  # before this outcome is recorded: the worker trains meanwhile
            left -= 1
            yield index, _answer(answer), scratch / str(index)


def _first_done(ready: Any) -> Any:
    """The first worker with an answer (or an end) to read; Ctrl-C is acted on between looks."""
    while True:
        for key, _ in ready.select(timeout=POLL):
            return key.data


def _answer(message: tuple[str, Any]) -> Any:
    kind, value = message
    if kind == "error":
        raise value
    return value


def serve(parent: int, plugin_files: list[str]) -> None:
    """A worker's life: load what reseeds need once, then answer each request until its input closes or
    ``parent`` (the recording process) dies."""
    import importlib
    import sys

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the recording process's to act on
    with contextlib.suppress(Exception):  # Linux: killed with its parent, not left training for nobody
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the request was made
        return
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # what training prints goes to the log, not into the answers
    for module in PRELOAD:
        importlib.import_module(module)
    from rnnbench.core.plugin_manager import load_plugins
    from rnnbench.errors import portable

    load_plugins(plugin_files)
    while True:
        try:
            request = pickle.load(sys.stdin.buffer)
        except EOFError:
            return
        try:
            kind, *asked = request
            answer = ("ok", device_kind(*asked) if kind == "device" else train_apart(*asked))
        except Exception as exc:
            answer = ("error", portable(exc, "a reseed's worker"))
        pickle.dump(answer, channel)
        channel.flush()
