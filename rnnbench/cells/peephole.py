"""LSTM with diagonal peephole connections (Gers & Schmidhuber 2000; Gers, Schraudolph & Schmidhuber 2002).

    i_t = sigmoid(W_i x_t + U_i h_{t-1} + p_i * c_{t-1} + b_i)
    f_t = sigmoid(W_f x_t + U_f h_{t-1} + p_f * c_{t-1} + b_f)
    g_t = tanh(W_g x_t + U_g h_{t-1} + b_g)
    c_t = f_t * c_{t-1} + i_t * g_t
    o_t = sigmoid(W_o x_t + U_o h_{t-1} + p_o * c_t + b_o)
    h_t = o_t * tanh(c_t)

Gates are stacked in torch.nn.LSTM's order (i, f, g, o), so with the peepholes at zero a
layer loaded with an nn.LSTM's weights (bias = bias_ih + bias_hh) computes the same function.

Each layer runs as one autograd Function with a hand-written backward: one GEMM projects the
inputs of all steps, the recurrence stores the gate activations and cell states, and the backward
pass walks the steps once and then forms the weight gradients with a few large GEMMs. On CPU
(float32/float64) the recurrence is a small C++ kernel (peephole_kernel.cpp) compiled on first use
and cached on disk by rnnbench.cells.kernels; elsewhere, or when it cannot be built, the same algorithm runs in PyTorch ops.
``RNNBENCH_PEEPHOLE_KERNEL=auto|cpp|python`` picks the path, ``RNNBENCH_KERNEL_DIR`` the cache.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.autograd.function import FunctionCtx, once_differentiable
from torch.nn import functional as F

from rnnbench.cells import check_input
from rnnbench.cells.kernels import KERNEL_DIR_ENV as KERNEL_DIR_ENV  # re-exported: the cache directory
from rnnbench.cells.kernels import (
    CompiledKernel,
    KernelChoiceError,
    KernelError,
    autocast_enabled,
    autocast_off,
    missing_tools,
)

KERNEL_ENV = "RNNBENCH_PEEPHOLE_KERNEL"
KERNEL_CHOICES = ("auto", "cpp", "python")
KERNEL_SOURCE = Path(__file__).with_name("peephole_kernel.cpp")


class PeepholeKernelError(KernelError):
    """The compiled peephole kernel was required but cannot be built, loaded or used."""


class PeepholeKernelChoiceError(KernelChoiceError):
    """``RNNBENCH_PEEPHOLE_KERNEL`` holds a value that is not one of the choices."""


KERNEL = CompiledKernel(
    "peephole",
    KERNEL_SOURCE,
    KERNEL_ENV,
    KERNEL_CHOICES,
    fallback=("the slower pure-PyTorch path", "python"),
    error=PeepholeKernelError,
    choice_error=PeepholeKernelChoiceError,
)
kernel_missing_tools = missing_tools


def kernel_choice() -> str:
    """The path ``RNNBENCH_PEEPHOLE_KERNEL`` asks for: ``auto`` (default), ``cpp`` or ``python``."""
    return KERNEL.choice()


def kernel_name() -> str:
    """The peephole kernel's extension name (a hash of its source, torch, Python and the machine)."""
    return KERNEL.name()


def kernel_build_dir(name: str | None = None) -> Path:
    """Where the peephole kernel is built and cached; see rnnbench.cells.kernels."""
    return KERNEL.build_dir(name)


def load_kernel() -> Any:
    """Build (first use only; cached on disk) and load the compiled kernel, or raise PeepholeKernelError."""
    return KERNEL.load()


# --- the recurrence: compiled kernel and pure-PyTorch twin, with the same signatures -------------


