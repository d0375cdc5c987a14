"""Trained models as MLflow PyTorch models that rebuild themselves through the cell registry.

A logged model carries, beside MLflow's own files, its *recipe* (cell, plugin and version, sizes, task
and input encoding) as JSON and its weights as safetensors (``extra_files/``): :func:`load_model` reads
those two alone and rebuilds the model through the registry, so loading a model from a store someone
else can write runs no code from it. MLflow's PyTorch flavour is still logged (the UI, serving,
``mlflow.pytorch.load_model``): it pickles the model as its recipe and safetensors bytes (written here without
torch, so a sweep's driver never imports it), and unpickling runs whatever the file holds, so that path is for
stores you trust.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnbench.errors import RnnbenchError
from rnnbench.training.recipe import (
    EXAMPLE_FILE,
    RECIPE_FILE,
    VERSIONS_FILE,
    WEIGHTS_FILE,
    input_example,
    rebuild_saved,
    recipe,
)

if TYPE_CHECKING:
    import torch

    from rnnbench.tasks.base import Task
    from rnnbench.tracking.store import Store
    from rnnbench.training.config import TrainConfig
    from rnnbench.training.model import SequenceModel

MODEL_NAME = "model"  # the logged model's name on its run
MODEL_URI_TAG = "model_uri"  # the run tag holding ``models:/m-...``
PICKLE_ENV = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
PICKLE_MODULE = "mlflow.pytorch.pickle_module"  # what the flavour unpickles with (its Unpickler is pickle's)


class ModelLoadError(RnnbenchError):
    """A logged model cannot be loaded safely: unknown URI, missing or malformed recipe or weights."""


@contextlib.contextmanager
def _tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's fluent API (log_model) on ``uri`` for a moment; the caller's setting comes back, and so does
    the environment: ``mlflow.set_tracking_uri`` also sets ``$MLFLOW_TRACKING_URI``, and left there it sent
    every later subprocess of the caller (a sweep a test or a notebook starts) to this store."""
    import mlflow

    from rnnbench.tracking.store import TRACKING_ENV

    previous, environment = mlflow.get_tracking_uri(), os.environ.get(TRACKING_ENV)
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)
        if environment is None:
            os.environ.pop(TRACKING_ENV, None)
        else:
            os.environ[TRACKING_ENV] = environment


@contextlib.contextmanager
def _requirements_taken_as_given() -> Iterator[None]:
    """MLflow's check that the current environment satisfies a model's pip requirements, skipped while a
    model is logged (MLflow runs it as it writes the model's requirements). rnnbench pins the versions installed
    here, so the check can never warn, and its first call maps every installed distribution to its modules:
    0.8-1.0 s of every sweep's end. The function is private to MLflow: where it has moved, the check runs as
    before."""
    from mlflow.utils import requirements_utils

    with _skipping["lock"]:
        if _skipping["count"] == 0:  # the first of several threads logging at once puts it aside
            _skipping["check"] = getattr(requirements_utils, "_check_requirement_satisfied", None)
            if _skipping["check"] is not None:
                requirements_utils._check_requirement_satisfied = lambda requirement: None
        _skipping["count"] += 1
    try:
        yield
    finally:
        with _skipping["lock"]:
            _skipping["count"] -= 1
            if _skipping["count"] == 0 and _skipping["check"] is not None:  # the last one puts it back
                requirements_utils._check_requirement_satisfied = _skipping["check"]


_skipping: dict[str, Any] = {"lock": threading.Lock(), "count": 0, "check": None}


def log_model(store: Store, run_id: str, model_recipe: dict[str, Any], weights: dict[str, Any],
              example: torch.Tensor) -> str:  # fmt: skip
    """Log the weights as an MLflow PyTorch model on ``run_id``; returns ``models:/m-...``."""
    from rnnbench.training.recipe import final_checkpoint

    with tempfile.TemporaryDirectory() as folder:
        final_checkpoint(weights, model_recipe, example, Path(folder))
        return log_model_files(store, run_id, Path(folder))


