"""Built-in plugin: torch.nn.RNN with tanh, the vanilla (Elman) recurrent network."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rnnbench import hookimpl
from rnnbench.core.registry import CellRegistry

if TYPE_CHECKING:  # torch is imported on first build, so listing plugins stays fast
    from torch import nn


def build_rnn(input_size: int, hidden_size: int, num_layers: int, dropout: float) -> nn.Module:
    from rnnbench.cells.fused import FusedRecurrent

    return FusedRecurrent("rnn", input_size, hidden_size, num_layers, dropout)


@hookimpl
def register_cells(register: CellRegistry) -> None:
    register(
        "rnn",
        build_rnn,
        description="Vanilla tanh RNN (torch.nn.RNN, fused)",
        reference="Elman 1990",
    )
