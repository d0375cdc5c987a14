"""Training one configuration, and its MLflow record."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rnnbench.cli import app
from rnnbench.errors import TaskOptionError, TrainingConfigError, UnknownCellError
from rnnbench.tracking.tracked_run import TrainingFailed, run_tracked
from rnnbench.training.loop import StopTraining, TrainConfig, train
from tests.conftest import import_test_plugin

TINY = {"length": 12, "train_size": 128, "validation_size": 64, "test_size": 128}


def config(tmp_path, **overrides) -> TrainConfig:
    values = dict(
        cell="lstm", task="adding", width=8, epochs=2, batch_size=32, threads=1,
        task_options=dict(TINY), cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def faulty_cells(use_plugin):
    use_plugin(import_test_plugin("faulty_cells"), "faulty-cells")


def test_training_completes_with_every_metric(tmp_path):
    seen = []
    result = train(config(tmp_path, epochs=3, patience=0), on_epoch=seen.append)
    assert result.status == "completed" and result.epochs_run == 3 == len(seen)
    assert [r.epoch for r in seen] == [1, 2, 3] and seen[-1].step == result.steps == 12
    metrics = result.final_metrics()
    for key in ("best_val_loss", "best_val_accuracy", "test_loss", "test_accuracy", "lrd_score", "lrd_horizon",
                "param_count", "train_seconds", "steps_per_second"):  # fmt: skip
        assert key in metrics and math.isfinite(metrics[key])
    assert 0 <= metrics["lrd_score"] <= 1 and metrics["param_count"] == 4 * 8 * (2 + 8 + 2) + 9


def test_nesterov_is_sgd_with_nesterov_momentum(tmp_path, monkeypatch):
    import torch

    built = []
    original = torch.optim.SGD.__init__

    def spy(self, params, **kwargs):
        built.append(kwargs)
        original(self, params, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "__init__", spy)
    train(config(tmp_path, epochs=1, optimizer="nesterov", momentum=0.95, clip=None))
    train(config(tmp_path, epochs=1, optimizer="sgd", momentum=0.95))
    assert [b["nesterov"] for b in built] == [True, False] and built[0]["momentum"] == 0.95


def test_training_is_deterministic_under_a_seed(tmp_path):
    a, b = train(config(tmp_path)), train(config(tmp_path))
    c = train(config(tmp_path, seed=1))
    assert [r.train_loss for r in a.history] == [r.train_loss for r in b.history]
    assert a.test_loss == b.test_loss
    assert a.test_loss != c.test_loss


@pytest.mark.parametrize("settings", [{}, {"dropout": 0.3, "depth": 2, "optimizer": "rmsprop"}])
def test_a_run_resumed_from_a_snapshot_ends_as_if_never_stopped(tmp_path, settings):
    """The snapshot of epoch 2, saved and loaded as a checkpoint, continues to the same result: the same
    losses per epoch, the same best epoch, weights and test accuracy (dropout's random stream included)."""
    import torch

    from rnnbench.training.loop import TrainState

    saved = tmp_path / "state.pt"

    def keep_epoch_2(report):
        if report.epoch == 2:
            report.snapshot().save(saved)

    whole = train(config(tmp_path, epochs=4, patience=0, **settings), on_epoch=keep_epoch_2)
    state = TrainState.load(saved)
    assert state.epoch == 2 and len(state.history) == 2
    seen = []
    resumed = train(config(tmp_path, epochs=4, patience=0, **settings), on_epoch=seen.append, resume=state)
    assert resumed.resumed_from_epoch == 2 and [r.epoch for r in seen] == [3, 4]
    assert [r.train_loss for r in resumed.history] == [r.train_loss for r in whole.history]
    assert [r.val_loss for r in resumed.history] == [r.val_loss for r in whole.history]
    assert (resumed.steps, resumed.best_epoch, resumed.test_loss, resumed.test_accuracy) == (
        whole.steps, whole.best_epoch, whole.test_loss, whole.test_accuracy
    )  # fmt: skip
    assert all(torch.equal(whole.best_state[k], resumed.best_state[k]) for k in whole.best_state)
    fresh = train(config(tmp_path, epochs=4, patience=0, **settings), resume=None)
    assert fresh.resumed_from_epoch == 0 and fresh.test_loss == whole.test_loss


@pytest.mark.parametrize("task", ["copy", "temporal_order"])
def test_training_on_classification_tasks(tmp_path, task):
    result = train(config(tmp_path, task=task, cell="gru"))
    assert result.status == "completed" and 0 <= result.test_accuracy <= 1
    if task == "copy":
        from rnnbench.tasks.copy import Copy

        lengths = np.asarray(Copy(**TINY).load(seed=0, cache_dir=tmp_path / "cache")["test"]["length"])
        assert result.baseline_loss == pytest.approx(10 * np.log(8) * len(lengths) / lengths.sum())
    else:
        assert result.baseline_loss is None


def test_early_stopping_restores_the_best_epoch(tmp_path, monkeypatch):
    import rnnbench.training.loop as training

    real = training.evaluate
    validation_losses = [0.5, 0.4, 0.45, 0.6, 0.3]  # best at epoch 2, then two epochs without gain

    def scripted(model, task, data):
        loss, scores = real(model, task, data)
        return (validation_losses.pop(0) if validation_losses else loss), scores

    monkeypatch.setattr(training, "evaluate", scripted)
    result = train(config(tmp_path, epochs=10, patience=2))
    assert result.epochs_run == 4 and result.best_epoch == 2
    assert result.val_loss == 0.4
    assert [r.val_loss for r in result.history] == [0.5, 0.4, 0.45, 0.6]


def test_diverging_run_is_recorded_not_raised(tmp_path, faulty_cells):
    result = train(config(tmp_path, cell="nan-after-3", epochs=3))
    assert result.status == "diverged"
    assert result.diverged_step == 4
    assert result.test_accuracy is None and result.lrd is None  # no epoch finished before it diverged


def test_callback_can_prune(tmp_path):
    def prune(report):
        if report.epoch == 1:
            raise StopTraining("pruned")

    result = train(config(tmp_path, epochs=5, patience=0), on_epoch=prune)
    assert result.status == "pruned" and result.epochs_run == 1
    assert result.test_accuracy is not None, "a pruned trial is still tested on its best weights"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"width": 0}, "width must be a positive integer, got 0"),
        ({"depth": -1}, "depth must be a positive integer, got -1"),
        ({"lr": 0.0}, "lr must be a positive number, got 0.0"),
        ({"lr": float("nan")}, "lr must be a positive number"),
        ({"clip": -1.0}, "clip must be a non-negative number"),
        ({"optimizer": "adagrad"}, "optimizer must be one of adam, sgd, nesterov, rmsprop, got 'adagrad'"),
        ({"dropout": 1.0}, "dropout must be in \\[0, 1\\), got 1.0"),
        ({"epochs": 0}, "epochs must be a positive integer, got 0"),
        ({"device": "tpu"}, "device 'tpu' is not a torch device"),
        ({"device": "meta"}, "device 'meta' asked for, but META is not available here"),
        (
            {"device": "cuda:7"}
            if not torch.cuda.is_available()
            else {"device": f"cuda:{torch.cuda.device_count()}"},
            "device 'cuda:[0-9]+' asked for, but (CUDA is not available here|this machine has [0-9]+ CUDA devices)",
        ),
        (
            {"device": "mps"} if not torch.backends.mps.is_available() else {"device": "meta"},
            "device '(mps|meta)' asked for, but (MPS|META) is not available here",
        ),
    ],
)
def test_bad_training_config(tmp_path, overrides, message):
    with pytest.raises(TrainingConfigError, match=message):
        train(config(tmp_path, **overrides))


