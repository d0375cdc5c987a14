"""rnnbench plugin: the minimal gated unit (Zhou et al. 2016)."""

import torch
from torch import nn

import rnnbench
from rnnbench.cells import check_input

__version__ = "0.1.0"


class MGULayer(nn.Module):
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.hidden_size = hidden_size
        self.x2h = nn.Linear(input_size, 2 * hidden_size)
        self.h2f = nn.Linear(hidden_size, hidden_size, bias=False)
        self.h2h = nn.Linear(hidden_size, hidden_size, bias=False)

    def forward(self, x):
        x_f, x_h = self.x2h(x).chunk(2, dim=-1)
        h = x.new_zeros(x.size(0), self.hidden_size)
        outputs = []
        for xf_t, xh_t in zip(x_f.unbind(1), x_h.unbind(1), strict=True):
            f = torch.sigmoid(xf_t + self.h2f(h))
            h = (1 - f) * h + f * torch.tanh(xh_t + self.h2h(f * h))
            outputs.append(h)
        return torch.stack(outputs, dim=1)


class MGU(nn.Module):
    """Maps (batch, time, input_size) to (batch, time, hidden_size)."""

    def __init__(self, input_size, hidden_size, num_layers, dropout):
        super().__init__()
        self.input_size = input_size
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            MGULayer(input_size if k == 0 else hidden_size, hidden_size) for k in range(num_layers)
        )

    def forward(self, x):
        check_input(x, self.input_size, "mgu")  # a clear ValueError for a wrong shape
        for k, layer in enumerate(self.layers):
            x = layer(self.dropout(x) if k > 0 else x)
        return x


@rnnbench.hookimpl
def register_cells(register):
    register("mgu", MGU, description="Minimal gated unit", reference="Zhou et al. 2016")
