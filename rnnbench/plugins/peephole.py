"""Built-in plugin: LSTM with diagonal peephole connections, implemented in rnnbench.cells.peephole."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rnnbench import hookimpl
from rnnbench.core.registry import CellRegistry

if TYPE_CHECKING:  # torch is imported on first build, so listing plugins stays fast
    from torch import nn


def build_peephole(input_size: int, hidden_size: int, num_layers: int, dropout: float) -> nn.Module:
    from rnnbench.cells.peephole import PeepholeLSTM

    return PeepholeLSTM(input_size, hidden_size, num_layers, dropout)


@hookimpl
def register_cells(register: CellRegistry) -> None:
    register(
        "peephole",
        build_peephole,
        description="LSTM with diagonal peephole connections (i, f see c[t-1]; o sees c[t]); "
        "forget-gate bias initialised to 1",
        reference="Gers & Schmidhuber 2000; Gers, Schraudolph & Schmidhuber 2002",
    )
