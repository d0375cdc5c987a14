"""LSTM with diagonal peephole connections (Gers & Schmidhuber 2000; Gers, Schraudolph & Schmidhuber 2002).

    i_t = sigmoid(W_i x_t + U_i h_{t-1} + p_i * c_{t-1} + b_i)
    f_t = sigmoid(W_f x_t + U_f h_{t-1} + p_f * c_{t-1} + b_f)
    g_t = tanh(W_g x_t + U_g h_{t-1} + b_g)
    c_t = f_t * c_{t-1} + i_t * g_t
    o_t = sigmoid(W_o x_t + U_o h_{t-1} + p_o * c_t + b_o)
    h_t = o_t * tanh(c_t)

This is Greff et al.'s vanilla LSTM, the LSTM family's full member (rnnbench.cells.lstm_family, whose
kernel it runs on). Gates are stacked in torch.nn.LSTM's order (i, f, g, o), so with the peepholes at
zero a layer loaded with an nn.LSTM's weights (bias = bias_ih + bias_hh) computes the same function.
"""

from __future__ import annotations

from rnnbench.cells.lstm_family import (
    KERNEL,
    KERNEL_DIR_ENV,
    KERNEL_ENV,
    PEEPHOLE,
    LSTMFamily,
    LSTMFamilyLayer,
    PeepholeKernelChoiceError,
    PeepholeKernelError,
    kernel_build_dir,
    kernel_choice,
    kernel_missing_tools,
    load_kernel,
)

__all__ = [
    "KERNEL",
    "KERNEL_DIR_ENV",
    "KERNEL_ENV",
    "PeepholeKernelChoiceError",
    "PeepholeKernelError",
    "PeepholeLSTM",
    "PeepholeLSTMLayer",
    "kernel_build_dir",
    "kernel_choice",
    "kernel_missing_tools",
    "load_kernel",
]


class PeepholeLSTMLayer(LSTMFamilyLayer):
    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 1.0) -> None:
        super().__init__(input_size, hidden_size, PEEPHOLE, forget_bias)


class PeepholeLSTM(LSTMFamily):
    """A stack of peephole LSTM layers with dropout between layers, batch first."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        forget_bias: float = 1.0,
    ) -> None:
        super().__init__(input_size, hidden_size, num_layers, dropout, PEEPHOLE, forget_bias, "peephole")
