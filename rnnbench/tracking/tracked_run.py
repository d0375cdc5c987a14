"""One tracked training run: check the inputs, open an MLflow run, train, record the outcome.

The inputs are checked in the order of what they cost to import: the configuration, the cell's name and the
task's options first, then the data (``datasets``), then the cell's trial pass and the device (torch), and
only then is MLflow's store opened: a bad data file is named about 2.4 s of CPU sooner than with torch and
the training loop imported first (``rnnbench train`` with a one-row CSV: 2.0-2.4 s against 4.4-4.8 s).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from rnnbench.errors import RnnbenchError
from rnnbench.tracking.recorder import RunRecorder, run_params
from rnnbench.tracking.store import DEFAULT_EXPERIMENT, Store, TrackingError
from rnnbench.training.config import TrainConfig, build_task, parse_option
from rnnbench.training.data import splits_of

if TYPE_CHECKING:
    from rnnbench.training.loop import EpochReport, TrainResult

__all__ = [
    "TrackedRun",
    "TrainingFailed",
    "parse_option",
    "record_failure",
    "record_trained",
    "run_header",
    "run_tracked",
]


class TrainingFailed(RnnbenchError):
    """Training raised; the MLflow run is marked FAILED with the error."""

    def __init__(self, run_id: str, error: BaseException) -> None:
        self.run_id, self.error = run_id, error
        super().__init__(
            f"training failed ({type(error).__name__}: {error}); MLflow run {run_id} is marked FAILED"
        )


@dataclass
class TrackedRun:
    run_id: str
    tracking_uri: str
    experiment_id: str
    result: TrainResult


def run_tracked(
    config: TrainConfig,
    tracking_uri: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    run_name: str | None = None,
    parent_run_id: str | None = None,
    extra_tags: dict[str, str] | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
    on_step: Callable[[int, float], None] | None = None,
    store: Store | None = None,
) -> TrackedRun:
    """Train ``config`` and record it as one MLflow run.

    Bad input (unknown cell or task, invalid sizes or options, unusable store) raises before any
    run is created; an error during training marks the run FAILED and raises TrainingFailed. ``store``:
    an open store to record in (its URI and experiment then stand for ``tracking_uri`` and ``experiment``).
    """
    from rnnbench.core.plugin_manager import get_cell

    config.validate()
    cell = get_cell(config.cell)
    # Bad files fail here, before a run. Not kept for the next call (task_and_data): in a long-lived process a
    # data file may change between two runs.
    task = build_task(config)
    splits = splits_of(task, config)
    cell.preflight(task.input_size)
    from rnnbench.training.loop import resolve_device, train

    resolve_device(config.device)  # a device this machine lacks fails here, before a run
    recorder = RunRecorder(tracking_uri, experiment, store=store)
    name, params, tags, description = run_header(config, task, run_name, extra_tags)
    run_id = recorder.start(name, params, tags, parent_run_id=parent_run_id, description=description)

    def epoch_done(report: EpochReport) -> None:
        recorder.log_epoch(report)
        if on_epoch is not None:
            on_epoch(report)

    try:
        result = train(config, on_epoch=epoch_done, on_step=on_step, task=task, splits=splits)
        recorder.finish(result)
    except BaseException as exc:
        record_failure(recorder, run_id, exc)
    if result.best_state is not None:  # after the run is FINISHED: a failure here loses no result
        from rnnbench.tracking.models import log_trained

        _log_model(recorder.store, run_id, lambda: log_trained(recorder.store, run_id, config, task, splits,
                                                               result.best_state))  # fmt: skip
    return TrackedRun(run_id, recorder.tracking_uri, recorder.experiment_id, result)


def record_trained(
    config: TrainConfig,
    task: Any,
    trained: Any,
    folder: Path,
    store: Store,
    run_name: str | None = None,
    parent_run_id: str | None = None,
    extra_tags: dict[str, str] | None = None,
) -> TrackedRun:
    """Record as one MLflow run what a worker trained (``rnnbench.sweep.reseed_pool.Trained``) on ``task``
    (its data cached here), with its times, and log its model from the files it wrote into ``folder``; an
    error in training marks the run FAILED and raises TrainingFailed, as ``run_tracked`` does."""
    from rnnbench.tracking.models import log_model_files
    from rnnbench.training.recipe import RECIPE_FILE

    recorder = RunRecorder(store=store)
    name, params, tags, description = run_header(config, task, run_name, extra_tags)
    run_id = recorder.start(name, params, tags, parent_run_id=parent_run_id, description=description,
                            start_time=trained.started)  # fmt: skip
    try:
        for report, at in trained.epochs:
            recorder.log_epoch(report, at=at)
        if trained.error is not None:
            raise trained.error
        recorder.finish(trained.result, end_time=trained.ended)
    except BaseException as exc:
        record_failure(recorder, run_id, exc)
    if trained.model_error is not None:

        def lost() -> None:
            raise trained.model_error

        _log_model(store, run_id, lost)
    elif (folder / RECIPE_FILE).is_file():
        _log_model(store, run_id, lambda: log_model_files(store, run_id, folder))
    return TrackedRun(run_id, recorder.tracking_uri, recorder.experiment_id, trained.result)


def run_header(
    config: TrainConfig, task: Any, run_name: str | None = None, extra_tags: dict[str, str] | None = None
) -> tuple[str, dict[str, Any], dict[str, str], str]:
    """A tracked run's name, params, tags and description, for ``RunRecorder.start``."""
    from rnnbench.core.plugin_manager import get_cell, plugin_infos
    from rnnbench.version import __version__

    cell = get_cell(config.cell)
    versions = {info.name: info.version for info in plugin_infos()}
    tags = {
        "status": "running",
        "rnnbench_version": __version__,
        "task_data_version": task.data_version,
        "cell": config.cell,
        "task": config.task,
        **(extra_tags or {}),
    }
    return (
        run_name or f"{config.cell}-{config.task}-d{config.depth}w{config.width}-s{config.seed}",
        run_params(config, task.options(), cell.plugin, versions.get(cell.plugin), task.encoding),
        tags,
        f"{cell.name} ({cell.description}) on {config.task} ({task.description})",
    )


def record_failure(recorder: RunRecorder, run_id: str, exc: BaseException) -> NoReturn:
    """Mark the run FAILED with ``exc`` and raise: domain errors and Ctrl-C as they are, the rest as
    TrainingFailed; a store that cannot take the mark is a TrackingError naming both errors."""
    try:
        recorder.fail(exc)
    except Exception as write_error:
        if isinstance(exc, TrackingError):
            raise exc from write_error
        raise TrackingError(
            f"run {run_id} stopped ({type(exc).__name__}: {exc}) and could not be marked FAILED in "
            f"{recorder.tracking_uri} ({type(write_error).__name__}: {write_error})"
        ) from exc
    if isinstance(exc, (KeyboardInterrupt, RnnbenchError)):
        raise exc
    raise TrainingFailed(run_id, exc) from exc


def _log_model(store: Store, run_id: str, log: Callable[[], Any]) -> None:
    """Run ``log`` (which logs the run's model); an error other than rnnbench's own is a TrackingError."""
    from rnnbench.errors import root_cause

    try:
        log()
    except RnnbenchError:
        raise
    except Exception as exc:  # the run and its metrics are recorded; only the model is missing
        raise TrackingError(
            f"tracking URI {store.uri}: run {run_id} is recorded, but its model could not be logged "
            f"({root_cause(exc)})"
        ) from exc
