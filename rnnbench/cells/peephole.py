"""LSTM with diagonal peephole connections (Gers & Schmidhuber 2000; Gers, Schraudolph & Schmidhuber 2002).

    i_t = sigmoid(W_i x_t + U_i h_{t-1} + p_i * c_{t-1} + b_i)
    f_t = sigmoid(W_f x_t + U_f h_{t-1} + p_f * c_{t-1} + b_f)
    g_t = tanh(W_g x_t + U_g h_{t-1} + b_g)
    c_t = f_t * c_{t-1} + i_t * g_t
    o_t = sigmoid(W_o x_t + U_o h_{t-1} + p_o * c_t + b_o)
    h_t = o_t * tanh(c_t)

Gates are stacked in torch.nn.LSTM's order (i, f, g, o), so with the peepholes at zero a
layer loaded with an nn.LSTM's weights (bias = bias_ih + bias_hh) computes the same function.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from rnnbench.cells import check_input


class PeepholeLSTMLayer(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 1.0) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.empty(4 * hidden_size))
        self.peephole = nn.Parameter(torch.empty(3, hidden_size))  # rows: input, forget, output
        self.reset_parameters(forget_bias)

    @torch.no_grad()
    def reset_parameters(self, forget_bias: float = 1.0) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)  # torch.nn.LSTM's initialisation
        for parameter in self.parameters():
            parameter.uniform_(-bound, bound)
        self.bias[self.hidden_size : 2 * self.hidden_size].fill_(forget_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps, _ = x.shape
        # One GEMM projects every time step; unbind (not x_proj[:, t]) keeps backward linear in T.
        x_proj = torch.addmm(self.bias, x.reshape(batch * steps, -1), self.weight_ih.t())
        x_proj = x_proj.view(batch, steps, 4 * self.hidden_size)
        h = x.new_zeros(batch, self.hidden_size)
        c = x.new_zeros(batch, self.hidden_size)
        p_i, p_f, p_o = self.peephole.unbind(0)
        w_hh = self.weight_hh.t()
        outputs = []
        for x_t in x_proj.unbind(1):
            i, f, g, o = torch.addmm(x_t, h, w_hh).chunk(4, dim=1)
            i = torch.sigmoid(torch.addcmul(i, p_i, c))
            f = torch.sigmoid(torch.addcmul(f, p_f, c))
            c = torch.addcmul(f * c, i, torch.tanh(g))
            o = torch.sigmoid(torch.addcmul(o, p_o, c))
            h = o * torch.tanh(c)
            outputs.append(h)
        return torch.stack(outputs, dim=1)


class PeepholeLSTM(nn.Module):
    """A stack of peephole LSTM layers with dropout between layers, batch first."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        forget_bias: float = 1.0,
    ) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.dropout = input_size, hidden_size, dropout
        self.layers = nn.ModuleList(
            PeepholeLSTMLayer(input_size if k == 0 else hidden_size, hidden_size, forget_bias)
            for k in range(num_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.input_size, "peephole")
        for k, layer in enumerate(self.layers):
            if k > 0 and self.dropout > 0.0:
                x = F.dropout(x, self.dropout, self.training)
            x = layer(x)
        return x
