"""Built-in plugin: torch.nn.LSTM."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rnnbench import hookimpl
from rnnbench.core.registry import CellRegistry

if TYPE_CHECKING:  # torch is imported on first build, so listing plugins stays fast
    from torch import nn


def build_lstm(input_size: int, hidden_size: int, num_layers: int, dropout: float) -> nn.Module:
    from rnnbench.cells.fused import FusedRecurrent

    return FusedRecurrent("lstm", input_size, hidden_size, num_layers, dropout)


@hookimpl
def register_cells(register: CellRegistry) -> None:
    register(
        "lstm",
        build_lstm,
        description="LSTM with forget gate (torch.nn.LSTM, fused); forget-gate bias initialised to 1",
        reference="Hochreiter & Schmidhuber 1997; Gers et al. 2000; forget bias 1: Jozefowicz et al. 2015",
    )
