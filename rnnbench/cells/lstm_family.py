"""The LSTM family on one kernel: the peephole LSTM and Greff et al.'s eight variants.

Greff, Srivastava, Koutník, Steunebrink & Schmidhuber, "LSTM: A Search Space Odyssey" (IEEE TNNLS
2017). Their vanilla LSTM (block input z, gates i, f, o, cell c, output y; g = h = tanh; primes are
the previous step, zero before the first):

    z = g(W_z x + R_z y' + b_z)
    i = sigmoid(W_i x + R_i y' + p_i * c' + b_i)
    f = sigmoid(W_f x + R_f y' + p_f * c' + b_f)
    c = z * i + c' * f
    o = sigmoid(W_o x + R_o y' + p_o * c + b_o)
    y = h(c) * o

A :class:`Variant` switches parts off: a missing gate is 1, ``coupled`` sets f = 1 - i (CIFG),
``input_activation``/``output_activation`` off make g/h the identity, ``peepholes`` off drops p, and
``full_gate_recurrence`` adds R_{a,b} a'_b for a, b in (i, f, o) to each gate's pre-activation (FGR).
Parameters a variant does not use do not exist. Gates are stored (i, f, o, z) minus the missing ones;
the ``peephole`` cell keeps torch.nn.LSTM's order (i, f, z, o), so with zero peepholes it loads an
nn.LSTM's weights (bias = bias_ih + bias_hh) and computes the same function.

Each layer runs as one autograd Function with a hand-written backward: one GEMM projects the inputs
of all steps, the recurrence stores the gate activations and cell states, the backward pass walks the
steps once and then forms the weight gradients with a few large GEMMs. On CPU (float32/float64) the
recurrence is a C++ kernel (lstm_family_kernel.cpp) compiled on first use and cached on disk by
rnnbench.cells.kernels; elsewhere, or when it cannot be built, the same algorithm runs in PyTorch ops.
``RNNBENCH_PEEPHOLE_KERNEL=auto|cpp|python`` picks the path for the whole family,
``RNNBENCH_KERNEL_DIR`` the cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

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
from rnnbench.errors import RnnbenchError

KERNEL_ENV = "RNNBENCH_PEEPHOLE_KERNEL"
KERNEL_CHOICES = ("auto", "cpp", "python")
KERNEL_SOURCE = Path(__file__).with_name("lstm_family_kernel.cpp")


class PeepholeKernelError(KernelError):
    """The compiled LSTM-family kernel was required but cannot be built, loaded or used."""


class PeepholeKernelChoiceError(KernelChoiceError):
    """``RNNBENCH_PEEPHOLE_KERNEL`` holds a value that is not one of the choices."""


class VariantError(RnnbenchError, ValueError):
    """A combination of LSTM-family switches that does not describe a cell."""


KERNEL = CompiledKernel(
    "lstm_family",
    KERNEL_SOURCE,
    KERNEL_ENV,
    KERNEL_CHOICES,
    fallback=("the slower pure-PyTorch path", "python"),
    error=PeepholeKernelError,
    choice_error=PeepholeKernelChoiceError,
)
kernel_missing_tools = missing_tools

# The kernel's switch bits (lstm_family_kernel.cpp's enum), in Variant's field order.
_BITS = {
    "input_gate": 1,
    "forget_gate": 2,
    "output_gate": 4,
    "coupled": 8,
    "input_activation": 16,  # the bit means "linear": set when the field is False
    "output_activation": 32,
    "peepholes": 64,
    "full_gate_recurrence": 128,
    "torch_order": 256,
}
_INVERTED = ("input_activation", "output_activation")


@dataclass(frozen=True)
class Variant:
    """Which parts of Greff's vanilla LSTM a cell keeps; the default is the vanilla LSTM itself."""

    input_gate: bool = True
    forget_gate: bool = True
    output_gate: bool = True
    coupled: bool = False  # f = 1 - i (CIFG): no forget-gate parameters
    input_activation: bool = True  # g = tanh, else the identity (NIAF)
    output_activation: bool = True  # h = tanh, else the identity (NOAF)
    peepholes: bool = True
    full_gate_recurrence: bool = False  # FGR: i, f, o see the previous step's i, f, o
    torch_order: bool = False  # gates stored (i, f, z, o) as torch.nn.LSTM, else (i, f, o, z)

    def __post_init__(self) -> None:
        for field in fields(self):
            if not isinstance(getattr(self, field.name), bool):
                raise VariantError(
                    f"Variant.{field.name} must be True or False, got {getattr(self, field.name)!r}"
                )
        if self.coupled and not (self.input_gate and self.forget_gate):
            raise VariantError("Variant: coupled (f = 1 - i) needs input_gate=True and forget_gate=True")
        if self.full_gate_recurrence and (
            not (self.input_gate and self.forget_gate and self.output_gate)
            or self.coupled
            or self.torch_order
        ):
            raise VariantError(
                "Variant: full_gate_recurrence needs all three gates, uncoupled, in the default order"
            )

    @property
    def flags(self) -> int:
        """The kernel's switch bits."""
        return sum(
            bit
            for name, bit in _BITS.items()
            if (not getattr(self, name) if name in _INVERTED else getattr(self, name))
        )

    @property
    def has_forget_parameters(self) -> bool:
        return self.forget_gate and not self.coupled

    @property
    def gates(self) -> tuple[str, ...]:
        """The gate blocks in storage order ('i', 'f', 'o', 'z'), H rows each."""
        present = {"i": self.input_gate, "f": self.has_forget_parameters, "o": self.output_gate, "z": True}
        order = ("i", "f", "z", "o") if self.torch_order else ("i", "f", "o", "z")
        return tuple(g for g in order if present[g])

    @property
    def peephole_rows(self) -> tuple[str, ...]:
        """The gates with a peephole weight vector, in row order."""
        if not self.peepholes:
            return ()
        return tuple(g for g in ("i", "f", "o") if g in self.gates)


