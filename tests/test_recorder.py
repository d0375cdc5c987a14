"""The trial recorder fed with Tune-shaped results, without Ray: a real MLflow store, a real Optuna journal.

Tune calls the recorder's hooks with a Trial object; the stand-in below carries exactly what the
recorder reads of it (id, sampled config, last result, error).
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from rnnbench.sweep.progress import CellProgress, SweepProgress
from rnnbench.sweep.recorder import CellRecord, StopOnTrackingError, TrialRecorder
from rnnbench.sweep.search import SweepSearch, journal_storage
from rnnbench.tracking.recorder import RunRecorder
from rnnbench.training.lrd import lrd_score
from rnnbench.training.metrics import EPOCH_METRICS, FINAL_METRICS


@dataclass
class TuneTrial:
    """What the recorder reads of a ``ray.tune.experiment.Trial``."""

    trial_id: str
    config: dict[str, Any]
    last_result: dict[str, Any] = field(default_factory=dict)
    error: Exception | None = None
    error_file: str | None = None

    def get_error(self) -> Exception | None:
        return self.error


@dataclass
class Bench:
    recorder: TrialRecorder
    search: SweepSearch
    client: Any
    storage: Any
    progress: SweepProgress
    parent: str

    def trial(self, trial_id: str) -> TuneTrial:
        config = self.search.suggest(trial_id)  # as Tune asks the searcher before it starts a trial
        assert config is not None
        return TuneTrial(trial_id, config)

    def run(self, trial: TuneTrial) -> Any:
        run_id = self.recorder.runs[trial.trial_id]
        return self.client.get_run(run_id)

    def states(self) -> list[TrialState]:
        return [t.state for t in optuna.load_study(study_name="s:lstm", storage=self.storage).trials]


@pytest.fixture
def bench(tmp_path: Path) -> Bench:
    store = RunRecorder(f"sqlite:///{tmp_path / 'mlflow.db'}", "rnnbench")
    parent = store.start("s", {"trials": 3}, {"sweep": "s", "kind": "sweep"})
    storage = journal_storage(str(tmp_path / "optuna.journal"))
    search = SweepSearch(
        space=lambda t: {"lr": t.suggest_float("lr", 1e-4, 1e-1, log=True), "width": t.suggest_int("width", 8, 16)},
        metric="val_loss", mode="min", sampler=optuna.samplers.RandomSampler(seed=0),
        study_name="s:lstm", storage=storage,
    )  # fmt: skip
    progress = SweepProgress("s", "val_loss", "min", {"lstm": CellProgress(3)})
    record = CellRecord(
        sweep="s", cell="lstm", task="adding", experiment_id=store.experiment_id, parent_run_id=parent,
        params={"cell": "lstm", "task": "adding", "epochs": 2, "plugin": "rnnbench.plugins.lstm"},
        tags={"rnnbench_version": "test", "task_data_version": "adding-1"},
    )  # fmt: skip
    recorder = TrialRecorder(store.client, record, search, progress)
    return Bench(recorder, search, store.client, storage, progress, parent)


def epoch(n: int, done: bool = False) -> dict[str, Any]:
    return {"epoch": n, "train_loss": 1.0 / n, "val_loss": 0.9 / n, "val_accuracy": 0.5, "epoch_seconds": 0.1,
            "final": False, "done": done, "node_ip": "127.0.0.1"}  # fmt: skip


def final(status: str = "completed", val_loss: float = 0.3, **extra: Any) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    distances = rng.integers(1, 40, size=400)
    curve = lrd_score(distances, (rng.random(400) < 0.8).astype(float), 0.5)
    metrics = {name: 1.0 for name in FINAL_METRICS if name != "diverged_step"}
    metrics |= {"best_val_loss": val_loss, "lrd_score": curve.score, "lrd_horizon": float(curve.horizon),
                "epochs_run": 2.0}  # fmt: skip
    return {**metrics, "val_loss": val_loss, "status": status, "final": True, "done": True, "node_ip": "127.0.0.1",
            "lrd_curve": json.dumps(curve.rows()), **extra}  # fmt: skip


def test_a_completed_trial_is_one_finished_run_then_told_to_optuna(bench: Bench):
    trial = bench.trial("t1")
    bench.recorder.on_trial_start(0, [], trial)
    assert bench.progress.cells["lstm"].running == 1
    for n in (1, 2):
        bench.recorder.on_trial_result(0, [], trial, epoch(n))
    bench.recorder.on_trial_result(0, [], trial, final())
    assert bench.recorder.wait_for_plots() == []
    run = bench.run(trial)
    assert run.info.status == "FINISHED" and run.data.tags["status"] == "completed"
    assert run.data.tags["mlflow.parentRunId"] == bench.parent and run.data.tags["optuna_trial"] == "0"
    assert run.data.tags["node_ip"] == "127.0.0.1" and "optuna_distributions" in run.data.tags
    assert set(EPOCH_METRICS) <= set(run.data.metrics) and set(FINAL_METRICS) - {"diverged_step"} <= set(
        run.data.metrics
    )
    history = bench.client.get_metric_history(run.info.run_id, "val_loss")
    assert [m.step for m in history] == [1, 2], "one point per epoch; the final val_loss is best_val_loss"
    assert run.data.params["cell"] == "lstm" and run.data.params["lr"] == str(trial.config["lr"])
    artifacts = {a.path for a in bench.client.list_artifacts(run.info.run_id)}
    assert artifacts == {"lrd_curve.csv", "lrd_curve.png"}
    assert bench.states() == [TrialState.COMPLETE]
    cell = bench.progress.cells["lstm"]
    assert cell.counts["completed"] == 1 and cell.running == 0 and cell.best == 0.3
    # Tune's own calls afterwards change nothing: one record, told once.
    bench.recorder.on_trial_complete(0, [], trial)
    bench.search.on_trial_complete("t1", final())
    assert bench.progress.cells["lstm"].finished == 1 and bench.states() == [TrialState.COMPLETE]


@pytest.mark.parametrize(
    ("status", "feed", "run_status", "optuna_state"),
    [
        ("pruned", "scheduler", "FINISHED", TrialState.PRUNED),
        ("diverged", "final", "FINISHED", TrialState.FAIL),
        ("failed", "final", "FAILED", TrialState.FAIL),
        ("failed", "worker", "FAILED", TrialState.FAIL),
    ],
)
def test_each_status_is_recorded_and_told(bench: Bench, status, feed, run_status, optuna_state):
    trial = bench.trial("t1")
    bench.recorder.on_trial_start(0, [], trial)
    bench.recorder.on_trial_result(0, [], trial, epoch(1, done=feed == "scheduler"))
    if feed == "final":
        extra = {"error": "ValueError: boom"} if status == "failed" else {"diverged_step": 7.0}
        bench.recorder.on_trial_result(0, [], trial, final(status, **extra))
    elif feed == "worker":  # the worker died more often than FailureConfig allows
        trial.error = RuntimeError("worker died")
        bench.recorder.on_trial_error(0, [], trial)
    run = bench.run(trial)
    assert run.data.tags["status"] == status and run.info.status == run_status
    assert bench.states() == [optuna_state]
    assert bench.progress.cells["lstm"].counts[status] == 1 and bench.progress.cells["lstm"].running == 0
    if feed == "scheduler":
        assert run.data.metrics["pruned_at_epoch"] == 1
    if status == "diverged":
        assert run.data.tags["diverged_step"] == "7"
    if feed == "final" and status == "failed":
        assert run.data.tags["error"] == "ValueError: boom"
    if feed == "worker":
        assert run.data.tags["error"] == "worker failed 1 time(s): RuntimeError: worker died"


def test_a_curve_of_one_distance_bucket_is_recorded_as_its_table_without_a_plot(bench: Bench):
    """One bucket (any hf or mnist1d set-up, or a test set too small for two buckets of 30 examples): one point
    and no LRD measure, so no plot is drawn for the trial's run."""
    one = lrd_score(np.full(200, 3), np.ones(200), 0.5)
    assert len(one.buckets) == 1
    trial = bench.trial("t1")
    bench.recorder.on_trial_start(0, [], trial)
    bench.recorder.on_trial_result(0, [], trial, final(lrd_curve=json.dumps(one.rows()), lrd_score=None))
    assert bench.recorder.plot_pool is None and not bench.recorder.plots, "no plot was started"
    assert bench.recorder.wait_for_plots() == []
    assert {a.path for a in bench.client.list_artifacts(bench.run(trial).info.run_id)} == {"lrd_curve.csv"}


