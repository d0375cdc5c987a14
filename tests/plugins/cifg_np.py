"""rnnbench plugin: a ninth LSTM variant, CIFG without peepholes, on rnnbench's LSTM-family kernel."""

import rnnbench
from rnnbench.cells.lstm_family import LSTMFamily, Variant

__version__ = "0.1.0"

CIFG_NP = Variant(coupled=True, peepholes=False)  # f = 1 - i, no peephole parameters


def build(input_size, hidden_size, num_layers, dropout):
    return LSTMFamily(input_size, hidden_size, num_layers, dropout, variant=CIFG_NP, name="cifg_np")


@rnnbench.hookimpl
def register_cells(register):
    register(
        "cifg_np",
        build,
        description="LSTM with coupled input and forget gates and no peepholes",
        reference="Greff et al. 2017 (CIFG and NP combined)",
    )
