"""A trained model's recipe (cell, plugin and version, sizes, task and input encoding) and its rebuild
through the cell registry: what a saved model is, apart from where it is saved (``rnnbench.tracking.models``
logs and loads it in MLflow). Unpickling a saved model calls :func:`rebuild`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from rnnbench.tasks.base import Task
    from rnnbench.training.config import TrainConfig

FINAL_CHECKPOINT = "model.pt"  # what a trial's final checkpoint holds: recipe, best weights, an example
EXAMPLE_ROWS = 4
RECIPE_FILE = "recipe.json"  # in the logged model's extra_files/: what rebuilds it
WEIGHTS_FILE = "weights.safetensors"  # the weights, in a format that cannot run code


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
    best: dict[str, Any], model_recipe: dict[str, Any], example: torch.Tensor, path: Path
) -> None:
    """A trial's last checkpoint: the tested (best) weights, their recipe and an input example."""
    import torch

    weights = {k: v.detach().cpu() for k, v in best.items()}
    torch.save({"recipe": model_recipe, "weights": weights, "example": example.cpu()}, path)


def read_final_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Any], torch.Tensor]:
    import torch

    saved = torch.load(path, map_location="cpu", weights_only=True)
    return saved["recipe"], saved["weights"], saved["example"]
