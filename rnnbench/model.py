"""The benchmark model: the task's input encoding, a registered cell stack, and a linear head."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from rnnbench.registry import CellSpec
from rnnbench.tasks.base import Task


class SequenceModel(nn.Module):
    """One-hot or linear inputs -> cell stack -> a head on the last step or on every step."""

    # Set on a model to be saved (rnnbench.saved_model): it then pickles as its recipe and weights, and
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
        from rnnbench.saved_model import rebuild

        weights = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        return rebuild, (self.recipe, weights)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
