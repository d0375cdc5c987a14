"""Trained models as MLflow PyTorch models: logged with each run, loaded in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mlflow.entities import LoggedModelStatus
from mlflow.tracking import MlflowClient

from rnnbench.core.plugin_manager import load_plugin_file, unregister_plugin
from rnnbench.tracking.tracked_run import run_tracked
from rnnbench.training.loop import TrainConfig
from tests.conftest import REPO, TEST_PLUGINS

TINY = {"length": 12, "train_size": 128, "validation_size": 64, "test_size": 128}

# What a user types in a new Python: the documented loader (no pickle), then the accuracy on the test split.
LOAD = """
import json, os, sys
import rnnbench
from rnnbench.tracking.models import score
try:
    model = rnnbench.load_model(sys.argv[1])
except Exception as exc:
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
else:
    loss, accuracy = score(model, cache_dir=sys.argv[2])
    print(json.dumps({"loss": loss, "accuracy": accuracy, "recipe": model.recipe}))
"""


def _config(tmp_path: Path, cell: str) -> TrainConfig:
    return TrainConfig(cell=cell, task="adding", width=8, epochs=2, batch_size=32, threads=1,
                       task_options=dict(TINY), cache_dir=str(tmp_path / "cache"))  # fmt: skip


def _load_in_a_fresh_process(tmp_path: Path, uri: str, model_uri: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "RNNBENCH_PLUGINS"}
    env["MLFLOW_TRACKING_URI"] = uri
    done = subprocess.run([sys.executable, "-c", LOAD, model_uri, str(tmp_path / "cache")], env=env,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_trained_model_loads_in_a_fresh_process_and_reproduces_its_test_accuracy(tmp_path, monkeypatch):
    from mlflow.utils import requirements_utils

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # MLflow's map of every installed distribution (0.8-1.0 s) is built by its requirements check alone,
    # which rnnbench's pinned requirements skip; the check is MLflow's again once the model is logged.
    monkeypatch.setattr(requirements_utils, "_MODULES_TO_PACKAGES", None)
    check = requirements_utils._check_requirement_satisfied
    tracked = run_tracked(_config(tmp_path, "lstm"), uri)
    assert requirements_utils._MODULES_TO_PACKAGES is None
    assert requirements_utils._check_requirement_satisfied is check
    # Logging the model moved MLflow's fluent URI for a moment; the environment this process's later
    # subprocesses inherit is left as it was (it once sent every later sweep to this process's store).
    assert "MLFLOW_TRACKING_URI" not in os.environ
    client = MlflowClient(uri)
    run = client.get_run(tracked.run_id)
    model_uri = run.data.tags["model_uri"]
    logged = client.get_logged_model(model_uri.removeprefix("models:/"))
    assert logged.source_run_id == tracked.run_id and logged.experiment_id == run.info.experiment_id
    assert logged.status == LoggedModelStatus.READY and logged.tags["cell"] == "lstm"
    loaded = _load_in_a_fresh_process(tmp_path, uri, model_uri)
    assert loaded["accuracy"] == run.data.metrics["test_accuracy"] == tracked.result.test_accuracy
    assert loaded["loss"] == pytest.approx(run.data.metrics["test_loss"], rel=1e-6)
    recipe = loaded["recipe"]
    assert (recipe["cell"], recipe["plugin"], recipe["width"], recipe["depth"]) == (
        "lstm",
        "rnnbench.plugins.lstm",
        8,
        1,
    )
    assert (recipe["task"], recipe["input_encoding"], recipe["task_options"]) == ("adding", "linear", TINY)
    files = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert "lrd_curve.csv" in files, "the run's own artifacts stay"
    model_files = Path(logged.artifact_location.removeprefix("file://"))
    mlmodel = (model_files / "MLmodel").read_text()
    assert "signature:" in mlmodel and "inputs:" in mlmodel and (model_files / "input_example.json").is_file()
    pins = (model_files / "requirements.txt").read_text().split()
    assert f"torch=={torch.__version__.split('+')[0]}" in pins and any(
        p.startswith("rnnbench==") for p in pins
    )


def test_a_model_whose_plugin_is_missing_names_the_plugin(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    info = load_plugin_file(TEST_PLUGINS / "mgu.py")
    try:
        tracked = run_tracked(_config(tmp_path, "mgu"), uri)
    finally:
        unregister_plugin(info.name)
    model_uri = MlflowClient(uri).get_run(tracked.run_id).data.tags["model_uri"]
    loaded = _load_in_a_fresh_process(tmp_path, uri, model_uri)
    assert loaded["error"].startswith("MissingPluginError: this model's cell 'mgu' comes from plugin")
    assert info.name in loaded["error"] and "RNNBENCH_PLUGINS" in loaded["error"]
    assert str(TEST_PLUGINS / "mgu.py") in loaded["error"] and "lstm" in loaded["error"], (
        "names the cells here"
    )


# MLflow's own loader still works, for stores one trusts (it unpickles).
MLFLOW_LOAD = """
import json, os, sys
import mlflow.pytorch
os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
model = mlflow.pytorch.load_model(sys.argv[1])
print(json.dumps({"cell": model.recipe["cell"]}))
"""


class _Payload:
    """A pickle that creates a folder when loaded: proof that something ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_a_replaced_file_in_a_logged_model_runs_nothing_through_the_documented_loader(tmp_path):
    """Each file of the logged model in turn replaced by a pickle that would create a folder when loaded:
    rnnbench.load_model never unpickles, so nothing runs; the recipe and the weights replaced are clear
    errors naming the file, any other file is not read at all."""
    import pickle

    import rnnbench
    from rnnbench.tracking.models import ModelLoadError
    from rnnbench.training.recipe import RECIPE_FILE, WEIGHTS_FILE

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracked = run_tracked(_config(tmp_path, "gru"), uri)
    client = MlflowClient(uri)
    model_uri = client.get_run(tracked.run_id).data.tags["model_uri"]
    root = Path(
        client.get_logged_model(model_uri.removeprefix("models:/")).artifact_location.removeprefix("file://")
    )
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert {f"extra_files/{RECIPE_FILE}", f"extra_files/{WEIGHTS_FILE}", "data/model.pth"} <= {
        p.relative_to(root).as_posix() for p in files
    }
    reference = rnnbench.load_model(model_uri, uri)
    for k, path in enumerate(files):
        marker = tmp_path / f"ran-{k}"
        original = path.read_bytes()
        path.write_bytes(pickle.dumps(_Payload(marker)))
        try:
            if path.name in (RECIPE_FILE, WEIGHTS_FILE):
                with pytest.raises(ModelLoadError, match=f"extra_files/{path.name}"):
                    rnnbench.load_model(model_uri, uri)
            else:
                loaded = rnnbench.load_model(model_uri, uri)
                assert loaded.recipe == reference.recipe
        finally:
            path.write_bytes(original)
        assert not marker.exists(), f"replacing {path.relative_to(root)} ran code"
    done = subprocess.run([sys.executable, "-c", MLFLOW_LOAD, model_uri], env={**os.environ, "MLFLOW_TRACKING_URI": uri},
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0 and json.loads(done.stdout.strip().splitlines()[-1]) == {"cell": "gru"}
    with pytest.raises(ModelLoadError, match="is not a logged model's URI"):
        rnnbench.load_model("runs:/abc/model", uri)


def test_a_model_pickled_before_the_layered_packages_still_loads():
    """tests/data/model-pickled-by-0.1.0.pkl was pickled by the code before the package move: its pickle
    names ``rnnbench.saved_model.rebuild``, which must stay importable; new pickles name the model layer."""
    import pickle

    import torch

    from rnnbench.training.model import SequenceModel

    blob = (REPO / "tests" / "data" / "model-pickled-by-0.1.0.pkl").read_bytes()
    assert b"rnnbench.saved_model" in blob and b"rnnbench.training" not in blob
    saved = pickle.loads(blob)
    model = saved["model"]
    assert isinstance(model, SequenceModel) and model.recipe["cell"] == "gru" and not model.training
    with torch.no_grad():
        here = model(saved["inputs"])
    # The outputs were computed on an AVX2 host: another CPU's vector copy of the kernels sums in another
    # order (one float32 ulp apart on an AVX-512 Xeon), so across hosts they agree to rounding, not bits.
    torch.testing.assert_close(here, saved["outputs"], rtol=1e-6, atol=1e-6)
    again = pickle.dumps(model)
    assert b"rnnbench.training.model" in again and b"rnnbench.saved_model" not in again
    with torch.no_grad():
        assert torch.equal(pickle.loads(again)(saved["inputs"]), here)  # the same host: the same bits


def test_the_requirements_check_is_back_once_the_last_of_overlapping_loggers_ends():
    """Two loggers overlapping, as two threads logging models at once: the check stays aside until both are
    done, then is MLflow's."""
    from mlflow.utils import requirements_utils

    from rnnbench.tracking import models
    from rnnbench.tracking.models import _requirements_taken_as_given

    check = requirements_utils._check_requirement_satisfied
    first, second = _requirements_taken_as_given(), _requirements_taken_as_given()
    try:
        first.__enter__()
        second.__enter__()  # as a second thread logging meanwhile would
        assert requirements_utils._check_requirement_satisfied("torch==0.0.1") is None
        first.__exit__(None, None, None)  # the first to start ends first
        assert requirements_utils._check_requirement_satisfied is not check, "the other is still logging"
        second.__exit__(None, None, None)
        assert requirements_utils._check_requirement_satisfied is check
    finally:  # whatever failed, the rest of the session gets MLflow's own check
        requirements_utils._check_requirement_satisfied = check
        models._skipping["count"] = 0


def _gru_weights_and_checkpoint_parts(tmp_path: Path, seed: int) -> tuple[dict, dict, torch.Tensor]:
    from rnnbench.core.plugin_manager import get_cell
    from rnnbench.training.loop import build_task
    from rnnbench.training.model import SequenceModel
    from rnnbench.training.recipe import input_example, recipe

    config = _config(tmp_path, "gru")
    task = build_task(config)
    torch.manual_seed(seed)
    weights = SequenceModel(get_cell("gru"), task, config.width, config.depth).state_dict()
    return (
        weights,
        recipe(config, task),
        input_example(task.load(seed=config.data_seed, cache_dir=config.cache_dir)),
    )


def test_a_sweeps_best_models_log_from_the_final_checkpoint_of_each_kind(tmp_path, monkeypatch, caplog):
    """A final checkpoint holds the model's files (its worker wrote them: the driver logs them as written,
    without torch); one of a sweep from before, or a worker's fallback where the files could not be written,
    is one file, rebuilt and logged with torch; one with some of the files missing, or one whose model cannot be
    rebuilt, logs nothing and says so, and the other cells' models are logged.
    Each model logged loads as the model saved, through rnnbench's loader and MLflow's, and serves (pyfunc)."""
    import mlflow.pyfunc
    import mlflow.pytorch
    import numpy as np
    import safetensors.torch

    import rnnbench
    from rnnbench.sweep import models
    from rnnbench.tracking.store import Store
    from rnnbench.training.recipe import (
        EXAMPLE_FILE,
        ONE_FILE_CHECKPOINT,
        RECIPE_FILE,
        VERSIONS_FILE,
        WEIGHTS_FILE,
        final_checkpoint,
        keep_final_checkpoint,
    )

    kept = (RECIPE_FILE, WEIGHTS_FILE, EXAMPLE_FILE, VERSIONS_FILE)
    store = Store.open(f"sqlite:///{tmp_path / 'mlflow.db'}", "sweep")
    made, best = {}, {}
    for seed, kind in enumerate(("files", "broken", "one-file", "fallback", "partial")):
        weights, model_recipe, example = _gru_weights_and_checkpoint_parts(tmp_path, seed)
        run = store.client.create_run(store.experiment_id, tags={"tune_trial_id": kind})
        folder = tmp_path / "ray" / "tune" / f"trial_{kind}_00000" / "checkpoint_000001"
        folder.mkdir(parents=True)
        if kind == "broken":  # its cell's plugin is not here: no model, and the other cells' still come
            model_recipe = {**model_recipe, "cell": "no-such-cell"}
        if kind in ("one-file", "broken"):
            torch.save(
                {"recipe": model_recipe, "weights": weights, "example": example}, folder / ONE_FILE_CHECKPOINT
            )
        elif (
            kind == "fallback"
        ):  # the files cannot be written (here safetensors fails): the worker keeps one file
            with monkeypatch.context() as patch:
                patch.setattr(safetensors.torch, "save_file", lambda *a, **k: 1 / 0)
                keep_final_checkpoint(weights, model_recipe, example, folder)
            assert [p.name for p in folder.iterdir()] == [ONE_FILE_CHECKPOINT]
        else:
            final_checkpoint(weights, model_recipe, example, folder)
        if kind == "partial":
            (folder / EXAMPLE_FILE).unlink()
        made[kind], best[kind] = (weights, folder), {"run_id": run.info.run_id}
    rebuilt, log_model = [], models.log_model

    def rebuilding(store: Store, run_id: str, *parts: object) -> str:
        rebuilt.append(run_id)
        return log_model(store, run_id, *parts)

    monkeypatch.setattr(models, "log_model", rebuilding)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")  # MLflow's loader below: our own store
    models.log_best_models(store, tmp_path, best)
    assert rebuilt == [best[k]["run_id"] for k in ("broken", "one-file", "fallback")], (
        "torch rebuilt those alone"
    )
    assert "model_uri" not in best["partial"] and "no checkpoint of partial's best trial" in caplog.text
    assert "model_uri" not in best["broken"] and "broken's best model (run" in caplog.text
    assert "MissingPluginError: this model's cell 'no-such-cell'" in caplog.text
    for kind in ("files", "one-file", "fallback"):
        weights, folder = made[kind]
        model_uri = best[kind]["model_uri"]
        assert store.client.get_run(best[kind]["run_id"]).data.tags["model_uri"] == model_uri
        root = Path(store.client.get_logged_model(model_uri.removeprefix("models:/")).artifact_location[7:])
        for loaded in (rnnbench.load_model(model_uri, store.uri), mlflow.pytorch.load_model(str(root))):
            assert all(torch.equal(loaded.state_dict()[k], v) for k, v in weights.items()), kind
        assert (root / "data" / "pickle_module_info.txt").read_text() == "mlflow.pytorch.pickle_module"
        if kind == "files":  # the weights kept once, in the trial's checkpoint
            assert sorted(p.name for p in folder.iterdir()) == sorted(kept), sorted(folder.iterdir())
            # Served as MLflow serves it (pyfunc), the model answers its input example as the worker saw it.
            with np.load(folder / EXAMPLE_FILE) as saved:
                served = mlflow.pyfunc.load_model(str(root)).predict(saved["inputs"])
                assert np.allclose(served, saved["outputs"], atol=1e-6), kind


def test_the_model_files_are_laid_out_as_mlflows_pytorch_flavour_lays_them_out(tmp_path, monkeypatch):
    """The driver's torch-free flavour against ``mlflow.pytorch.save_model`` on the same model: the same
        files, the same MLmodel but for its moment, its random id and the pickle's size, the same environment files,
    and a pickled model MLflow's loader loads as the same model."""
    import json

    import mlflow.pytorch
    import numpy as np
    import yaml
    from mlflow.models import Model, infer_signature

    from rnnbench.tracking.models import PICKLE_MODULE, _PyTorchFiles
    from rnnbench.training.model import rebuild
    from rnnbench.training.recipe import EXAMPLE_FILE, RECIPE_FILE, WEIGHTS_FILE, final_checkpoint

    weights, model_recipe, example = _gru_weights_and_checkpoint_parts(tmp_path, 0)
    final_checkpoint(weights, model_recipe, example, tmp_path / "files")
    with np.load(tmp_path / "files" / EXAMPLE_FILE) as saved:
        inputs, outputs = saved["inputs"], saved["outputs"]
    common = {"signature": infer_signature(inputs, outputs), "input_example": inputs,
              "pip_requirements": ["torch==2.13.0", "rnnbench==0.1.0"]}  # fmt: skip
    ours, theirs = Model(metadata={"rnnbench": model_recipe}), Model(metadata={"rnnbench": model_recipe})
    _PyTorchFiles(tmp_path / "files", model_recipe, str(torch.__version__)).save_model(
        str(tmp_path / "ours"), ours, **common
    )
    mlflow.pytorch.save_model(rebuild(model_recipe, weights), str(tmp_path / "theirs"), mlflow_model=theirs,
                              serialization_format="pickle", pickle_module=__import__(PICKLE_MODULE, fromlist=["_"]),
                              extra_files=[str(tmp_path / "files" / n) for n in (RECIPE_FILE, WEIGHTS_FILE)],
                              **common)  # fmt: skip

    def tree(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    mine, real = tree(tmp_path / "ours"), tree(tmp_path / "theirs")
    assert sorted(mine) == sorted(real)
    # The pickled model is ours (the recipe and the safetensors bytes: no torch to pickle tensors), so its
    # size differs; both unpickle, through MLflow's loader, to the same model.
    variable = {"MLmodel", "data/model.pth"}
    assert {k: v for k, v in mine.items() if k not in variable} == {
        k: v for k, v in real.items() if k not in variable
    }
    mlmodel = [yaml.safe_load(m["MLmodel"]) for m in (mine, real)]
    for m in mlmodel:
        m.pop("utc_time_created"), m.pop("model_uuid"), m.pop("model_size_bytes")
    assert mlmodel[0] == mlmodel[1] and json.loads(mine["extra_files/recipe.json"]) == model_recipe
    assert len(mine["data/model.pth"]) < len(real["data/model.pth"]) + 1024
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    loaded = [mlflow.pytorch.load_model(str(tmp_path / side)) for side in ("ours", "theirs")]
    assert loaded[0].recipe == loaded[1].recipe == model_recipe and not loaded[0].training
    for name, value in weights.items():
        assert torch.equal(loaded[0].state_dict()[name], value) and torch.equal(
            loaded[1].state_dict()[name], value
        )


def test_a_final_checkpoint_keeps_weights_a_cell_ties(tmp_path):
    """One tensor under two names (a cell that ties weights): safetensors refuses shared tensors, so the
    checkpoint saves each name apart, and the model rebuilt from it has both values."""
    from rnnbench.training.recipe import checkpoint_kind, final_checkpoint, read_final_checkpoint

    weights, model_recipe, example = _gru_weights_and_checkpoint_parts(tmp_path, 0)
    tied = [name for name in weights if name.endswith("bias_hh_l0") or name.endswith("bias_ih_l0")]
    assert len(tied) == 2
    weights[tied[1]] = weights[tied[0]]
    final_checkpoint(weights, model_recipe, example, tmp_path / "tied")
    assert checkpoint_kind(tmp_path / "tied") == "files"
    _, saved, _ = read_final_checkpoint(tmp_path / "tied")
    assert (
        torch.equal(saved[tied[0]], saved[tied[1]]) and saved[tied[0]].data_ptr() != saved[tied[1]].data_ptr()
    )
