"""Built-in plugin: the gated recurrent unit, torch.nn.GRU with a faster CPU path (rnnbench.cells.gru)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rnnbench import hookimpl
from rnnbench.core.registry import CellRegistry

if TYPE_CHECKING:  # torch is imported on first build, so listing plugins stays fast
    from torch import nn


def build_gru(input_size: int, hidden_size: int, num_layers: int, dropout: float) -> nn.Module:
    from rnnbench.cells.gru import GRU

    return GRU(input_size, hidden_size, num_layers, dropout)


@hookimpl
def register_cells(register: CellRegistry) -> None:
    register(
        "gru",
        build_gru,
        description="Gated recurrent unit (torch.nn.GRU; compiled CPU kernel at small sizes)",
        reference="Cho et al. 2014",
    )
