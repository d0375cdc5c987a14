"""Built-in plugin: the eight LSTM variants of Greff et al.'s "LSTM: A Search Space Odyssey".

Each is the ``peephole`` cell (the paper's vanilla LSTM) with one change, on the LSTM family's one
kernel (rnnbench.cells.lstm_family); forget-gate bias 1 where there is a forget gate.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from rnnbench import hookimpl
from rnnbench.core.registry import CellRegistry

if TYPE_CHECKING:  # torch is imported on first build, so listing plugins stays fast
    from torch import nn

REFERENCE = "Greff, Srivastava, Koutník, Steunebrink & Schmidhuber 2017, LSTM: A Search Space Odyssey"
# name -> what changes from the vanilla (peephole) LSTM, in the paper's words
CHANGES = {
    "nig": "No Input Gate: i = 1",
    "nfg": "No Forget Gate: f = 1",
    "nog": "No Output Gate: o = 1",
    "niaf": "No Input Activation Function: g(x) = x",
    "noaf": "No Output Activation Function: h(x) = x",
    "np": "No Peepholes: no peephole parameters",
    "cifg": "Coupled Input and Forget Gate: f = 1 - i, no forget-gate parameters",
    "fgr": "Full Gate Recurrence: i, f, o also see the previous step's i, f, o (9 more H x H matrices)",
}


def build_variant(name: str, input_size: int, hidden_size: int, num_layers: int, dropout: float) -> nn.Module:
    from rnnbench.cells.lstm_family import VARIANTS, LSTMFamily

    return LSTMFamily(input_size, hidden_size, num_layers, dropout, variant=VARIANTS[name], name=name)


@hookimpl
def register_cells(register: CellRegistry) -> None:
    for name, change in CHANGES.items():
        register(
            name,
            functools.partial(build_variant, name),
            description=f"peephole LSTM variant, {change}",
            reference=REFERENCE,
        )
