"""Cells that torch already fuses (LSTM, GRU, tanh RNN), wrapped to the rnnbench cell contract."""

from __future__ import annotations

import torch
from torch import nn

from rnnbench.cells import check_input

_MODULES: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class FusedRecurrent(nn.Module):
    """A torch.nn.LSTM / GRU / RNN stack, batch first, returning only the output sequence."""

    def __init__(
        self,
        kind: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        forget_bias: float = 1.0,
    ) -> None:
        super().__init__()
        self.kind, self.input_size, self.hidden_size = kind, input_size, hidden_size
        extra = {"nonlinearity": "tanh"} if kind == "rnn" else {}
        # torch warns when dropout is set on a single layer, where it would do nothing.
        self.rnn = _MODULES[kind](
            input_size,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
            **extra,
        )
        if kind == "lstm":
            init_lstm_forget_bias(self.rnn, forget_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.input_size, self.kind)
        output, _ = self.rnn(x)
        return output


@torch.no_grad()
def init_lstm_forget_bias(lstm: nn.LSTM, value: float) -> None:
    """Make the effective forget-gate bias (bias_ih + bias_hh) equal ``value`` in every layer."""
    h = lstm.hidden_size
    for layer in range(lstm.num_layers):
        getattr(lstm, f"bias_ih_l{layer}")[h : 2 * h].fill_(value)
        getattr(lstm, f"bias_hh_l{layer}")[h : 2 * h].zero_()
