"""The sweep subsystem: cells compared by per-cell Optuna studies run as Ray Tune trials, recorded in MLflow.

A trial's path, module by module::

    settings   SweepSettings from flags, a sweep file or a resumed sweep's state (resolve_settings)
    plan       every check that needs no cluster (prepare) -> SweepPlan
    driver     run_sweep: the parent MLflow run, the state file, one Tuner per cell
    cluster    Ray started here (or joined) and its resources checked
    search     the resumable Optuna searcher (SweepSearch) and its sampler
    scheduler  ASHA on epoch reports, never at or after the last epoch
    worker     the trial function in a Ray worker: TrainConfig -> train() -> tune.report
    scratch    the worker's folder for checkpoints on their way to Tune, and what ended workers left
    recorder   the driver's Tune callback: one nested MLflow run per trial, then Optuna is told
    progress   the live counts and table
    summary    the best trial per cell and the status counts, from MLflow
    state      the sweep's folder: its settings, parent run and Optuna journal

Importing this package is cheap: Ray, Tune and torch load when a sweep runs.
"""

from __future__ import annotations

from rnnbench.sweep.driver import SweepResult, run_sweep
from rnnbench.sweep.progress import CellProgress, SweepProgress
from rnnbench.sweep.settings import SweepConfigError, SweepSettings, resolve_settings
from rnnbench.sweep.state import SweepError, SweepInterrupted, SweepStopped, load_state

__all__ = [
    "CellProgress",
    "SweepConfigError",
    "SweepError",
    "SweepInterrupted",
    "SweepProgress",
    "SweepResult",
    "SweepSettings",
    "SweepStopped",
    "load_state",
    "resolve_settings",
    "run_sweep",
]