def log_model_files(store: Store, run_id: str, folder: Path) -> str:
    """Log a model's files (:func:`rnnbench.training.recipe.final_checkpoint`) as an MLflow PyTorch model on
    ``run_id`` (a logged model linked to the run, with a signature and an input example) and tag the run
    with its URI; returns ``models:/m-...``. Imports no torch: the sweep's driver logs its best models."""
    import json

    import numpy as np
    from mlflow.models import Model, infer_signature

    model_recipe = json.loads((folder / RECIPE_FILE).read_text())
    with np.load(folder / EXAMPLE_FILE, allow_pickle=False) as example:
        inputs, outputs = example["inputs"], example["outputs"]
    torch_version = json.loads((folder / VERSIONS_FILE).read_text())["torch"]
    requirements = [f"torch=={torch_version.split('+')[0]}", f"rnnbench=={model_recipe['rnnbench_version']}"]
    client, tracking_uri = store.client, store.uri
    run = client.get_run(run_id)
    # Created here, in the run's experiment: log_model alone would file it under the fluent API's
    # active experiment (``Default``, in ./mlruns).
    logged = client.create_logged_model(
        run.info.experiment_id, name=MODEL_NAME, source_run_id=run_id, params=run.data.params,
        tags={"cell": model_recipe["cell"], "task": model_recipe["task"]}, model_type="rnnbench",
    )  # fmt: skip
    with _tracking_uri(tracking_uri), _requirements_taken_as_given():
        info = Model.log(
            artifact_path=None,
            name=MODEL_NAME,
            flavor=_PyTorchFiles(folder, model_recipe, torch_version),
            model_id=logged.model_id,
            run_id=run_id,
            signature=infer_signature(inputs, outputs),
            input_example=inputs,
            pip_requirements=requirements,  # inferring them would import-trace the model: many seconds
            metadata={"rnnbench": model_recipe},
            # MLflow would load the model back (torch) to check that the example serves: loading is tested
            validate_serving_input=False,
        )
    client.set_tag(run_id, MODEL_URI_TAG, info.model_uri)
    return info.model_uri


class _PyTorchFiles:
    """A model's files laid out as ``mlflow.pytorch.save_model`` lays them out (its pickle serialization
    format), without torch: ``Model.log`` calls ``save_model`` on the flavour it is given."""

    def __init__(self, folder: Path, model_recipe: dict[str, Any], torch_version: str) -> None:
        self.folder, self.recipe, self.torch_version = folder, model_recipe, torch_version

    def save_model(self, path: str, mlflow_model: Any, signature: Any, input_example: Any,
                   pip_requirements: list[str], **unused: Any) -> None:  # fmt: skip
        import yaml
        from mlflow import pyfunc
        from mlflow.models.utils import _save_example
        from mlflow.utils.environment import _process_pip_requirements, _PythonEnv
        from mlflow.utils.file_utils import get_total_file_size
        from mlflow.utils.model_utils import _copy_extra_files

        data = Path(path, "data")
        data.mkdir(parents=True)
        _pickled_model(self.recipe, self.folder / WEIGHTS_FILE, data / "model.pth")
        (data / "pickle_module_info.txt").write_text(PICKLE_MODULE)
        _save_example(mlflow_model, input_example, path)
        mlflow_model.signature = signature
        safe = _copy_extra_files([str(self.folder / RECIPE_FILE), str(self.folder / WEIGHTS_FILE)], path)
        mlflow_model.add_flavor("pytorch", model_data="data", pytorch_version=self.torch_version, code=None,
                                **safe)  # fmt: skip
        pyfunc.add_to_model(mlflow_model, loader_module="mlflow.pytorch", data="data", pickle_module_name=PICKLE_MODULE,
                            code=None, conda_env="conda.yaml", python_env="python_env.yaml",
                            model_config={"device": None})  # fmt: skip
        mlflow_model.model_size_bytes = get_total_file_size(path)
        mlflow_model.save(str(Path(path, "MLmodel")))
        # No constraints.txt: MLflow writes one for ``-c`` lines, and rnnbench's pins have none.
        conda_env, requirements, _ = _process_pip_requirements(None, pip_requirements, None)
        Path(path, "conda.yaml").write_text(yaml.safe_dump(conda_env, default_flow_style=False))
        Path(path, "requirements.txt").write_text("\n".join(requirements))
        _PythonEnv.current().to_yaml(str(Path(path, "python_env.yaml")))


class _Saved:
    """Pickles as a call to ``rebuild_saved(recipe, safetensors bytes)``: the model, without torch to pickle it."""

    def __init__(self, model_recipe: dict[str, Any], weights: bytes) -> None:
        self.recipe, self.weights = model_recipe, weights

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any], bytes]]:
        return rebuild_saved, (self.recipe, self.weights)


