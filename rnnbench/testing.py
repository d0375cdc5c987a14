"""Conformance kit for cell plugins: run ``check_cell`` (or ``rnnbench check-cell NAME``) on your cell.

Every check builds the cell afresh through the cell contract, so what passes here works in a sweep:
shapes for several batch sizes and sequence lengths (T=1 included), dtype kept, gradient to every
parameter, causality and memory across time, batch independence, determinism under a seed, a
state_dict round trip through ``torch.save`` / ``torch.load(weights_only=True)``, a move to an
accelerator when one exists, and a clear error for an input of the wrong rank or width.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from rnnbench.core.registry import CellSpec

Status = Literal["pass", "fail", "skip"]
BAD_INPUT_ERRORS = (ValueError, RuntimeError, TypeError, IndexError)


class CheckFailed(AssertionError):
    """Raised inside a check with the reason it failed."""


class CheckSkipped(Exception):
    """Raised inside a check that does not apply here (for example: no accelerator)."""


@dataclass(frozen=True)
class CheckResult:
    check: str
    status: Status
    detail: str


@dataclass
class ConformanceReport:
    cell: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.status != "fail" for r in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "fail"]

    def format(self) -> str:
        width = max(len(r.check) for r in self.results)
        lines = [f"cell {self.cell!r}: {'PASS' if self.passed else 'FAIL'}"]
        lines += [f"  {r.status.upper():4}  {r.check:<{width}}  {r.detail}" for r in self.results]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "cell": self.cell,
            "passed": self.passed,
            "checks": [r.__dict__ for r in self.results],
        }


@dataclass
class _Context:
    spec: CellSpec
    input_size: int
    hidden_size: int
    num_layers: int
    dropout: float
    seed: int
    device: torch.device | None

    def build(self, dtype: torch.dtype = torch.float64, seed: int | None = None) -> torch.nn.Module:
        torch.manual_seed(self.seed if seed is None else seed)
        model = self.spec.build(self.input_size, self.hidden_size, self.num_layers, self.dropout)
        return model.to(dtype)

    def inputs(self, batch: int, steps: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed + 1000 * batch + steps)
        return torch.randn(batch, steps, self.input_size, generator=generator).to(dtype)


def _check_builds(ctx: _Context) -> str:
    model = ctx.build()
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise CheckFailed("the module has no trainable parameters")
    return f"{type(model).__name__}, {sum(p.numel() for p in trainable)} parameters"


def _check_shapes(ctx: _Context) -> str:
    model = ctx.build(torch.float32).eval()
    sizes = [(b, t) for b in (1, 3, 8) for t in (1, 2, 13)]
    with torch.no_grad():
        for batch, steps in sizes:
            out = model(ctx.inputs(batch, steps, torch.float32))
            expected = (batch, steps, ctx.hidden_size)
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise CheckFailed(f"input (B={batch}, T={steps}) gave {got}, expected {expected}")
    return f"(B, T) in {sizes[0]}..{sizes[-1]} -> (B, T, {ctx.hidden_size})"


def _check_dtypes(ctx: _Context) -> str:
    for dtype in (torch.float32, torch.float64):
        model = ctx.build(dtype).eval()
        with torch.no_grad():
            out = model(ctx.inputs(2, 3, dtype))
        if out.dtype != dtype:
            raise CheckFailed(f"{dtype} input and parameters gave {out.dtype} output")
        if not torch.isfinite(out).all():
            raise CheckFailed(f"{dtype} output has NaN or infinite values")
    return "float32 and float64 kept"


def _check_gradients(ctx: _Context) -> str:
    model = ctx.build().train()
    x = ctx.inputs(4, 6).requires_grad_()
    out = model(x)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(ctx.seed), dtype=out.dtype)
    (out * weights).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    zero = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad and p.grad is not None and not p.grad.abs().sum() > 0
    ]
    bad = [n for n, p in model.named_parameters() if p.grad is not None and not p.grad.isfinite().all()]
    if missing or zero or bad:
        parts = [
            f"{label}: {', '.join(names)}"
            for label, names in (("no gradient", missing), ("zero gradient", zero), ("NaN/inf", bad))
            if names
        ]
        raise CheckFailed("; ".join(parts))
    if x.grad is None or not x.grad.abs().sum() > 0:
        raise CheckFailed("no gradient reaches the input")
    return f"all {sum(1 for p in model.parameters() if p.requires_grad)} parameter tensors"


def _check_causal_and_memory(ctx: _Context) -> str:
    model = ctx.build().eval()
    steps, cut = 8, 5
    x = ctx.inputs(2, steps)
    changed = x.clone()
    changed[:, cut:] += 1.0
    with torch.no_grad():
        a, b = model(x), model(changed)
    if not torch.allclose(a[:, :cut], b[:, :cut], atol=1e-10, rtol=0):
        raise CheckFailed(f"outputs before step {cut} change when inputs from step {cut} on change")
    x = x.clone().requires_grad_()
    model(x)[:, -1].sum().backward()
    assert x.grad is not None
    if not x.grad[:, 0].abs().sum() > 0:
        raise CheckFailed(f"the last output (step {steps - 1}) does not depend on the first input")
    return "no output depends on a later input; the last output depends on the first input"


def _check_batch_independence(ctx: _Context) -> str:
    model = ctx.build().eval()
    x = ctx.inputs(4, 5)
    with torch.no_grad():
        together = model(x)
        alone = torch.cat([model(x[i : i + 1]) for i in range(4)])
    if not torch.allclose(together, alone, atol=1e-9, rtol=1e-7):
        raise CheckFailed("an example's output depends on the other examples in its batch")
    return "each example's output depends on that example alone"


def _check_determinism(ctx: _Context) -> str:
    x = ctx.inputs(3, 7)
    first, second = ctx.build().train(), ctx.build().train()
    for (name, p), q in zip(first.named_parameters(), second.parameters(), strict=True):
        if not torch.equal(p, q):
            raise CheckFailed(f"two builds under seed {ctx.seed} differ in parameter {name}")
    outs = []
    for model in (first, second):
        torch.manual_seed(ctx.seed)
        outs.append(model(x))
    if not torch.equal(*outs):
        raise CheckFailed(f"two forward passes under seed {ctx.seed} differ")
    first.eval()
    with torch.no_grad():
        if not torch.equal(first(x), first(x)):
            raise CheckFailed("the same input twice gives different outputs (state kept between calls?)")
    return f"same parameters and outputs under seed {ctx.seed}; no state kept between calls"


def _check_state_dict(ctx: _Context) -> str:
    source, target = ctx.build().eval(), ctx.build(seed=ctx.seed + 1).eval()
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    buffer.seek(0)
    target.load_state_dict(torch.load(buffer, weights_only=True))
    x = ctx.inputs(2, 4)
    with torch.no_grad():
        if not torch.equal(source(x), target(x)):
            raise CheckFailed("a model loaded from another's state_dict gives different outputs")
    return "torch.save -> torch.load(weights_only=True) -> load_state_dict gives equal outputs"


def _check_device(ctx: _Context) -> str:
    device = ctx.device
    if device is None:
        if torch.cuda.is_available():
            device = torch.device("cuda")
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            device = torch.device("mps")
        else:
            raise CheckSkipped("no accelerator on this machine")
    model = ctx.build(torch.float32).eval()
    x = ctx.inputs(3, 5, torch.float32)
    with torch.no_grad():
        expected = model(x)
        moved = model.to(device)(x.to(device))
    if moved.device.type != device.type:
        raise CheckFailed(f"model moved to {device} returned its output on {moved.device}")
    if not torch.allclose(moved.cpu(), expected, atol=1e-4, rtol=1e-3):
        raise CheckFailed(
            f"outputs on {device} differ from the CPU by {(moved.cpu() - expected).abs().max():.2e}"
        )
    return f"runs on {device} and matches the CPU"


def _expect_rejected(model: torch.nn.Module, x: torch.Tensor, what: str) -> str:
    try:
        with torch.no_grad():
            out = model(x)
    except BAD_INPUT_ERRORS as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    raise CheckFailed(f"{what} of shape {tuple(x.shape)} was accepted and gave {shape}")


def _check_bad_rank(ctx: _Context) -> str:
    model = ctx.build().eval()
    _expect_rejected(model, torch.randn(5, ctx.input_size, dtype=torch.float64), "a 2-d input")
    message = _expect_rejected(
        model, torch.randn(2, 3, 5, ctx.input_size, dtype=torch.float64), "a 4-d input"
    )
    return f"2-d and 4-d inputs raise ({message})"


def _check_bad_width(ctx: _Context) -> str:
    model = ctx.build().eval()
    x = torch.randn(2, 3, ctx.input_size + 1, dtype=torch.float64)
    return _expect_rejected(model, x, f"an input with {ctx.input_size + 1} features")


CHECKS: tuple[tuple[str, Callable[[_Context], str]], ...] = (
    ("builds", _check_builds),
    ("output shape", _check_shapes),
    ("dtype kept", _check_dtypes),
    ("gradient to every parameter", _check_gradients),
    ("causal, with memory", _check_causal_and_memory),
    ("batch independence", _check_batch_independence),
    ("deterministic under a seed", _check_determinism),
    ("state_dict round trip", _check_state_dict),
    ("device move", _check_device),
    ("rejects wrong input rank", _check_bad_rank),
    ("rejects wrong input width", _check_bad_width),
)


def _as_spec(cell: str | CellSpec | Callable[..., torch.nn.Module]) -> CellSpec:
    if isinstance(cell, CellSpec):
        return cell
    if isinstance(cell, str):
        from rnnbench.core.plugin_manager import get_cell

        return get_cell(cell)
    name = getattr(cell, "__name__", type(cell).__name__)
    return CellSpec(name=name, function=cell, description="", reference="", plugin="(unregistered)")


def check_cell(
    cell: str | CellSpec | Callable[..., torch.nn.Module],
    *,
    input_size: int = 3,
    hidden_size: int = 5,
    num_layers: int = 2,
    dropout: float = 0.0,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> ConformanceReport:
    """Run every conformance check on a registered cell name, a CellSpec or a bare build function.

    The global torch RNG state is restored afterwards.
    """
    spec = _as_spec(cell)
    ctx = _Context(
        spec,
        input_size,
        hidden_size,
        num_layers,
        dropout,
        seed,
        torch.device(device) if device is not None else None,
    )
    report = ConformanceReport(cell=spec.name)
    with torch.random.fork_rng(devices=[]):
        for name, check in CHECKS:
            try:
                report.results.append(CheckResult(name, "pass", check(ctx)))
            except CheckSkipped as exc:
                report.results.append(CheckResult(name, "skip", str(exc)))
            except CheckFailed as exc:
                report.results.append(CheckResult(name, "fail", str(exc)))
            except Exception as exc:  # a crash in the plugin's code is a failed check, not a crash here
                first_line = f"{type(exc).__name__}: {exc}".splitlines()[0]
                report.results.append(CheckResult(name, "fail", f"raised {first_line}"))
    return report


def assert_cell_conforms(
    cell: str | CellSpec | Callable[..., torch.nn.Module], **options: Any
) -> ConformanceReport:
    """``check_cell`` for a test suite: raises AssertionError listing every failed check."""
    report = check_cell(cell, **options)
    if not report.passed:
        raise AssertionError(report.format())
    return report