class _Recurrence(Protocol):
    """Time-major (T, B, .) forward and backward of one layer; see peephole_kernel.cpp."""

    def forward(
        self,
        x: torch.Tensor,
        w_ih: torch.Tensor,
        w_hh: torch.Tensor,
        bias: torch.Tensor,
        peephole: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...

    def backward(
        self,
        grad_h: torch.Tensor,
        x: torch.Tensor,
        w_ih: torch.Tensor,
        w_hh: torch.Tensor,
        peephole: torch.Tensor,
        h: torch.Tensor,
        act: torch.Tensor,
        c: torch.Tensor,
        need_x_grad: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]: ...


class _TorchRecurrence:
    """The kernel's algorithm in PyTorch ops: runs on any device and dtype, slower on CPU."""

    @staticmethod
    def forward(
        x: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, bias: torch.Tensor, peephole: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (h, gate activations, c), time-major."""
        steps, batch, _ = x.shape
        hidden = w_hh.size(1)
        # One GEMM projects every step; each step then adds its recurrent term in place.
        gates = torch.addmm(bias, x.reshape(steps * batch, -1), w_ih.t()).view(steps, batch, 4 * hidden)
        h = x.new_empty(steps, batch, hidden)
        c = x.new_empty(steps, batch, hidden)
        p_i, p_f, p_o = peephole.unbind(0)
        w_hh_t = w_hh.t()
        gates_steps, h_steps, c_steps = gates.unbind(0), h.unbind(0), c.unbind(0)
        for t in range(steps):
            gates_t, c_t = gates_steps[t], c_steps[t]
            i, f, g, o = gates_t.chunk(4, dim=1)
            if t > 0:  # h_{-1} = c_{-1} = 0: step 0 has no recurrent or input/forget peephole term
                c_prev = c_steps[t - 1]
                gates_t.addmm_(h_steps[t - 1], w_hh_t)
                i.addcmul_(p_i, c_prev)
                f.addcmul_(p_f, c_prev)
            i.sigmoid_()
            f.sigmoid_()
            g.tanh_()
            if t > 0:
                torch.mul(f, c_prev, out=c_t).addcmul_(i, g)
            else:
                torch.mul(i, g, out=c_t)
            o.addcmul_(p_o, c_t).sigmoid_()
            torch.mul(o, torch.tanh(c_t), out=h_steps[t])
        return h, gates, c

    @staticmethod
    def backward(
        grad_h: torch.Tensor,
        x: torch.Tensor,
        w_ih: torch.Tensor,
        w_hh: torch.Tensor,
        peephole: torch.Tensor,
        h: torch.Tensor,
        act: torch.Tensor,
        c: torch.Tensor,
        need_x_grad: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (dx, dw_ih, dw_hh, dbias, dpeephole); dx is empty unless ``need_x_grad``."""
        steps, batch, _ = x.shape
        hidden = w_hh.size(1)
        p_i, p_f, p_o = peephole.unbind(0)
        dgates = torch.empty_like(act)
        dc = x.new_zeros(batch, hidden)
        sigmoid_backward, tanh_backward = torch.ops.aten.sigmoid_backward, torch.ops.aten.tanh_backward
        for t in reversed(range(steps)):
            # dh_t = dL/dh_t from the output plus what step t+1 sends back through W_hh.
            dh = grad_h[t] if t == steps - 1 else torch.addmm(grad_h[t], dgates[t + 1], w_hh)
            i, f, g, o = act[t].chunk(4, dim=1)
            c_prev = c[t - 1] if t > 0 else torch.zeros_like(dc)
            tanh_c = torch.tanh(c[t])
            d_o = sigmoid_backward(dh * tanh_c, o)
            dc = dc + tanh_backward(dh * o, tanh_c) + d_o * p_o
            d_i = sigmoid_backward(dc * g, i)
            d_f = sigmoid_backward(dc * c_prev, f)
            torch.cat([d_i, d_f, tanh_backward(dc * i, g), d_o], dim=1, out=dgates[t])
            dc = dc * f + d_i * p_i + d_f * p_f
        return _weight_grads(dgates, x, w_ih, h, c, need_x_grad)


def _weight_grads(
    dgates: torch.Tensor,
    x: torch.Tensor,
    w_ih: torch.Tensor,
    h: torch.Tensor,
    c: torch.Tensor,
    need_x_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients as a few large GEMMs over all steps, from the pre-activation gate gradients."""
    steps, batch, input_size = x.shape
    hidden = h.size(2)
    dgates_2d = dgates.view(steps * batch, 4 * hidden)
    dw_ih = dgates_2d.t().mm(x.reshape(steps * batch, input_size))
    dw_hh = dgates[1:].reshape(-1, 4 * hidden).t().mm(h[:-1].reshape(-1, hidden))
    dbias = dgates_2d.sum(0)
    # i and f saw c_{t-1} (zero at t = 0), o saw c_t.
    dpeephole = torch.stack(
        [
            (dgates[1:, :, :hidden] * c[:-1]).sum((0, 1)),
            (dgates[1:, :, hidden : 2 * hidden] * c[:-1]).sum((0, 1)),
            (dgates[:, :, 3 * hidden :] * c).sum((0, 1)),
        ]
    )
    dx = dgates_2d.mm(w_ih).view(steps, batch, input_size) if need_x_grad else x.new_empty(0)
    return dx, dw_ih, dw_hh, dbias, dpeephole


class _PeepholeFunction(torch.autograd.Function):
    """One peephole LSTM layer over time-major inputs, with a hand-written backward."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        x: torch.Tensor,
        w_ih: torch.Tensor,
        w_hh: torch.Tensor,
        bias: torch.Tensor,
        peephole: torch.Tensor,
        recurrence: _Recurrence,
    ) -> torch.Tensor:
        with autocast_off(x.device.type):
            h, act, c = recurrence.forward(x, w_ih, w_hh, bias, peephole)
        ctx.recurrence = recurrence  # type: ignore[attr-defined]
        ctx.save_for_backward(x, w_ih, w_hh, peephole, h, act, c)
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_h: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, w_ih, w_hh, peephole, h, act, c = ctx.saved_tensors
        need_x_grad = ctx.needs_input_grad[0]
        with autocast_off(x.device.type):
            dx, dw_ih, dw_hh, dbias, dpeephole = ctx.recurrence.backward(
                grad_h.contiguous(), x, w_ih, w_hh, peephole, h, act, c, need_x_grad
            )
        return dx if need_x_grad else None, dw_ih, dw_hh, dbias, dpeephole, None


def _recurrence_for(tensors: tuple[torch.Tensor, ...]) -> _Recurrence:
    """The recurrence that ``RNNBENCH_PEEPHOLE_KERNEL`` and the tensors call for."""
    choice = kernel_choice()
    if choice == "python":
        return _TorchRecurrence
    return KERNEL.for_tensors(tensors, forced=choice == "cpp") or _TorchRecurrence


# --- modules ---------------------------------------------------------------------------------------


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
        """Map a batch-first (B, T, input_size) sequence to (B, T, hidden_size)."""
        batch, steps, _ = x.shape
        if steps == 0:
            return x.new_zeros(batch, 0, self.hidden_size)
        params = (self.weight_ih, self.weight_hh, self.bias, self.peephole.contiguous())
        if autocast_enabled(x.device.type) and x.dtype != self.weight_ih.dtype:
            # Under autocast the layer runs in its parameters' dtype (float32 as a rule): a lower
            # precision input, say from an autocast Linear, is cast up rather than mixed in.
            x = x.to(self.weight_ih.dtype)
        recurrence = _recurrence_for((x, *params))
        # Time-major inside: every step is then one contiguous block. The output is a transposed
        # view, which the next layer's transpose turns back into a free contiguous tensor.
        h = _PeepholeFunction.apply(x.transpose(0, 1).contiguous(), *params, recurrence)
        return h.transpose(0, 1)


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
