"""The LSTM family (Greff et al.'s vanilla LSTM and its eight Odyssey variants) on one kernel:
each variant against a plain PyTorch reference written from the paper's equations, on both paths."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import rnnbench
from rnnbench.cells.lstm_family import (
    PEEPHOLE,
    VARIANTS,
    LSTMFamily,
    LSTMFamilyLayer,
    Variant,
    VariantError,
)
from rnnbench.testing import assert_cell_conforms
from tests.conftest import require_lstm_family_kernel

ODYSSEY = list(VARIANTS)


def reference(layer: LSTMFamilyLayer, x: torch.Tensor) -> torch.Tensor:
    """Greff et al.'s equations step by step with autograd, from the layer's parameters."""
    v, hidden = layer.variant, layer.hidden_size
    w = dict(zip(v.gates, layer.weight_ih.split(hidden), strict=True))
    r = dict(zip(v.gates, layer.weight_hh.split(hidden), strict=True))
    b = dict(zip(v.gates, layer.bias.split(hidden), strict=True))
    p = dict(zip(v.peephole_rows, layer.peephole, strict=True)) if v.peephole_rows else {}
    batch, steps, _ = x.shape
    y = c = x.new_zeros(batch, hidden)
    gates_prev = {g: x.new_zeros(batch, hidden) for g in "ifo"}
    out = []
    for t in range(steps):
        x_t, y_prev, previous = x[:, t], y, gates_prev

        def pre(g: str, cell: torch.Tensor, x_t=x_t, y_prev=y_prev, previous=previous) -> torch.Tensor:
            total = x_t @ w[g].t() + y_prev @ r[g].t() + b[g]
            if g in p:
                total = total + p[g] * cell
            if v.full_gate_recurrence:
                blocks = layer.weight_gg.split(hidden)[("i", "f", "o").index(g)].split(hidden, dim=1)
                total = total + sum(previous[s] @ blocks[k].t() for k, s in enumerate("ifo"))
            return total

        z = x[:, t] @ w["z"].t() + y @ r["z"].t() + b["z"]
        z = torch.tanh(z) if v.input_activation else z
        i = torch.sigmoid(pre("i", c)) if v.input_gate else torch.ones_like(z)
        if v.coupled:
            f = 1 - i
        else:
            f = torch.sigmoid(pre("f", c)) if v.forget_gate else torch.ones_like(z)
        c = z * i + c * f
        o = torch.sigmoid(pre("o", c)) if v.output_gate else torch.ones_like(z)
        y = (torch.tanh(c) if v.output_activation else c) * o
        gates_prev = {"i": i, "f": f, "o": o}
        out.append(y)
    return torch.stack(out, dim=1)


def _layer(variant: Variant, seed: int = 0, input_size: int = 3, hidden: int = 4) -> LSTMFamilyLayer:
    torch.manual_seed(seed)
    layer = LSTMFamilyLayer(input_size, hidden, variant).double()
    with torch.no_grad():  # non-trivial peepholes and forget bias, so every term is exercised
        for parameter in layer.parameters():
            parameter.uniform_(-0.8, 0.8)
    return layer


@pytest.mark.parametrize("name", ["peephole", "vanilla", *ODYSSEY])
def test_each_variant_matches_the_papers_equations_with_gradients(name, kernel_path):
    variant = {"peephole": PEEPHOLE, "vanilla": Variant()}.get(name) or VARIANTS[name]
    layer = _layer(variant)
    x = torch.randn(5, 7, 3, dtype=torch.float64)
    target = torch.randn(5, 7, 4, dtype=torch.float64)
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours = layer(x_ours)
    ours_grads = torch.autograd.grad(((ours - target) ** 2).sum(), [x_ours, *layer.parameters()])
    ref = reference(layer, x_ref)
    ref_grads = torch.autograd.grad(((ref - target) ** 2).sum(), [x_ref, *layer.parameters()])
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    names = ["x", *(n for n, _ in layer.named_parameters())]
    for label, a, b in zip(names, ours_grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=f"{name}: gradient of {label}")


@pytest.mark.parametrize("name", ["peephole", *ODYSSEY])
def test_gradcheck_on_each_variant(name, kernel_path):
    layer = _layer(VARIANTS.get(name, PEEPHOLE), seed=2, input_size=2, hidden=3)
    names = [n for n, _ in layer.named_parameters()]
    x = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)
    values = [p.detach().clone().requires_grad_() for p in layer.parameters()]

    def run(x: torch.Tensor, *values: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(layer, dict(zip(names, values, strict=True)), (x,))

    assert torch.autograd.gradcheck(run, (x, *values))


def test_np_equals_peephole_with_zero_peepholes(kernel_path):
    vanilla = _layer(Variant(), seed=3)
    no_peepholes = LSTMFamilyLayer(3, 4, VARIANTS["np"]).double()
    with torch.no_grad():
        vanilla.peephole.zero_()
        for name in ("weight_ih", "weight_hh", "bias"):
            getattr(no_peepholes, name).copy_(getattr(vanilla, name))
    x = torch.randn(3, 9, 3, dtype=torch.float64)
    torch.testing.assert_close(no_peepholes(x), vanilla(x), rtol=1e-12, atol=1e-12)


def test_np_equals_the_peephole_cell_with_zero_peepholes(kernel_path):
    """The two gate orders: (i, f, o, z) for the variants, torch's (i, f, z, o) for ``peephole``."""
    peephole = _layer(PEEPHOLE, seed=4)
    no_peepholes = LSTMFamilyLayer(3, 4, VARIANTS["np"]).double()
    order = [PEEPHOLE.gates.index(g) for g in VARIANTS["np"].gates]
    with torch.no_grad():
        peephole.peephole.zero_()
        for name in ("weight_ih", "weight_hh", "bias"):
            blocks = getattr(peephole, name).split(4)
            getattr(no_peepholes, name).copy_(torch.cat([blocks[k] for k in order]))
    x = torch.randn(3, 9, 3, dtype=torch.float64)
    torch.testing.assert_close(no_peepholes(x), peephole(x), rtol=1e-12, atol=1e-12)


