"""The benchmark model: the task's input encoding, a registered cell stack, and a linear head."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from rnnbench.core.registry import CellSpec
from rnnbench.errors import MissingPluginError, UnknownCellError
from rnnbench.tasks.base import Task


class SequenceModel(nn.Module):
    """One-hot or linear inputs -> cell stack -> a head on the last step or on every step."""

    # Set on a model to be saved (rnnbench.tracking.models): it then pickles as its recipe and weights, and
    # unpickling rebuilds it through the cell registry instead of importing the cell's classes.
    recipe: dict[str, Any] | None = None

    def __init__(self, cell: CellSpec, task: Task, width: int, depth: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.one_hot = task.encoding == "one-hot"
        self.vocab = task.input_size
        self.every_step = task.head == "sequence"
        self.cell = cell.build(
            input_size=task.input_size, hidden_size=width, num_layers=depth, dropout=dropout
        )
        self.head = nn.Linear(width, task.output_size)

    def encode(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.one_hot:
            return F.one_hot(inputs, self.vocab).to(self.head.weight.dtype)
        return inputs

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        hidden = self.cell(self.encode(inputs))
        out = self.head(hidden if self.every_step else hidden[:, -1])
        return out.squeeze(-1) if out.size(-1) == 1 and not self.every_step else out

    def __reduce_ex__(self, protocol: Any) -> Any:
        if self.recipe is None:
            return super().__reduce_ex__(protocol)
        weights = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        return rebuild, (self.recipe, weights)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@dataclass(frozen=True)
class _Shape:
    """What SequenceModel reads of a task: enough to rebuild a model without its data."""

    encoding: str
    input_size: int
    output_size: int
    head: str


def rebuild(model_recipe: dict[str, Any], weights: dict[str, torch.Tensor]) -> SequenceModel:
    """The model a recipe and its weights describe, in eval mode (what unpickling a saved model calls)."""
    from rnnbench.core.plugin_manager import cell_names, get_cell

    try:
        cell = get_cell(model_recipe["cell"])
    except UnknownCellError:
        raise MissingPluginError(_missing(model_recipe, cell_names())) from None
    shape = _Shape(model_recipe["input_encoding"], model_recipe["input_size"], model_recipe["output_size"],
                   model_recipe["head"])  # fmt: skip
    model = SequenceModel(cell, shape, model_recipe["width"], model_recipe["depth"], model_recipe["dropout"])  # type: ignore[arg-type]
    model.load_state_dict(weights)
    model.recipe = dict(model_recipe)
    return model.eval()


def _missing(model_recipe: dict[str, Any], cells: list[str]) -> str:
    plugin, version = model_recipe.get("plugin"), model_recipe.get("plugin_version")
    if model_recipe.get("plugin_source") == "file":
        where = f"name its file in RNNBENCH_PLUGINS (it was {model_recipe.get('plugin_location')})"
    else:
        where = f"install the package that provides it (pip install {plugin})"
    return (
        f"this model's cell {model_recipe['cell']!r} comes from plugin {plugin!r} version {version}, which "
        f"is not loaded in this Python: {where}. Cells here: {', '.join(cells)}"
    )
