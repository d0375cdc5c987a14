"""The gated recurrent unit, exactly as torch.nn.GRU, with a faster CPU path at small sizes.

    r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

torch's CPU GRU pays a dozen op dispatches and autograd nodes per step, which dominate at small
sizes. Here each layer runs as one autograd Function with a hand-written backward: one GEMM projects
the inputs of all steps, each step adds one recurrent GEMM and one fused pointwise pass, and the
backward pass walks the steps once and forms the weight gradients with a few large GEMMs. On CPU
(float32/float64) the pointwise work is a small C++ kernel (gru_kernel.cpp) compiled on first use and
cached on disk by rnnbench.cells.kernels; the same algorithm also runs in PyTorch ops.

``FastGRU`` is a torch.nn.GRU subclass: same parameters, initialisation and state_dict, same
results. ``RNNBENCH_GRU_KERNEL`` picks the path: ``auto`` (default) takes the compiled kernel for CPU
float32/float64 and torch.nn.GRU's own forward elsewhere (CUDA, half precision, autocast, packed
sequences, an initial state, bidirectional or bias-free stacks, or when the kernel cannot be built:
then with one warning); ``cpp`` and ``python`` force the compiled kernel and its PyTorch-ops twin
(an error where they cannot run), ``torch`` plain nn.GRU. ``RNNBENCH_KERNEL_DIR`` sets the cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.autograd.function import FunctionCtx, once_differentiable
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence

from rnnbench.cells import check_input
from rnnbench.cells.kernels import (
    CompiledKernel,
    KernelChoiceError,
    KernelError,
    autocast_enabled,
    autocast_off,
)

KERNEL_ENV = "RNNBENCH_GRU_KERNEL"
KERNEL_CHOICES = ("auto", "cpp", "python", "torch")
KERNEL_SOURCE = Path(__file__).with_name("gru_kernel.cpp")


class GruKernelError(KernelError):
    """The custom GRU path was required but cannot be built, loaded or used for these inputs."""


class GruKernelChoiceError(KernelChoiceError):
    """``RNNBENCH_GRU_KERNEL`` holds a value that is not one of the choices."""


KERNEL = CompiledKernel(
    "gru",
    KERNEL_SOURCE,
    KERNEL_ENV,
    KERNEL_CHOICES,
    fallback=("torch.nn.GRU's own forward", "torch"),
    error=GruKernelError,
    choice_error=GruKernelChoiceError,
)


def kernel_choice() -> str:
    """The path ``RNNBENCH_GRU_KERNEL`` asks for: ``auto`` (default), ``cpp``, ``python`` or ``torch``."""
    return KERNEL.choice()


def load_kernel() -> Any:
    """Build (first use only; cached on disk) and load the compiled kernel, or raise GruKernelError."""
    return KERNEL.load()


# --- the recurrence: compiled kernel and pure-PyTorch twin, with the same signatures -------------


class _Recurrence(Protocol):
    """Time-major (T, B, .) forward and backward of one layer; see gru_kernel.cpp."""

    def forward(
        self, x: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...

    def backward(
        self,
        grad_h: torch.Tensor,
        x: torch.Tensor,
        w_ih: torch.Tensor,
        w_hh: torch.Tensor,
        h: torch.Tensor,
        act: torch.Tensor,
        hn: torch.Tensor,
        need_x_grad: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]: ...


class _TorchRecurrence:
    """The kernel's algorithm in PyTorch ops: runs on any device and dtype."""

    @staticmethod
    def forward(
        x: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (h, activations (r, z, n), hn = W_hn h_{t-1} + b_hn), time-major."""
        steps, batch, _ = x.shape
        hidden = w_hh.size(1)
        # One GEMM projects every step; the activations then overwrite the projections in place.
        gates = torch.addmm(b_ih, x.reshape(steps * batch, -1), w_ih.t()).view(steps, batch, 3 * hidden)
        h = x.new_empty(steps, batch, hidden)
        hn = x.new_empty(steps, batch, hidden)
        w_hh_t = w_hh.t()
        h_prev = x.new_zeros(batch, hidden)  # h_{-1}
        for t in range(steps):
            # The same operations, in the same order, as torch.nn.GRU's CPU cell.
            h_gates = torch.addmm(b_hh, h_prev, w_hh_t) if t > 0 else b_hh.expand(batch, 3 * hidden)
            h_r, h_z, h_n = h_gates.chunk(3, dim=1)
            r, z, n = gates[t].chunk(3, dim=1)
            r.add_(h_r).sigmoid_()
            z.add_(h_z).sigmoid_()
            hn[t].copy_(h_n)
            n.add_(h_n * r).tanh_()
            torch.sub(h_prev, n, out=h[t]).mul_(z).add_(n)
            h_prev = h[t]
        return h, gates, hn

    @staticmethod
    def backward(
        grad_h: torch.Tensor,
        x: torch.Tensor,
        w_ih: torch.Tensor,
        w_hh: torch.Tensor,
        h: torch.Tensor,
        act: torch.Tensor,
        hn: torch.Tensor,
        need_x_grad: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (dx, dw_ih, dw_hh, db_ih, db_hh); dx is empty unless ``need_x_grad``."""
        steps, batch, _ = x.shape
        dgates = torch.empty_like(act)  # w.r.t. W_i x_t + b_i
        dh_gates = torch.empty_like(act)  # w.r.t. W_h h_{t-1} + b_h: the n part is scaled by r
        carry = x.new_zeros(batch, h.size(2))  # z_{t+1} * dL/dh_{t+1}
        h_zero = torch.zeros_like(carry)
        sigmoid_backward, tanh_backward = torch.ops.aten.sigmoid_backward, torch.ops.aten.tanh_backward
        for t in reversed(range(steps)):
            # dL/dh_t from the output, through h_{t+1}'s z term, and through W_h of step t+1.
            dh = (
                grad_h[t] + carry if t == steps - 1 else torch.addmm(grad_h[t], dh_gates[t + 1], w_hh) + carry
            )
            r, z, n = act[t].chunk(3, dim=1)
            h_prev = h[t - 1] if t > 0 else h_zero
            d_n = tanh_backward(dh * (1 - z), n)
            d_z = sigmoid_backward(dh * (h_prev - n), z)
            d_r = sigmoid_backward(d_n * hn[t], r)
            carry = dh * z
            torch.cat([d_r, d_z, d_n], dim=1, out=dgates[t])
            torch.cat([d_r, d_z, d_n * r], dim=1, out=dh_gates[t])
        return _weight_grads(dgates, dh_gates, x, w_ih, h, need_x_grad)


def _weight_grads(
    dgates: torch.Tensor,
    dh_gates: torch.Tensor,
    x: torch.Tensor,
    w_ih: torch.Tensor,
    h: torch.Tensor,
    need_x_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients as a few large GEMMs over all steps, from the pre-activation gate gradients."""
    steps, batch, input_size = x.shape
    hidden = h.size(2)
    dgates_2d = dgates.view(steps * batch, 3 * hidden)
    dw_ih = dgates_2d.t().mm(x.reshape(steps * batch, input_size))
    dw_hh = dh_gates[1:].reshape(-1, 3 * hidden).t().mm(h[:-1].reshape(-1, hidden))  # h_{-1} = 0
    db_ih = dgates_2d.sum(0)
    db_hh = dh_gates.view(steps * batch, 3 * hidden).sum(0)
    dx = dgates_2d.mm(w_ih).view(steps, batch, input_size) if need_x_grad else x.new_empty(0)
    return dx, dw_ih, dw_hh, db_ih, db_hh


class _GRUFunction(torch.autograd.Function):
    """One GRU layer over time-major inputs, with a hand-written backward."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        x: torch.Tensor,
        w_ih: torch.Tensor,
        w_hh: torch.Tensor,
        b_ih: torch.Tensor,
        b_hh: torch.Tensor,
        recurrence: _Recurrence,
    ) -> torch.Tensor:
        with autocast_off(x.device.type):
            h, act, hn = recurrence.forward(x, w_ih, w_hh, b_ih, b_hh)
        ctx.recurrence = recurrence  # type: ignore[attr-defined]
        ctx.save_for_backward(x, w_ih, w_hh, h, act, hn)
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_h: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, w_ih, w_hh, h, act, hn = ctx.saved_tensors
        need_x_grad = ctx.needs_input_grad[0]
        with autocast_off(x.device.type):
            dx, dw_ih, dw_hh, db_ih, db_hh = ctx.recurrence.backward(
                grad_h.contiguous(), x, w_ih, w_hh, h, act, hn, need_x_grad
            )
        return dx if need_x_grad else None, dw_ih, dw_hh, db_ih, db_hh, None


# --- modules ---------------------------------------------------------------------------------------


class FastGRU(nn.GRU):
    """torch.nn.GRU with the same parameters and results, and a faster CPU path at small sizes.

    The custom path takes batched tensor inputs without an initial state, on unidirectional stacks
    with biases; everything else, and whatever ``RNNBENCH_GRU_KERNEL`` sends there, runs nn.GRU's
    own forward.
    """

    def _layer_params(self) -> list[tuple[torch.Tensor, ...]]:
        return [
            tuple(getattr(self, f"{name}_l{k}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
            for k in range(self.num_layers)
        ]

    def _unsupported(self, input: Any, hx: torch.Tensor | None) -> str | None:
        """What keeps the custom path from running this call, or None."""
        if isinstance(input, PackedSequence):
            return "packed sequences"
        if input.dim() != 3:
            return "unbatched (2-d) inputs"
        if hx is not None:
            return "an initial hidden state"
        if self.bidirectional:
            return "bidirectional stacks"
        if not self.bias:
            return "stacks without biases"
        return None

    def _recurrence(self, x: torch.Tensor, choice: str) -> _Recurrence | None:
        """The recurrence for this call, or None for nn.GRU's own forward."""
        if choice == "python":
            return _TorchRecurrence
        tensors = (x, *(p for layer in self._layer_params() for p in layer))
        if choice == "cpp":
            return KERNEL.for_tensors(tensors, forced=True)
        if autocast_enabled(x.device.type):
            return None
        # No size rule: on CPU the kernel was never slower than torch's GRU (forward + backward, one
        # thread; two threads widen the gap), from (B, T, I, H) = (1, 100, 64, 64) at 0.13x torch's
        # time to (128, 50, 1024, 1024) at 0.93x, where the shared GEMMs dominate.
        return KERNEL.for_tensors(tensors, forced=False)

    def forward(self, input: Any, hx: torch.Tensor | None = None) -> Any:
        choice = kernel_choice()
        if choice == "torch" or (not isinstance(input, PackedSequence) and input.numel() == 0):
            return super().forward(input, hx)
        unsupported = self._unsupported(input, hx)
        if unsupported is not None:
            if choice != "auto":
                raise GruKernelError(
                    f"{KERNEL_ENV}={choice}, but the custom GRU path does not take {unsupported}"
                )
            return super().forward(input, hx)
        self.check_input(input, None)
        x = input
        if choice != "auto" and autocast_enabled(x.device.type) and x.dtype != self.weight_ih_l0.dtype:
            # Under autocast a forced path runs in its parameters' dtype (float32 as a rule).
            x = x.to(self.weight_ih_l0.dtype)
        recurrence = self._recurrence(x, choice)
        if recurrence is None:
            return super().forward(input, hx)
        # Time-major inside: every step is then one contiguous block.
        x = (x.transpose(0, 1) if self.batch_first else x).contiguous()
        last = []
        for k, params in enumerate(self._layer_params()):
            if k > 0 and self.dropout > 0.0 and self.training:
                x = F.dropout(x, self.dropout, self.training)
            x = _GRUFunction.apply(x, *params, recurrence)
            last.append(x[-1])
        output = x.transpose(0, 1) if self.batch_first else x
        return output, torch.stack(last)


class GRU(nn.Module):
    """The rnnbench ``gru`` cell: a FastGRU stack, batch first, returning only the output sequence.

    The stack is ``self.rnn``, as in FusedRecurrent, so state_dicts match the earlier nn.GRU cell.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.kind, self.input_size, self.hidden_size = "gru", input_size, hidden_size
        # torch warns when dropout is set on a single layer, where it would do nothing.
        self.rnn = FastGRU(
            input_size, hidden_size, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.input_size, self.kind)
        output, _ = self.rnn(x)
        return output