def _pickled_model(model_recipe: dict[str, Any], weights: Path, path: Path) -> None:
    """The flavour's ``data/model.pth`` in torch's zip format (``torch.load`` reads it): a pickle (protocol 4:
    bytes as they are) of the recipe and the safetensors bytes, which unpickling rebuilds through the registry;
    no tensor records, so the weights are not kept a second time in the trial's checkpoint."""
    import pickle
    import zipfile

    saved = _Saved(model_recipe, weights.read_bytes())
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("model/data.pkl", pickle.dumps(saved, protocol=4))
        archive.writestr("model/byteorder", "little")
        archive.writestr("model/version", "3\n")


def log_trained(store: Store, run_id: str, config: TrainConfig, task: Task, splits: Any,
                best: dict[str, Any]) -> str:  # fmt: skip
    """Log a finished run's tested weights as its model (``rnnbench train`` and each reseed run)."""
    weights = {k: v.detach().cpu() for k, v in best.items()}
    return log_model(store, run_id, recipe(config, task), weights, input_example(splits))


def score(model: SequenceModel, split: str = "test", cache_dir: str | None = None) -> tuple[float, float]:
    """A saved model's mean loss and accuracy on a split of the data it was trained on (rebuilt from its
    recipe: the same task options and data seed)."""
    import torch

    from rnnbench.core.plugin_manager import get_task
    from rnnbench.training.loop import evaluate

    made = model.recipe or {}
    task = get_task(made["task"]).build(**made["task_options"])
    data = task.load(seed=made["data_seed"], cache_dir=cache_dir)[split].with_format("torch")[:]
    device = next(model.parameters()).device
    loss, scores = evaluate(
        model, task, {k: v.to(device) for k, v in data.items() if isinstance(v, torch.Tensor)}
    )
    return loss, float(scores.mean())


def load_model(model_uri: str, tracking_uri: str | None = None) -> SequenceModel:
    """A model rnnbench logged (``models:/m-...``), rebuilt from its recipe (JSON) and weights (safetensors)
    through the cell registry, on the CPU: nothing is unpickled, so a store's files run no code."""
    import json

    from rnnbench.tracking.store import open_client, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    if not model_uri.startswith("models:/m-"):
        raise ModelLoadError(
            f"{model_uri!r} is not a logged model's URI (models:/m-..., a run's model_uri tag)"
        )
    client = open_client(uri)
    try:
        location = client.get_logged_model(model_uri.removeprefix("models:/")).artifact_location
    except Exception as exc:
        raise ModelLoadError(f"no logged model {model_uri} in {uri} ({type(exc).__name__})") from None
    with tempfile.TemporaryDirectory() as folder:
        recipe_path, weights_path = (
            _download(location, name, folder, uri) for name in (RECIPE_FILE, WEIGHTS_FILE)
        )
        try:
            model_recipe = json.loads(Path(recipe_path).read_text())
            if not isinstance(model_recipe, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ModelLoadError(f"{model_uri}: extra_files/{RECIPE_FILE} is not a recipe ({exc})") from None
        weights = _read_weights(weights_path, model_uri)
    from rnnbench.training.model import rebuild  # torch: imported where a model is rebuilt

    try:
        return rebuild(model_recipe, weights)
    except (KeyError, TypeError, RuntimeError) as exc:
        raise ModelLoadError(f"{model_uri}: the recipe and weights do not make a model ({exc})") from None


def _download(location: str, name: str, folder: str, tracking_uri: str) -> str:
    import mlflow.artifacts

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        return mlflow.artifacts.download_artifacts(artifact_uri=f"{location}/extra_files/{name}", dst_path=folder,
                                                   tracking_uri=tracking_uri)  # fmt: skip
    except Exception:
        raise ModelLoadError(
            f"the logged model at {location} has no extra_files/{name}: it was logged before rnnbench kept "
            "pickle-free weights; mlflow.pytorch.load_model loads it, but unpickles (only for stores you trust)"
        ) from None


def _read_weights(path: str, model_uri: str) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(
            f"{model_uri}: extra_files/{WEIGHTS_FILE} is not a safetensors file ({exc})"
        ) from None