def _copy_blocks(source: LSTMFamilyLayer, target: LSTMFamilyLayer) -> None:
    """Copy each gate's rows (and peephole rows) of ``source`` into the same gate of ``target``."""
    hidden = source.hidden_size
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias"):
            theirs = dict(zip(source.variant.gates, getattr(source, name).split(hidden), strict=True))
            ours = dict(zip(target.variant.gates, getattr(target, name).split(hidden), strict=True))
            for gate, block in theirs.items():
                ours[gate].copy_(block)
        theirs = dict(zip(source.variant.peephole_rows, source.peephole, strict=True))
        for gate, row in zip(target.variant.peephole_rows, target.peephole, strict=True):
            if gate in theirs:
                row.copy_(theirs[gate])


def test_cifg_equals_vanilla_whose_forget_gate_is_one_minus_its_input_gate(kernel_path):
    """sigmoid(-a) = 1 - sigmoid(a): a vanilla LSTM whose forget-gate parameters are the input gate's
    negated computes f = 1 - i, which is CIFG; so both must give the same outputs and input gradients."""
    cifg = _layer(VARIANTS["cifg"], seed=5)
    assert cifg.variant.gates == ("i", "o", "z") and cifg.variant.peephole_rows == ("i", "o")
    # A fair start: f = 1 - sigmoid(-1) = sigmoid(1), the other cells' initial forget gate.
    fresh, other = LSTMFamilyLayer(3, 4, VARIANTS["cifg"]), LSTMFamilyLayer(3, 4, Variant())
    torch.testing.assert_close(1 - torch.sigmoid(fresh.bias[:4]), torch.sigmoid(other.bias[4:8]))
    vanilla = LSTMFamilyLayer(3, 4, Variant()).double()
    _copy_blocks(cifg, vanilla)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias"):
            blocks = dict(zip(vanilla.variant.gates, getattr(vanilla, name).split(4), strict=True))
            blocks["f"].copy_(-blocks["i"])
        vanilla.peephole[1].copy_(-vanilla.peephole[0])  # rows (i, f, o)
    x = torch.randn(3, 8, 3, dtype=torch.float64)
    x_cifg, x_vanilla = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_cifg, out_vanilla = cifg(x_cifg), vanilla(x_vanilla)
    torch.testing.assert_close(out_cifg, out_vanilla, rtol=1e-12, atol=1e-12)
    out_cifg.sum().backward()
    out_vanilla.sum().backward()
    torch.testing.assert_close(x_cifg.grad, x_vanilla.grad, rtol=1e-10, atol=1e-12)