# Greff's vanilla LSTM in torch.nn.LSTM's gate order (the built-in ``peephole`` cell), and the eight
# variants of the Odyssey, one change each.
PEEPHOLE = Variant(torch_order=True)
VARIANTS: dict[str, Variant] = {
    "nig": Variant(input_gate=False),
    "nfg": Variant(forget_gate=False),
    "nog": Variant(output_gate=False),
    "niaf": Variant(input_activation=False),
    "noaf": Variant(output_activation=False),
    "np": Variant(peepholes=False),
    "cifg": Variant(coupled=True),
    "fgr": Variant(full_gate_recurrence=True),
}


def kernel_choice() -> str:
    """The path ``RNNBENCH_PEEPHOLE_KERNEL`` asks for: ``auto`` (default), ``cpp`` or ``python``."""
    return KERNEL.choice()


def kernel_name() -> str:
    """The kernel's extension name (a hash of its source, torch, Python and the machine)."""
    return KERNEL.name()


def kernel_build_dir(name: str | None = None) -> Path:
    """Where the kernel is built and cached; see rnnbench.cells.kernels."""
    return KERNEL.build_dir(name)


def load_kernel() -> Any:
    """Build (first use only; cached on disk) and load the compiled kernel, or raise PeepholeKernelError."""
    return KERNEL.load()


# --- the recurrence in PyTorch ops: the kernel's algorithm, on any device and dtype ----------------


def _blocks(rows: torch.Tensor, variant: Variant) -> dict[str, torch.Tensor]:
    """Views of each gate's H columns in (B, G*H) rows."""
    hidden = rows.size(-1) // len(variant.gates)
    return {g: rows.narrow(-1, k * hidden, hidden) for k, g in enumerate(variant.gates)}


def _peeps(peephole: torch.Tensor, variant: Variant) -> dict[str, torch.Tensor]:
    return dict(zip(variant.peephole_rows, peephole.unbind(0), strict=True))