# --- MLflow records ------------------------------------------------------------------------------


def _client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def test_tracked_run_records_params_metrics_tags_and_curve(tmp_path, tracking_uri):
    run = run_tracked(config(tmp_path, epochs=2, patience=0), tracking_uri, experiment="train-test")
    record = _client(tracking_uri).get_run(run.run_id)
    params, metrics, tags = record.data.params, record.data.metrics, record.data.tags
    assert record.info.status == "FINISHED"
    assert params["cell"] == "lstm" and params["task"] == "adding" and params["length"] == "12"
    assert params["width"] == "8" and params["clip"] == "1.0" and params["lr"] == "0.003"
    assert params["plugin"] == "rnnbench.plugins.lstm" and params["plugin_version"] != "unknown"
    assert params["input_encoding"] == "linear", "the encoding as resolved is recorded"
    for key in (
        "test_accuracy",
        "lrd_score",
        "lrd_horizon",
        "param_count",
        "train_seconds",
        "steps_per_second",
    ):
        assert key in metrics
    assert tags["status"] == "completed" and tags["task_data_version"] == "adding-1"
    assert tags["rnnbench_version"]
    history = _client(tracking_uri).get_metric_history(run.run_id, "val_loss")
    assert [m.step for m in history] == [1, 2]
    artifacts = {a.path for a in _client(tracking_uri).list_artifacts(run.run_id)}
    assert artifacts == {"lrd_curve.png", "lrd_curve.csv"}
    png = _client(tracking_uri).download_artifacts(run.run_id, "lrd_curve.png", str(tmp_path))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_diverged_run_is_tagged(tmp_path, tracking_uri, faulty_cells):
    run = run_tracked(config(tmp_path, cell="nan-after-3"), tracking_uri, experiment="train-test")
    record = _client(tracking_uri).get_run(run.run_id)
    assert record.info.status == "FINISHED"
    assert record.data.tags["status"] == "diverged" and record.data.tags["diverged_step"] == "4"
    assert record.data.metrics["diverged_step"] == 4