def test_nfg_equals_vanilla_whose_forget_gate_is_pinned_to_one(kernel_path):
    """A forget gate with zero weights and bias 50 is exactly 1.0 in float64 (sigmoid(50) rounds to 1)."""
    nfg = _layer(VARIANTS["nfg"], seed=6)
    vanilla = LSTMFamilyLayer(3, 4, Variant()).double()
    with torch.no_grad():
        for parameter in vanilla.parameters():
            parameter.zero_()
        vanilla.bias[4:8].fill_(50.0)
    _copy_blocks(nfg, vanilla)
    assert torch.sigmoid(torch.tensor(50.0, dtype=torch.float64)) == 1.0
    x = torch.randn(3, 8, 3, dtype=torch.float64)
    x_nfg, x_vanilla = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_nfg, out_vanilla = nfg(x_nfg), vanilla(x_vanilla)
    torch.testing.assert_close(out_nfg, out_vanilla, rtol=1e-12, atol=1e-12)
    out_nfg.sum().backward()
    out_vanilla.sum().backward()
    torch.testing.assert_close(x_nfg.grad, x_vanilla.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ODYSSEY)
def test_each_variant_is_a_built_in_cell_that_passes_the_conformance_kit(name):
    assert name in rnnbench.cell_names()
    spec = rnnbench.get_cell(name)
    assert "Search Space Odyssey" in spec.reference and spec.description.startswith("peephole LSTM variant")
    report = assert_cell_conforms(name)
    assert [r.status for r in report.results].count("fail") == 0


def _expected_parameters(name: str, inputs: int, hidden: int) -> int:
    """Counted from the paper's equations: G gate blocks of W, R, b; one peephole vector per gate."""
    gates = {"nig": 3, "nfg": 3, "nog": 3, "cifg": 3}.get(name, 4)
    peepholes = {"np": 0, "nig": 2, "nfg": 2, "nog": 2, "cifg": 2}.get(name, 3)
    full_recurrence = 9 * hidden * hidden if name == "fgr" else 0
    return gates * hidden * (inputs + hidden + 1) + peepholes * hidden + full_recurrence


@pytest.mark.parametrize("name", ["peephole", *ODYSSEY])
def test_parameters_a_variant_does_not_use_do_not_exist(name):
    model = rnnbench.get_cell(name).build(input_size=5, hidden_size=7, num_layers=1, dropout=0.0)
    assert sum(p.numel() for p in model.parameters()) == _expected_parameters(name, 5, 7)
    has_peepholes = name != "np"
    assert hasattr(model.layers[0], "peephole") == has_peepholes
    assert hasattr(model.layers[0], "weight_gg") == (name == "fgr")


@pytest.mark.parametrize("name", ODYSSEY)
def test_forget_gate_bias_is_one_where_there_is_a_forget_gate(name):
    model = rnnbench.get_cell(name).build(input_size=3, hidden_size=4, num_layers=2, dropout=0.0)
    for layer in model.layers:
        blocks = dict(zip(layer.variant.gates, layer.bias.split(4), strict=True))
        assert ("f" in blocks) == (name not in ("nfg", "cifg"))
        if "f" in blocks:
            assert torch.equal(blocks["f"], torch.ones(4))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"coupled": True, "input_gate": False}, "coupled .* needs input_gate=True and forget_gate=True"),
        ({"full_gate_recurrence": True, "output_gate": False}, "full_gate_recurrence needs all three gates"),
        ({"full_gate_recurrence": True, "torch_order": True}, "full_gate_recurrence needs .* default order"),
        ({"peepholes": "yes"}, r"Variant.peepholes must be True or False, got 'yes'"),
    ],
)
def test_a_variant_that_is_no_cell_is_refused(kwargs, message):
    with pytest.raises(VariantError, match=message):
        Variant(**kwargs)


def test_a_combination_outside_the_built_ins_runs_on_the_kernel_and_matches_the_reference(kernel_path):
    """A plugin's ninth variant (here CIFG without peepholes, as in the README) takes the kernel's
    run-time switches: the same results as the paper's equations."""
    layer = _layer(Variant(coupled=True, peepholes=False), seed=7)
    x = torch.randn(4, 6, 3, dtype=torch.float64, requires_grad=True)
    ours = layer(x)
    torch.testing.assert_close(ours, reference(layer, x), rtol=1e-12, atol=1e-12)
    model = LSTMFamily(3, 4, 2, 0.0, Variant(coupled=True, peepholes=False), name="cifg-np")
    assert model(torch.randn(2, 5, 3)).shape == (2, 5, 4)