def torch_forward(
    x: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    bias: torch.Tensor,
    peephole: torch.Tensor,
    w_gg: torch.Tensor,
    variant: Variant,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (h, gate activations, c), time-major."""
    steps, batch, _ = x.shape
    hidden = w_hh.size(1)
    width = w_hh.size(0)
    gates = torch.addmm(bias, x.reshape(steps * batch, -1), w_ih.t()).view(steps, batch, width)
    h, c = x.new_empty(steps, batch, hidden), x.new_empty(steps, batch, hidden)
    p = _peeps(peephole, variant)
    w_hh_t = w_hh.t()
    for t in range(steps):
        g = _blocks(gates[t], variant)
        c_prev = c[t - 1] if t > 0 else None
        if t > 0:  # h_{-1} = c_{-1} = 0: step 0 has no recurrent or input/forget peephole term
            gates[t].addmm_(h[t - 1], w_hh_t)
            if variant.full_gate_recurrence:
                gates[t, :, : 3 * hidden].addmm_(gates[t - 1, :, : 3 * hidden], w_gg.t())
        for name in ("i", "f"):
            if name in g:
                if c_prev is not None and name in p:
                    g[name].addcmul_(p[name], c_prev)
                g[name].sigmoid_()
        i = g.get("i")
        f = 1 - i if variant.coupled else g.get("f")
        z = g["z"] if not variant.input_activation else g["z"].tanh_()
        c_t = c[t]
        c_t.copy_(z if i is None else z * i)
        if c_prev is not None:
            c_t.add_(c_prev if f is None else f * c_prev)
        y = c_t if not variant.output_activation else torch.tanh(c_t)
        if "o" in g:
            if "o" in p:
                g["o"].addcmul_(p["o"], c_t)
            y = y * g["o"].sigmoid_()
        h[t].copy_(y)
    return h, gates, c


def torch_backward(
    grad_h: torch.Tensor,
    x: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    peephole: torch.Tensor,
    w_gg: torch.Tensor,
    h: torch.Tensor,
    act: torch.Tensor,
    c: torch.Tensor,
    variant: Variant,
    need_x_grad: bool,
) -> tuple[torch.Tensor, ...]:
    """Return (dx, dw_ih, dw_hh, dbias, dpeephole, dw_gg); dx is empty unless ``need_x_grad``."""
    steps, batch, _ = x.shape
    hidden = w_hh.size(1)
    p = _peeps(peephole, variant)
    dgates = torch.empty_like(act)
    dc = x.new_zeros(batch, hidden)
    zero = x.new_zeros(batch, hidden)
    for t in reversed(range(steps)):
        # dh_t = dL/dh_t from the output plus what step t+1 sends back through R.
        dh = grad_h[t] if t == steps - 1 else torch.addmm(grad_h[t], dgates[t + 1], w_hh)
        da = {}
        if variant.full_gate_recurrence and t < steps - 1:
            da = dict(zip("ifo", dgates[t + 1, :, : 3 * hidden].mm(w_gg).split(hidden, dim=1), strict=True))
        a, d = _blocks(act[t], variant), _blocks(dgates[t], variant)
        c_prev = c[t - 1] if t > 0 else zero
        i = a.get("i", 1.0)
        f = 1 - a["i"] if variant.coupled else a.get("f", 1.0)
        o = a.get("o", 1.0)
        y_c = torch.tanh(c[t]) if variant.output_activation else c[t]
        dc = dc + dh * o * ((1 - y_c * y_c) if variant.output_activation else 1.0)
        if "o" in a:
            d["o"].copy_((dh * y_c + da.get("o", 0.0)) * o * (1 - o))
            if "o" in p:
                dc = dc + d["o"] * p["o"]
        if "i" in a:
            grad_i = dc * a["z"] - (dc * c_prev if variant.coupled else 0.0) + da.get("i", 0.0)
            d["i"].copy_(grad_i * i * (1 - i))
        if "f" in a:
            d["f"].copy_((dc * c_prev + da.get("f", 0.0)) * f * (1 - f))
        d["z"].copy_(dc * i * ((1 - a["z"] * a["z"]) if variant.input_activation else 1.0))
        dc = dc * f
        for name in ("i", "f"):
            if name in p:
                dc = dc + d[name] * p[name]
    return _weight_grads(dgates, x, w_ih, h, act, c, variant, need_x_grad)


def _weight_grads(
    dgates: torch.Tensor,
    x: torch.Tensor,
    w_ih: torch.Tensor,
    h: torch.Tensor,
    act: torch.Tensor,
    c: torch.Tensor,
    variant: Variant,
    need_x_grad: bool,
) -> tuple[torch.Tensor, ...]:
    """Gradients as a few large GEMMs over all steps, from the pre-activation gate gradients."""
    steps, batch, input_size = x.shape
    hidden, width = h.size(2), dgates.size(2)
    dgates_2d = dgates.view(steps * batch, width)
    dw_ih = dgates_2d.t().mm(x.reshape(steps * batch, input_size))
    dw_hh = dgates[1:].reshape(-1, width).t().mm(h[:-1].reshape(-1, hidden))
    dbias = dgates_2d.sum(0)
    # i and f saw c_{t-1} (zero at t = 0), o saw c_t.
    blocks = _blocks(dgates, variant)
    rows = [
        (blocks[g] * c).sum((0, 1)) if g == "o" else (blocks[g][1:] * c[:-1]).sum((0, 1))
        for g in variant.peephole_rows
    ]
    dpeephole = torch.stack(rows) if rows else x.new_empty(0, hidden)
    dw_gg = x.new_empty(0)
    if variant.full_gate_recurrence:
        dw_gg = (
            dgates[1:, :, : 3 * hidden]
            .reshape(-1, 3 * hidden)
            .t()
            .mm(act[:-1, :, : 3 * hidden].reshape(-1, 3 * hidden))
        )
    dx = dgates_2d.mm(w_ih).view(steps, batch, input_size) if need_x_grad else x.new_empty(0)
    return dx, dw_ih, dw_hh, dbias, dpeephole, dw_gg


class _FamilyFunction(torch.autograd.Function):
    """One LSTM-family layer over time-major inputs, with a hand-written backward."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        x: torch.Tensor,
        w_ih: torch.Tensor,
        w_hh: torch.Tensor,
        bias: torch.Tensor,
        peephole: torch.Tensor,
        w_gg: torch.Tensor,
        variant: Variant,
        kernel: Any,
    ) -> torch.Tensor:
        with autocast_off(x.device.type):
            if kernel is None:
                h, act, c = torch_forward(x, w_ih, w_hh, bias, peephole, w_gg, variant)
            else:
                h, act, c = kernel.forward(x, w_ih, w_hh, bias, peephole, w_gg, variant.flags)
        ctx.variant, ctx.kernel = variant, kernel  # type: ignore[attr-defined]
        ctx.save_for_backward(x, w_ih, w_hh, peephole, w_gg, h, act, c)
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_h: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, w_ih, w_hh, peephole, w_gg, h, act, c = ctx.saved_tensors
        need_x_grad = ctx.needs_input_grad[0]
        args = (grad_h.contiguous(), x, w_ih, w_hh, peephole, w_gg, h, act, c)
        with autocast_off(x.device.type):
            if ctx.kernel is None:
                grads = torch_backward(*args, ctx.variant, need_x_grad)
            else:
                grads = ctx.kernel.backward(*args, ctx.variant.flags, need_x_grad)
        dx, dw_ih, dw_hh, dbias, dpeephole, dw_gg = grads
        return (
            dx if need_x_grad else None,
            dw_ih,
            dw_hh,
            dbias,
            dpeephole if ctx.needs_input_grad[4] else None,
            dw_gg if ctx.needs_input_grad[5] else None,
            None,
            None,
        )


