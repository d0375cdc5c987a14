"""A trained model's recipe (cell, plugin and version, sizes, task and input encoding) and its rebuild
through the cell registry: what a saved model is, apart from where it is saved (``rnnbench.tracking.models``
logs and loads it in MLflow), and a trial's final checkpoint. Unpickling a logged model calls
:func:`rebuild_saved` (models logged before it: ``rnnbench.training.model.rebuild``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from rnnbench.tasks.base import Task
    from rnnbench.training.config import TrainConfig

# A trial's final checkpoint (a folder; :func:`final_checkpoint`) holds the two files rnnbench.load_model reads
# and the input example with its output. Sweeps before it (and a worker that cannot write those) kept one file:
ONE_FILE_CHECKPOINT = "model.pt"  # the recipe, the weights and the example, in torch's format
EXAMPLE_ROWS = 4
RECIPE_FILE = "recipe.json"  # in the logged model's extra_files/: what rebuilds it
WEIGHTS_FILE = "weights.safetensors"  # the weights, in a format that cannot run code
EXAMPLE_FILE = "example.npz"  # the input example and the model's output on it (numpy: read without torch)
VERSIONS_FILE = "versions.json"  # the torch that pickled the model (the flavour's pytorch_version)


def recipe(config: TrainConfig, task: Task) -> dict[str, Any]:
    """Everything but the weights that rebuilds a trained model, and says what it was trained on."""
    from rnnbench.core.plugin_manager import get_cell, plugin_infos
    from rnnbench.version import __version__

    cell = get_cell(config.cell)
    info = next((i for i in plugin_infos() if i.name == cell.plugin), None)
    return {
        "cell": config.cell,
        "plugin": cell.plugin,
        "plugin_version": info.version if info else None,
        "plugin_source": info.source if info else None,
        "plugin_location": info.location if info else None,
        "width": config.width,
        "depth": config.depth,
        "dropout": config.dropout,
        "task": config.task,
        "task_options": dict(config.task_options),
        "data_seed": config.data_seed,
        "task_data_version": task.data_version,
        "input_encoding": task.encoding,
        "input_size": task.input_size,
        "output_size": task.output_size,
        "head": task.head,
        "rnnbench_version": __version__,
    }


def input_example(splits: Any) -> torch.Tensor:
    """The first test inputs: a logged model's input example (and what its signature is inferred on)."""
    from rnnbench.tasks.columns import split_tensors

    return split_tensors(splits["test"], rows=EXAMPLE_ROWS)["inputs"]


def final_checkpoint(
    best: dict[str, Any], model_recipe: dict[str, Any], example: torch.Tensor, folder: Path
) -> None:
    """A trial's last checkpoint, written into ``folder`` where torch is loaded: the model's recipe and weights,
    the input example and the output its signature is inferred from, so that the sweep's driver logs the best
    one without importing torch (:func:`rnnbench.tracking.models.log_model_files`; 2.9 s of CPU in each
    sweep's driver), the weights kept once."""
    import json

    import numpy as np
    import torch
    from safetensors.torch import save_file

    from rnnbench.training.model import rebuild

    # Cloned: weights a cell ties (one tensor under two names) are saved apart, which safetensors requires.
    weights = {k: v.detach().cpu().clone().contiguous() for k, v in best.items()}
    model = rebuild(model_recipe, weights)  # also proves that the recipe rebuilds before anything is kept
    with torch.no_grad():
        output = model(example.cpu())
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RECIPE_FILE).write_text(json.dumps(model_recipe, sort_keys=True))
    np.savez(folder / EXAMPLE_FILE, inputs=example.cpu().numpy(), outputs=output.numpy())
    (folder / VERSIONS_FILE).write_text(json.dumps({"torch": torch.__version__}))
    save_file(weights, str(folder / WEIGHTS_FILE))


def rebuild_saved(model_recipe: dict[str, Any], weights: bytes) -> Any:
    """The model a recipe and its safetensors bytes describe: what unpickling a logged model's PyTorch flavour
    calls (``rnnbench.tracking.models`` pickles it without torch)."""
    from safetensors.torch import load

    from rnnbench.training.model import rebuild

    return rebuild(model_recipe, load(weights))


def keep_final_checkpoint(
    best: dict[str, Any], model_recipe: dict[str, Any], example: torch.Tensor, folder: Path
) -> None:
    """:func:`final_checkpoint`, or where the model's files cannot be written (a cell whose CPU pass fails on a
    GPU node) the one file of a sweep from before, which the driver tries to rebuild and log with torch: the
    trained weights are kept on disk either way (a trial's worker calls this)."""
    import logging

    import torch

    try:
        final_checkpoint(best, model_recipe, example, folder)
    except Exception as exc:
        logging.getLogger("rnnbench").warning(
            "warning: the model's files could not be written (%s: %s); its weights are kept in one file",
            type(exc).__name__, exc,
        )  # fmt: skip
        for written in folder.iterdir():  # a partial set of the files would be taken for a final checkpoint
            written.unlink()
        weights = {k: v.detach().cpu() for k, v in best.items()}
        torch.save(
            {"recipe": model_recipe, "weights": weights, "example": example.cpu()},
            folder / ONE_FILE_CHECKPOINT,
        )


def read_final_checkpoint(folder: Path) -> tuple[dict[str, Any], dict[str, Any], torch.Tensor]:
    """The recipe, weights and input example of a trial's last checkpoint; nothing is unpickled. A
    checkpoint written before :func:`final_checkpoint` kept the model's files is one file, read as such."""
    import json

    import numpy as np
    import torch
    from safetensors.torch import load_file

    if checkpoint_kind(folder) == "one-file":
        saved = torch.load(folder / ONE_FILE_CHECKPOINT, map_location="cpu", weights_only=True)
        return saved["recipe"], saved["weights"], saved["example"]
    with np.load(folder / EXAMPLE_FILE, allow_pickle=False) as example:
        inputs = torch.from_numpy(example["inputs"])
    return json.loads((folder / RECIPE_FILE).read_text()), load_file(folder / WEIGHTS_FILE), inputs


def checkpoint_kind(folder: Path) -> str:
    """``files`` (the model's files, its weights whole), ``one-file`` (a sweep's from before, or a worker's
    fallback), ``partial`` (some of the model's files, or its weights cut short, as by a worker killed while
    Tune copied them: nothing in it can be read safely) or ``none`` (an epoch checkpoint)."""
    files = [(folder / name).is_file() for name in (RECIPE_FILE, WEIGHTS_FILE, EXAMPLE_FILE, VERSIONS_FILE)]
    if all(files) and _whole_safetensors(folder / WEIGHTS_FILE):
        return "files"
    if (folder / ONE_FILE_CHECKPOINT).is_file():
        return "one-file"
    return "partial" if any(files) else "none"


def is_final(folder: Path) -> bool:
    """Whether a trial's checkpoint folder is its final one (its tested weights, whole), of either kind."""
    return checkpoint_kind(folder) in ("files", "one-file")


def _whole_safetensors(path: Path) -> bool:
    """Whether a safetensors file is as long as its header says (8 bytes of length, the JSON header, the data)."""
    import json

    try:
        with open(path, "rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(length))
        ends = [entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"]
        return path.stat().st_size == 8 + length + max(ends, default=0)
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return False