def test_a_retried_trial_keeps_its_run(bench: Bench):
    trial = bench.trial("t1")
    bench.recorder.on_trial_start(0, [], trial)
    bench.recorder.on_trial_result(0, [], trial, epoch(1))
    trial.error = RuntimeError("node lost")
    bench.recorder.on_trial_recover(0, [], trial)
    first = bench.run(trial)
    assert first.data.tags["status"] == "retrying" and "node lost" in first.data.tags["last_worker_error"]
    assert bench.progress.cells["lstm"].running == 0
    bench.recorder.on_trial_start(0, [], trial)
    again = bench.run(trial)
    assert again.info.run_id == first.info.run_id
    assert again.data.tags["attempts"] == "2" and again.data.tags["status"] == "running"
    bench.recorder.on_trial_result(0, [], trial, final())
    runs = bench.client.search_runs([again.info.experiment_id], "tags.optuna_trial = '0'")
    assert len(runs) == 1 and runs[0].data.tags["status"] == "completed"
    assert bench.states() == [TrialState.COMPLETE]


def test_a_failed_mlflow_write_leaves_the_trial_untold_and_stops_the_sweep(bench: Bench):
    stopper = StopOnTrackingError(bench.recorder)
    trial = bench.trial("t1")
    bench.recorder.on_trial_start(0, [], trial)
    assert not stopper.stop_all()
    bench.client.delete_run(bench.recorder.runs["t1"])  # the store refuses every later write to the run
    bench.recorder.on_trial_result(0, [], trial, final())
    assert bench.recorder.errors and "recording the result of trial t1" in bench.recorder.errors[0]
    assert stopper.stop_all()
    bench.search.on_trial_complete("t1", final())  # Tune tells the searcher: still untold
    assert bench.states() == [TrialState.RUNNING], "--resume reruns it"
    cell = bench.progress.cells["lstm"]
    assert cell.finished == 0 and cell.running == 0