def _kernel_for(tensors: tuple[torch.Tensor, ...]) -> Any | None:
    """The compiled kernel that ``RNNBENCH_PEEPHOLE_KERNEL`` and the tensors call for, else None."""
    choice = kernel_choice()
    if choice == "python":
        return None
    return KERNEL.for_tensors(tensors, forced=choice == "cpp")


# --- modules ---------------------------------------------------------------------------------------


class LSTMFamilyLayer(nn.Module):
    """One layer of a :class:`Variant`; only the parameters the variant uses exist."""

    def __init__(
        self, input_size: int, hidden_size: int, variant: Variant = PEEPHOLE, forget_bias: float = 1.0
    ) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.variant = input_size, hidden_size, variant
        width = len(variant.gates) * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(width, input_size))
        self.weight_hh = nn.Parameter(torch.empty(width, hidden_size))
        self.bias = nn.Parameter(torch.empty(width))
        if variant.peephole_rows:  # rows in Variant.peephole_rows order
            self.peephole = nn.Parameter(torch.empty(len(variant.peephole_rows), hidden_size))
        if variant.full_gate_recurrence:  # rows and columns: (i, f, o) blocks
            self.weight_gg = nn.Parameter(torch.empty(3 * hidden_size, 3 * hidden_size))
        self.reset_parameters(forget_bias)

    @torch.no_grad()
    def reset_parameters(self, forget_bias: float = 1.0) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)  # torch.nn.LSTM's initialisation
        for parameter in self.parameters():
            parameter.uniform_(-bound, bound)
        if "f" in self.variant.gates:
            _blocks(self.bias, self.variant)["f"].fill_(forget_bias)
        elif self.variant.coupled:
            # CIFG's forget gate is 1 - i: an input-gate bias of -forget_bias starts it at
            # sigmoid(forget_bias), as every other cell's forget gate starts; 0 would start it at 0.5.
            _blocks(self.bias, self.variant)["i"].fill_(-forget_bias)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, gates={''.join(self.variant.gates)}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a batch-first (B, T, input_size) sequence to (B, T, hidden_size)."""
        batch, steps, _ = x.shape
        if steps == 0:
            return x.new_zeros(batch, 0, self.hidden_size)
        peephole = (
            self.peephole.contiguous()
            if self.variant.peephole_rows
            else self.weight_ih.new_empty(0, self.hidden_size)
        )
        w_gg = self.weight_gg if self.variant.full_gate_recurrence else self.weight_ih.new_empty(0)
        params = (self.weight_ih, self.weight_hh, self.bias, peephole, w_gg)
        if autocast_enabled(x.device.type) and x.dtype != self.weight_ih.dtype:
            # Under autocast the layer runs in its parameters' dtype (float32 as a rule): a lower
            # precision input, say from an autocast Linear, is cast up rather than mixed in.
            x = x.to(self.weight_ih.dtype)
        kernel = _kernel_for((x, *params))
        # Time-major inside: every step is then one contiguous block. The output is a transposed
        # view, which the next layer's transpose turns back into a free contiguous tensor.
        h = _FamilyFunction.apply(x.transpose(0, 1).contiguous(), *params, self.variant, kernel)
        return h.transpose(0, 1)


class LSTMFamily(nn.Module):
    """A stack of LSTM-family layers of one variant with dropout between layers, batch first."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        variant: Variant = PEEPHOLE,
        forget_bias: float = 1.0,
        name: str = "peephole",
    ) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.dropout = input_size, hidden_size, dropout
        self.variant, self.name = variant, name
        self.layers = nn.ModuleList(
            LSTMFamilyLayer(input_size if k == 0 else hidden_size, hidden_size, variant, forget_bias)
            for k in range(num_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.input_size, self.name)
        for k, layer in enumerate(self.layers):
            if k > 0 and self.dropout > 0.0:
                x = F.dropout(x, self.dropout, self.training)
            x = layer(x)
        return x
