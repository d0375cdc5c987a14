"""Test plugin: a cell that breaks the cell contract (it returns only the last step, (B, H))."""

from torch import nn

import rnnbench


class LastStepOnly(nn.Module):
    def __init__(self, input_size, hidden_size, num_layers, dropout):
        super().__init__()
        self.rnn = nn.GRU(input_size, hidden_size, num_layers, batch_first=True)

    def forward(self, x):
        return self.rnn(x)[0][:, -1]


@rnnbench.hookimpl
def register_cells(register):
    register(
        "last-step-only",
        LastStepOnly,
        description="Returns (B, H) instead of (B, T, H)",
        reference="test",
    )