@pytest.mark.parametrize("name", ["peephole", "vanilla", "cifg", "fgr"])
def test_float32_on_two_threads_matches_the_papers_equations(name, kernel_path):
    """float32 is where the kernel's steps run this host's GEMM engine (oneDNN's brgemm, or weights packed once
    per pass for MKL's packed GEMM), here on two threads, and sum the peephole gradients as they go: against the
    equations in float64 (tests/test_gemm_engine.py compares the two engines)."""
    variant = {"peephole": PEEPHOLE, "vanilla": Variant()}.get(name) or VARIANTS[name]
    layer = _layer(variant, seed=5, input_size=8, hidden=64)
    with torch.no_grad():
        layer.weight_hh.mul_(0.1)  # keep the gates off saturation, so float32's rounding stays small
        if variant.full_gate_recurrence:
            layer.weight_gg.mul_(0.1)
    x = torch.randn(300, 6, 8, dtype=torch.float64)
    target = torch.randn(300, 6, 64, dtype=torch.float64)
    ref = reference(layer, x)
    ref_grads = torch.autograd.grad(((ref - target) ** 2).sum(), list(layer.parameters()))
    single = layer.float()
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        ours = single(x.float())
        ours_grads = torch.autograd.grad(((ours - target.float()) ** 2).sum(), list(single.parameters()))
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(ours.double(), ref, rtol=1e-4, atol=1e-5)
    names = [n for n, _ in single.named_parameters()]
    for label, a, b in zip(names, ours_grads, ref_grads, strict=True):
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-3, msg=f"{name}: gradient of {label}")


def test_the_sweep_group_odyssey_names_the_nine_cells():
    from rnnbench.sweep.settings import parse_cells

    assert parse_cells("odyssey", "f") == ["peephole", *ODYSSEY]
    assert set(parse_cells("odyssey", "f")) <= set(rnnbench.cell_names())


def test_every_built_in_variant_has_its_own_compiled_instantiation():
    """The kernel compiles the pointwise loops once per built-in variant, keyed by its switch bits; a
    variant missing from that list silently takes the slower run-time switches (CIFG did, at 1.3-1.5x
    nn.LSTM's time), so the kernel's cases must be exactly the variants' bits."""
    import re

    from rnnbench.cells.lstm_family import KERNEL_SOURCE

    cases = {int(n) for n in re.findall(r"case (\d+): CALL\(\1\)", KERNEL_SOURCE.read_text())}
    expected = {v.flags & 255 for v in [PEEPHOLE, *VARIANTS.values()]}
    assert cases == expected, f"missing {sorted(expected - cases)}, extra {sorted(cases - expected)}"


def test_the_kernel_says_which_vector_copy_runs_on_this_cpu():
    from rnnbench.cells.gru import KERNEL as GRU_KERNEL
    from rnnbench.cells.lstm_family import KERNEL

    require_lstm_family_kernel()
    clone = KERNEL.vector_clone()
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpuinfo.read_text() if cpuinfo.exists() else ""
    if "avx512f" in flags and "avx512bw" in flags:
        assert clone.startswith("x86-64-v4")
    elif " avx2 " in flags and " fma " in flags:
        assert clone.startswith("x86-64-v3")
    else:
        assert clone
    if GRU_KERNEL.available():
        assert GRU_KERNEL.vector_clone() == clone


def test_the_kernel_says_whether_its_steps_use_packed_weights():
    """torch's x86 wheels link MKL, whose packed GEMM the kernels find at load time; elsewhere they run
    the plain GEMM and say so."""
    from rnnbench.cells.gru import KERNEL as GRU_KERNEL
    from rnnbench.cells.lstm_family import KERNEL

    require_lstm_family_kernel()
    if not torch.backends.mkl.is_available():
        pytest.skip("this torch links no MKL: the kernels' steps run the plain GEMM")
    assert KERNEL.load().packed_gemm() is True
    if GRU_KERNEL.available():
        assert GRU_KERNEL.load().packed_gemm() is True
