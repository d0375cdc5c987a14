"""What a sweep's end imports, imported from Tune's set-up on, while the first trial's worker starts and the
trials train: the driver idles meanwhile, and the tail (best models, summary, leaderboard plots) then starts
with them loaded. torch is not among them: the trials' workers write each model's files (the pickled model too),
and where the checks ran in a forked child the driver never imports torch."""

from __future__ import annotations

import importlib
import logging
import threading

# Measured on the one-trial sweep (benchmarks/harness.py): MLflow's model format, SciPy's statistics
# and matplotlib were seconds of the tail in a fresh process.
TAIL_MODULES = (
    "mlflow.pyfunc",
    "scipy.stats",
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
    "rnnbench.report.leaderboard",
    "rnnbench.sweep.models",
    "rnnbench.sweep.summary",
)
_started = threading.Event()


def warm_the_tail() -> None:
    """Start importing the tail's modules in a daemon thread, once per process.

    Called from inside Tune's run (the trial recorder's ``setup``), whose own SIGINT handler turns the first
    Ctrl-C into a graceful stop: no KeyboardInterrupt lands in the main thread while this thread imports (see
    ``held_interrupts``)."""
    if _started.is_set():
        return
    _started.set()
    threading.Thread(target=_import_the_tail, name="rnnbench-warm", daemon=True).start()


def _import_the_tail() -> None:
    for name in TAIL_MODULES:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a speed-up only: the tail imports it again and reports any error
            logging.getLogger("rnnbench").debug("warming %s failed: %s", name, exc)