def test_mlflow_is_written_before_optuna_is_told(bench: Bench, monkeypatch):
    seen: list[tuple[str, str]] = []
    current: list[TuneTrial] = []
    tell = bench.search._ot_study.tell

    def spy(trial: Any, value: Any = None, state: Any = None) -> Any:
        run = bench.run(current[-1])
        seen.append((run.data.tags["status"], run.info.status))
        return tell(trial, value, state=state)

    monkeypatch.setattr(bench.search._ot_study, "tell", spy)
    for trial_id, tune_first in (("t1", False), ("t2", True)):
        trial = bench.trial(trial_id)
        current.append(trial)
        bench.recorder.on_trial_start(0, [], trial)
        if tune_first:  # Tune may reach the searcher before the recorder: held until the record exists
            bench.search.on_trial_complete(trial_id, final())
            assert bench.states()[-1] == TrialState.RUNNING
        bench.recorder.on_trial_result(0, [], trial, final())
    assert seen == [("completed", "FINISHED"), ("completed", "FINISHED")]
    assert bench.states() == [TrialState.COMPLETE, TrialState.COMPLETE]


def test_the_recorder_pickles_without_its_store(bench: Bench):
    """Tune pickles its callbacks with the experiment state."""
    trial = bench.trial("t1")
    bench.recorder.on_trial_start(0, [], trial)
    copy = pickle.loads(pickle.dumps(bench.recorder))
    assert copy.runs == bench.recorder.runs and not hasattr(copy, "client")


def test_the_sweep_summary_gives_numbers_back_as_numbers():
    """`--json` printed `"depth": "1"` (MLflow keeps params as text); numbers are numbers again."""
    from rnnbench.sweep.summary import param_value

    assert [param_value(v) for v in ("1", "0.003", "none", "1e-05", "nesterov")] == [
        1,
        0.003,
        None,
        1e-05,
        "nesterov",
    ]