def test_failed_run_is_marked_failed_with_the_error(tmp_path, tracking_uri, faulty_cells):
    with pytest.raises(TrainingFailed) as info:
        run_tracked(config(tmp_path, cell="crash-after-3"), tracking_uri, experiment="train-test")
    record = _client(tracking_uri).get_run(info.value.run_id)
    assert record.info.status == "FAILED"
    assert record.data.tags["status"] == "failed"
    assert "simulated cell failure at call 4" in record.data.tags["error"]


def test_bad_input_creates_no_run(tmp_path, tracking_uri):
    client = _client(tracking_uri)
    experiment = client.get_experiment_by_name("train-test")
    before = len(client.search_runs([experiment.experiment_id])) if experiment else 0
    with pytest.raises(UnknownCellError):
        run_tracked(config(tmp_path, cell="lstn"), tracking_uri, experiment="train-test")
    with pytest.raises(TaskOptionError):
        run_tracked(config(tmp_path, task_options={"length": 2}), tracking_uri, experiment="train-test")
    with pytest.raises(TrainingConfigError, match="device 'tpu' is not a torch device"):
        run_tracked(config(tmp_path, device="tpu"), tracking_uri, experiment="train-test")
    experiment = client.get_experiment_by_name("train-test")
    after = len(client.search_runs([experiment.experiment_id])) if experiment else 0
    assert after == before


BAD_DATA_IN_A_FRESH_PROCESS = """
import sys
from rnnbench.errors import RnnbenchError
from rnnbench.tracking.tracked_run import run_tracked
from rnnbench.training.config import TrainConfig
config = TrainConfig(cell="gru", task="hf", task_options={"path": sys.argv[1]}, epochs=1, width=4,
                     cache_dir=sys.argv[3])
try:
    run_tracked(config, sys.argv[2])
except RnnbenchError as exc:
    print(exc)
print(sorted(m for m in ("torch", "mlflow") if m in sys.modules))
"""


