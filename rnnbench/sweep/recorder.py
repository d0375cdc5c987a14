"""The trial recorder: a Ray Tune callback on the driver that writes one nested MLflow run per trial,
tells the searcher once the record is written, and keeps the sweep's progress.

Only the driver writes to the store, so parallel trials never contend for an sqlite file. Every write
is guarded: a failed one leaves its trial untold to Optuna (``--resume`` reruns it) and stops the sweep.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from ray import tune

from rnnbench.errors import root_cause
from rnnbench.sweep.progress import SweepProgress
from rnnbench.sweep.routing import CELL, sampled_values
from rnnbench.sweep.search import SweepSearch
from rnnbench.sweep.warm import warm_the_tail
from rnnbench.tracking.lrd_plot import write_lrd_plot
from rnnbench.tracking.recorder import write_lrd_table
from rnnbench.tracking.run_search import trial_runs
from rnnbench.training.lrd import Bucket, LRDResult
from rnnbench.training.metrics import EPOCH_METRICS, FINAL_METRICS, PLACEMENT_TAGS, pick, selection_metric


@dataclass(frozen=True)
class CellRecord:
    """Where and how the trials of one cell are recorded."""

    sweep: str
    cell: str
    task: str
    experiment_id: str
    parent_run_id: str
    params: dict[str, Any]  # the MLflow params every trial of the cell shares (its own sampled values added)
    tags: dict[str, str]  # tags every trial run carries (versions)
    resuming: bool = False  # a resumed sweep may find runs a killed driver left behind


def trial_error(trial: Any) -> str:
    """The error of a failed Tune trial, as text (never raises)."""
    try:
        error = trial.get_error()
        if error is not None:  # Tune hands back either the exception or its formatted text
            return (error if isinstance(error, str) else f"{type(error).__name__}: {error}")[:5000]
    except Exception:  # reading an error must never break the sweep
        pass
    path = getattr(trial, "error_file", None)
    if path and Path(path).is_file():
        return Path(path).read_text()[-5000:]
    return "unknown error"


def is_out_of_memory(error: str) -> bool:
    """Whether a trial's error is Ray's memory monitor killing its worker (``OutOfMemoryError``)."""
    return "OutOfMemoryError" in error or "running low on memory" in error


class TrialRecorder(tune.Callback):
    """Writes one nested MLflow run per trial, from the driver only, and keeps the progress."""

    def __init__(self, client: Any, record: CellRecord, search: SweepSearch, progress: SweepProgress) -> None:
        self.client, self.record, self.search, self.progress = client, record, search, progress
        self.cell = record.cell
        self.runs: dict[str, str] = {}  # Tune trial id -> MLflow run id
        self.artifact_uris: dict[str, str] = {}  # MLflow run id -> its artifact URI, for runs created here
        self.started: dict[str, float] = {}
        self.attempts: dict[str, int] = {}
        self.finished: set[str] = set()
        self.plots: list[Future[None]] = []
        self.plot_pool: ThreadPoolExecutor | None = None
        self.errors: list[str] = []  # tracking writes that failed; the sweep stops on the first

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the experiment; the client and the live display stay here.
        skip = ("client", "progress", "search", "plots", "plot_pool")
        return {k: v for k, v in self.__dict__.items() if k not in skip}

    def _guard(self, hook: str, trial: Any, body: Callable[[], None]) -> bool:
        """Run a tracking write; a failure must not break Tune's trial handling. The trial is then
        left untold to Optuna (it reruns on ``--resume``) and the sweep stops cleanly."""
        try:
            body()
            return True
        except Exception as exc:
            self.errors.append(f"{hook} of trial {trial.trial_id}: {root_cause(exc)}")
            self.search.leave_untold(trial.trial_id)
            return False

    def _mine(self, trial: Any) -> bool:
        """Whether ``trial`` is of this recorder's cell: one Tune run holds every cell's trials."""
        return trial.config.get(CELL, self.cell) == self.cell

    # --- Tune's hooks -----------------------------------------------------------------------------

    def setup(self, **info: Any) -> None:
        # Tune calls this before it starts the first trial's worker: seconds in which the driver idles (the
        # worker's process starts and imports torch), and the tail's imports (SciPy, matplotlib, MLflow's
        # model format) then take no CPU from the trial.
        warm_the_tail()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if not self._mine(trial):
            return
        if trial.trial_id in self.finished:  # rerun after its result was recorded: keep the record
            return
        self.progress.cells[self.cell].running += 1
        self.started[trial.trial_id] = time.monotonic()
        self.progress.update()
        self._guard("on_trial_start", trial, lambda: self._start(trial))

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if not self._mine(trial):
            return
        # The worker died and Ray will run the trial again (FailureConfig): it is not running now.
        if trial.trial_id in self.finished:
            return
        self._not_running()
        run_id = self.runs.get(trial.trial_id)
        if run_id is not None:
            tags = [RunTag("status", "retrying"), RunTag("last_worker_error", trial_error(trial))]
            self._guard("on_trial_recover", trial, lambda: self.client.log_batch(run_id, tags=tags))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if not self._mine(trial):
            return
        if trial.trial_id in self.finished:
            return
        if result.get("final"):
            # Recorded here, before Tune tells the searcher: a trial whose record fails stays untold.
            self._finish(trial, result["status"], result, error=result.get("error"))
            return
        run_id = self.runs.get(trial.trial_id)
        if run_id is None:
            if result.get("done"):
                self._finish(trial, "pruned", result)
            return
        now, step = int(time.time() * 1000), int(result["epoch"])
        metrics = [Metric(k, v, now, step) for k, v in pick(result, EPOCH_METRICS).items()]
        written = self._guard(
            "on_trial_result", trial, lambda: self.client.log_batch(run_id, metrics=metrics)
        )
        if written and result.get(
            "done"
        ):  # the scheduler stopped it: Tune sets done before it tells the searcher
            self._finish(trial, "pruned", result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if not self._mine(trial):
            return
        # Completed and pruned trials were recorded from their last result; this catches the rest.
        if trial.trial_id in self.finished:
            return
        if self.errors:  # stopped because the store failed: neither pruned nor told; resume reruns it
            self.search.leave_untold(trial.trial_id)
            self._not_running()
            return
        self._finish(trial, "pruned", trial.last_result or {})

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if not self._mine(trial):
            return
        # Reached only when a worker died more often than FailureConfig allows.
        reason = trial_error(trial)
        error = f"worker failed {self.attempts.get(trial.trial_id, 1)} time(s): {reason}"
        if is_out_of_memory(reason):  # said first: the one thing a user must change is the memory
            error = f"out of memory: {error}"
        if trial.trial_id not in self.finished:
            self._finish(trial, "failed", trial.last_result or {}, error=error)

    # --- the records ------------------------------------------------------------------------------

    def _start(self, trial: Any) -> None:
        if trial.trial_id in self.runs:  # a retry after a worker died: the same run, one more attempt
            self.attempts[trial.trial_id] = self.attempts.get(trial.trial_id, 1) + 1
            tags = [RunTag("attempts", str(self.attempts[trial.trial_id])), RunTag("status", "running")]
            self.client.log_batch(self.runs[trial.trial_id], tags=tags)
            return
        number = self.search.optuna_number(trial.trial_id)
        self._delete_stale_runs(number)
        record = self.record
        tags = {
            **record.tags,
            "mlflow.parentRunId": record.parent_run_id,
            "sweep": record.sweep,
            "cell": record.cell,
            "task": record.task,
            "optuna_trial": str(number),
            "tune_trial_id": trial.trial_id,
            "status": "running",
            "attempts": "1",
            "mlflow.note.content": f"{record.cell} on {record.task}: trial {number} of sweep {record.sweep}",
        }
        run = self.client.create_run(record.experiment_id, tags=tags, run_name=f"{record.cell}-t{number}")
        self.runs[trial.trial_id] = run.info.run_id
        self.artifact_uris[run.info.run_id] = run.info.artifact_uri
        sampled = {k: ("none" if v is None else v) for k, v in sampled_values(trial.config).items()}
        params = {**record.params, **sampled}
        self.client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])

    def _delete_stale_runs(self, number: int | None) -> None:
        """Runs of this trial left by a killed or interrupted driver (only a resumed sweep has them): the
        trial reruns, so they go (a trial with one finished record was told from it before the rerun
        could start: adopt_recorded_trials; one with two would count twice)."""
        if not self.record.resuming or number is None:  # None would match every trial of the cell
            return
        found = trial_runs(self.client, self.record.experiment_id, sweep=self.record.sweep, cell=self.cell,
                           number=number)  # fmt: skip
        for stale in found:
            self.client.delete_run(stale.info.run_id)

    def _not_running(self) -> None:
        progress = self.progress.cells[self.cell]
        progress.running = max(progress.running - 1, 0)
        self.progress.update()

    def _finish(self, trial: Any, status: str, result: dict, error: str | None = None) -> None:
        self.finished.add(trial.trial_id)
        run_id = self.runs.get(trial.trial_id)
        if run_id is None:  # its run could not be created: the store is failing
            self.search.leave_untold(trial.trial_id)
            self._not_running()
            return
        written = self._guard(
            "recording the result", trial, lambda: self._write_final(trial, run_id, status, result, error)
        )
        if written:
            # Told now, not when Tune gets to it: a sweep stopped in between must not rerun it.
            self.search.record_written(trial.trial_id, None if status == "failed" and error else result)
            progress = self.progress.cells[self.cell]
            progress.counts[status] += 1
            progress.durations.append(time.monotonic() - self.started.get(trial.trial_id, time.monotonic()))
            if status == "completed":
                self.progress.record_best(self.cell, result.get(self.progress.metric))
        self._not_running()

    def _write_final(self, trial: Any, run_id: str, status: str, result: dict, error: str | None) -> None:
        now = int(time.time() * 1000)
        tags = [RunTag("status", status), *(RunTag(k, str(result[k])) for k in PLACEMENT_TAGS if k in result)]
        if error:
            tags.append(RunTag("error", error[-5000:]))
        if result.get("resumed_from_epoch"):  # a retried trial continued from its checkpoint
            tags.append(RunTag("resumed_from_epoch", str(int(result["resumed_from_epoch"]))))
        distributions = self.search.distributions(trial.trial_id)
        if distributions:  # lets the leaderboard rebuild the study (fANOVA) from MLflow alone
            tags.append(RunTag("optuna_distributions", distributions))
        metrics = []
        if result.get("final"):
            step = int(result.get("epochs_run", 0))
            metrics = [Metric(k, v, now, step) for k, v in pick(result, FINAL_METRICS).items()]
            if result.get("diverged_step") is not None:
                tags.append(RunTag("diverged_step", str(int(result["diverged_step"]))))
        elif status == "pruned" and "epoch" in result:
            metrics = [Metric("pruned_at_epoch", float(result["epoch"]), now, int(result["epoch"]))]
        self.client.log_batch(run_id, metrics=metrics, tags=tags)
        self._log_lrd(trial, run_id, result)
        self.client.set_terminated(run_id, "FAILED" if status == "failed" else "FINISHED")

    def _log_lrd(self, trial: Any, run_id: str, result: dict) -> None:
        """The LRD curve: its table now, its plot drawn off Tune's event loop (it takes longer than
        the whole record)."""
        rows = json.loads(result.get("lrd_curve") or "[]")
        if not rows:
            return
        lrd = LRDResult(
            score=result.get("lrd_score"),  # absent: one distance bucket, no LRD measure
            horizon=None if result.get("lrd_horizon") is None else int(result["lrd_horizon"]),
            buckets=tuple(Bucket(**row) for row in rows),
        )
        with tempfile.TemporaryDirectory() as folder:
            self._log_artifact(run_id, write_lrd_table(lrd, Path(folder)))
        if not lrd.measured:  # one distance bucket: one point, no plot (write_lrd_artifacts)
            return
        title = f"{self.cell} on {self.record.task}, trial {self.search.optuna_number(trial.trial_id)}"
        if self.plot_pool is None:
            self.plot_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rnnbench-plots")
        self.plots.append(self.plot_pool.submit(self._plot, run_id, lrd, title))

    def _plot(self, run_id: str, lrd: LRDResult, title: str) -> None:
        with tempfile.TemporaryDirectory() as folder:
            self._log_artifact(run_id, write_lrd_plot(lrd, Path(folder), title))

    def _log_artifact(self, run_id: str, path: Path) -> None:
        """``client.log_artifact`` without the query of the whole run it makes first to find where the
        run's artifacts go (8 ms of CPU per trial on sqlite): the run's creation said where."""
        uri = self.artifact_uris.get(run_id)
        if uri is None:  # a run created by an earlier driver of a resumed sweep
            self.client.log_artifact(run_id, str(path))
            return
        get_artifact_repository(uri, tracking_uri=self.client.tracking_uri).log_artifact(str(path))

    def wait_for_plots(self) -> list[str]:
        """Wait for the LRD plots still being drawn; returns the failures (a plot is not a result)."""
        failures = []
        for future in self.plots:
            try:
                future.result()
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
        self.plots.clear()
        if self.plot_pool is not None:
            self.plot_pool.shutdown(wait=True)
            self.plot_pool = None
        return failures


class StopOnTrackingError(tune.Stopper):
    """Ends the sweep once the recorder could not write a record (a full disk, a store gone)."""

    def __init__(self, recorder: TrialRecorder) -> None:
        self.recorder = recorder

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return bool(self.recorder.errors)


# A trial run's status tag -> the Optuna state its record stands for.
RECORDED_STATES = {"completed": "COMPLETE", "pruned": "PRUNED", "diverged": "FAIL", "failed": "FAIL"}


def adopt_recorded_trials(
    storage: Any, study_name: str, client: Any, record: CellRecord, metric: str
) -> list[int]:
    """Trials whose MLflow record a killed driver finished writing but never told Optuna (it tells right
    after): told now from that record, so that ``--resume`` keeps them rather than training them again.
    Returns their numbers; a trial without exactly one finished record reruns (its runs are replaced)."""
    import optuna
    from optuna.trial import TrialState

    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:  # the cell had not started
        return []
    adopted = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        runs = [r for r in trial_runs(client, record.experiment_id, sweep=record.sweep, cell=record.cell,
                                      number=trial.number)
                if r.info.status in ("FINISHED", "FAILED") and r.data.tags.get("status") in RECORDED_STATES]  # fmt: skip
        if len(runs) != 1:
            continue
        state = TrialState[RECORDED_STATES[runs[0].data.tags["status"]]]
        value = (
            runs[0].data.metrics.get(selection_metric(metric)[0]) if state == TrialState.COMPLETE else None
        )
        if state == TrialState.COMPLETE and value is None:
            state = TrialState.FAIL
        study.tell(trial.number, value, state=state)
        adopted.append(trial.number)
    return adopted