def test_bad_data_are_named_before_torch_or_mlflow_is_imported(tmp_path):
    """The data are read before the cell's trial pass (torch) and the store (MLflow): a bad file is named in
    about 2 s of CPU, not 4.5 s."""
    import subprocess
    import sys

    (tmp_path / "data.csv").write_text('sequence,label\n"1 2",0\n')
    store = tmp_path / "mlflow.db"
    done = subprocess.run([sys.executable, "-c", BAD_DATA_IN_A_FRESH_PROCESS, str(tmp_path / "data.csv"),
                           f"sqlite:///{store}", str(tmp_path / "cache")], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    error, imported = done.stdout.strip().splitlines()
    assert "the train split has 1 examples, too few" in error
    assert imported == "[]", f"imported before the data were read: {imported}"
    assert not store.exists(), "no store opened for a run that never started"


CACHED_DATA_IN_A_FRESH_PROCESS = """
import sys
from rnnbench.tracking.tracked_run import run_tracked
from rnnbench.training.config import TrainConfig
config = TrainConfig(cell="gru", task="adding", task_options={"length": 8, "train_size": 64, "validation_size": 32,
                     "test_size": 32}, epochs=1, width=4, cache_dir=sys.argv[2])
print(run_tracked(config, sys.argv[1]).result.status, "datasets" in sys.modules)
"""


def test_a_run_on_cached_data_reads_them_without_datasets(tmp_path):
    """As a trial's worker does: the cached columns, memory-mapped, without importing datasets (0.4 s of
    ``rnnbench train``); the run's data are the same (its test set's size)."""
    import subprocess
    import sys

    from rnnbench.training.config import build_task

    cache = tmp_path / "cache"
    build_task(TrainConfig(cell="gru", task="adding", task_options={"length": 8, "train_size": 64,
               "validation_size": 32, "test_size": 32})).ensure_cached(seed=0, cache_dir=cache)  # fmt: skip
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = subprocess.run([sys.executable, "-c", CACHED_DATA_IN_A_FRESH_PROCESS, store, str(cache)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-2:] == ["completed", "False"], done.stdout
    (run,) = _client(store).search_runs([_client(store).get_experiment_by_name("rnnbench").experiment_id])
    assert run.data.params["task.test_size"] == "32"


def test_train_command(tmp_path, tracking_uri):
    args = ["train", "--cell", "gru", "--task", "adding", "--width", "8", "--epochs", "1", "--length", "12",
            "--train-size", "64", "--validation-size", "32", "--test-size", "256", "--threads", "1",
            "--tracking-uri", tracking_uri, "--experiment", "cli-test", "--cache-dir", str(tmp_path), "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    import json

    summary = json.loads(result.stdout)
    assert summary["status"] == "completed" and "lrd_score" in summary
    run = _client(tracking_uri).get_run(summary["run_id"])
    assert run.data.params["cell"] == "gru"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--cell", "lstn", "--task", "adding"],
            "unknown cell 'lstn'; valid cells: cifg, fgr, gru, lstm, nfg, niaf, nig, noaf, nog, np, peephole, rnn",
        ),
        (["--cell", "lstm", "--task", "add"], "unknown task 'add'; valid tasks: adding, copy, digits, hf"),
        (["--cell", "lstm", "--task", "adding", "--width", "0"], "width must be a positive integer, got 0"),
        (["--cell", "lstm", "--task", "adding", "--length", "2"], "length 2 is too short; the minimum is 4"),
        (
            ["--cell", "lstm", "--task", "adding", "-o", "spread"],
            "task option 'spread' must look like KEY=VALUE",
        ),
    ],
)
def test_train_command_bad_input(args, message, tmp_path, tracking_uri):
    result = CliRunner().invoke(
        app, ["train", *args, "--tracking-uri", tracking_uri, "--cache-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())


def test_train_command_failed_run_exits_1(tmp_path, tracking_uri, faulty_cells):
    args = ["train", "--cell", "crash-after-3", "--task", "adding", "--width", "8", "--length", "12",
            "--train-size", "256", "--tracking-uri", tracking_uri, "--cache-dir", str(tmp_path)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "simulated cell failure" in result.stderr and "marked FAILED" in result.stderr
