"""The built-in cells: correctness against references, and the conformance kit on good and bad cells."""

from __future__ import annotations

import re
import warnings

import pytest
import torch
from torch import nn

import rnnbench
from rnnbench.cells import gru as gru_module
from rnnbench.cells import peephole as peephole_module
from rnnbench.cells.fused import FusedRecurrent
from rnnbench.cells.gru import FastGRU, GruKernelChoiceError, GruKernelError
from rnnbench.cells.kernels import missing_tools
from rnnbench.cells.peephole import (
    KERNEL_DIR_ENV,
    KERNEL_ENV,
    PeepholeKernelChoiceError,
    PeepholeKernelError,
    PeepholeLSTM,
    PeepholeLSTMLayer,
)
from rnnbench.testing import assert_cell_conforms, check_cell
from tests.conftest import require_lstm_family_kernel

BUILTINS = ["lstm", "gru", "rnn", "peephole"]


@pytest.mark.parametrize("cell", BUILTINS)
def test_builtin_cell_passes_conformance_kit(cell):
    report = assert_cell_conforms(cell)
    assert [r.status for r in report.results].count("fail") == 0
    assert {r.check for r in report.results if r.status == "pass"} >= {
        "output shape",
        "gradient to every parameter",
        "deterministic under a seed",
        "state_dict round trip",
        "rejects wrong input rank",
    }


@pytest.mark.parametrize("cell", BUILTINS)
@pytest.mark.parametrize(("layers", "dropout"), [(1, 0.0), (3, 0.3)])
def test_builtin_cell_maps_batch_first_sequences(cell, layers, dropout):
    model = rnnbench.get_cell(cell).build(input_size=6, hidden_size=9, num_layers=layers, dropout=dropout)
    assert model(torch.randn(4, 11, 6)).shape == (4, 11, 9)


def _lstm_and_peephole(input_size=3, hidden_size=4, num_layers=2):
    torch.manual_seed(0)
    lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True).double()
    peephole = PeepholeLSTM(input_size, hidden_size, num_layers).double()
    with torch.no_grad():
        for k, layer in enumerate(peephole.layers):
            layer.weight_ih.copy_(getattr(lstm, f"weight_ih_l{k}"))
            layer.weight_hh.copy_(getattr(lstm, f"weight_hh_l{k}"))
            layer.bias.copy_(getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}"))
            layer.peephole.zero_()
    return lstm, peephole


def test_peephole_with_zero_peepholes_equals_torch_lstm(kernel_path):
    lstm, peephole = _lstm_and_peephole()
    x = torch.randn(5, 17, 3, dtype=torch.float64)
    x_lstm, x_peep = x.clone().requires_grad_(), x.clone().requires_grad_()
    target = torch.randn(5, 17, 4, dtype=torch.float64)
    out_lstm, _ = lstm(x_lstm)
    out_peep = peephole(x_peep)
    torch.testing.assert_close(out_peep, out_lstm, rtol=1e-12, atol=1e-12)
    ((out_lstm - target) ** 2).sum().backward()
    ((out_peep - target) ** 2).sum().backward()
    torch.testing.assert_close(x_peep.grad, x_lstm.grad, rtol=1e-10, atol=1e-12)
    for k, layer in enumerate(peephole.layers):
        for ours, theirs in (
            ("weight_ih", "weight_ih_l"),
            ("weight_hh", "weight_hh_l"),
            ("bias", "bias_ih_l"),
        ):
            torch.testing.assert_close(
                getattr(layer, ours).grad, getattr(lstm, f"{theirs}{k}").grad, rtol=1e-10, atol=1e-12
            )
        assert layer.peephole.grad.abs().sum() > 0, "peephole weights must get a gradient even at zero"


def test_peepholes_change_the_function():
    lstm, peephole = _lstm_and_peephole(num_layers=1)
    with torch.no_grad():
        peephole.layers[0].peephole.fill_(0.5)
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    assert not torch.allclose(peephole(x), lstm(x)[0])


def test_peephole_gates_see_the_right_cell_state(kernel_path):
    """Check one step by hand: input and forget gates see c[t-1], the output gate sees c[t]."""
    torch.manual_seed(1)
    layer = PeepholeLSTMLayer(2, 3).double()
    x = torch.randn(1, 2, 2, dtype=torch.float64)
    h, c = torch.zeros(1, 3, dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64)
    p_i, p_f, p_o = layer.peephole
    expected = []
    for t in range(2):
        gates = x[:, t] @ layer.weight_ih.T + h @ layer.weight_hh.T + layer.bias
        i, f, g, o = gates.chunk(4, dim=1)
        i, f = torch.sigmoid(i + p_i * c), torch.sigmoid(f + p_f * c)
        c = f * c + i * torch.tanh(g)
        h = torch.sigmoid(o + p_o * c) * torch.tanh(c)
        expected.append(h)
    torch.testing.assert_close(layer(x), torch.stack(expected, 1), rtol=1e-12, atol=1e-12)


def test_peephole_gradcheck_with_nonzero_peepholes(kernel_path):
    torch.manual_seed(2)
    layer = PeepholeLSTMLayer(2, 3).double()
    with torch.no_grad():
        layer.peephole.uniform_(-1.0, 1.0)
    x = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)
    params = [layer.weight_ih, layer.weight_hh, layer.bias, layer.peephole]

    def f(x, w_ih, w_hh, b, p):
        return torch.func.functional_call(
            layer, {"weight_ih": w_ih, "weight_hh": w_hh, "bias": b, "peephole": p}, (x,)
        )

    assert layer.peephole.abs().min() > 0
    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-6)


def _grads_of(model, x, kernel, monkeypatch, seed=3, env=KERNEL_ENV):
    """Outputs, parameter gradients and input gradient of a weighted sum of the outputs on one path."""
    monkeypatch.setenv(env, kernel)
    model.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    torch.manual_seed(seed)  # the same dropout masks on both paths
    out = model(x)
    out = out[0] if isinstance(out, tuple) else out
    weights = torch.linspace(-1.0, 1.0, out.numel(), dtype=out.dtype).view_as(out)
    (out * weights).sum().backward()
    return [out.detach(), x.grad, *(p.grad for p in model.parameters())]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_peephole_compiled_and_python_paths_agree(dtype, monkeypatch):
    require_lstm_family_kernel()
    torch.manual_seed(4)
    model = PeepholeLSTM(5, 7, num_layers=3, dropout=0.3).to(dtype).train()
    with torch.no_grad():
        for layer in model.layers:
            layer.peephole.uniform_(-1.0, 1.0)
    x = torch.randn(9, 4, 5, dtype=dtype).transpose(0, 1)  # batch first and not contiguous
    compiled = _grads_of(model, x, "cpp", monkeypatch)
    python = _grads_of(model, x, "python", monkeypatch)
    # float32: the kernel's exp/tanh are within a few ulp of PyTorch's, not bit-identical
    tolerance = {"rtol": 1e-12, "atol": 1e-13} if dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-5}
    assert compiled[0].shape == (4, 9, 7)
    for ours, theirs in zip(compiled, python, strict=True):
        torch.testing.assert_close(ours, theirs, **tolerance)


def test_peephole_inference_matches_training_forward(kernel_path):
    torch.manual_seed(5)
    model = PeepholeLSTM(3, 6, num_layers=2).double().eval()
    x = torch.randn(2, 8, 3, dtype=torch.float64)
    with torch.no_grad():
        no_grad = model(x)
    with torch.inference_mode():
        inference = model(x)
    with_graph = model(x)  # input without requires_grad, parameters with
    assert not no_grad.requires_grad and with_graph.requires_grad
    torch.testing.assert_close(no_grad, with_graph.detach(), rtol=0, atol=0)
    torch.testing.assert_close(inference, no_grad, rtol=0, atol=0)
    with_graph.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model(torch.randn(2, 1, 3, dtype=torch.float64)).shape == (2, 1, 6)


def test_peephole_runs_in_float32_under_autocast(kernel_path):
    torch.manual_seed(7)
    model = PeepholeLSTM(3, 4, num_layers=2)
    x = torch.randn(2, 5, 3)
    expected = model(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        same = model(x)
        low = model(x.bfloat16())  # e.g. the output of an autocast Linear
        (same.sum() + low.float().sum()).backward()
    torch.testing.assert_close(same, expected, rtol=0, atol=0)
    assert low.dtype == torch.float32
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())


def test_peephole_kernel_env_var_rejects_unknown_values(monkeypatch):
    monkeypatch.setenv(KERNEL_ENV, "fast")
    model = PeepholeLSTM(3, 4)
    with pytest.raises(
        PeepholeKernelChoiceError, match=r"RNNBENCH_PEEPHOLE_KERNEL='fast'.*auto, cpp, python"
    ):
        model(torch.randn(2, 5, 3))


def test_peephole_forced_kernel_rejects_tensors_it_cannot_take(monkeypatch):
    monkeypatch.setenv(KERNEL_ENV, "cpp")
    model = PeepholeLSTM(3, 4).to(torch.bfloat16)
    with pytest.raises(PeepholeKernelError, match="CPU float32 or float64"):
        model(torch.randn(2, 5, 3, dtype=torch.bfloat16))
    monkeypatch.setenv(KERNEL_ENV, "auto")  # auto takes the PyTorch path for them instead
    assert model(torch.randn(2, 5, 3, dtype=torch.bfloat16)).dtype == torch.bfloat16


def test_peephole_falls_back_with_one_warning_when_the_kernel_cannot_be_built(tmp_path, monkeypatch):
    # A fresh process state and cache directory, and a compiler that does not exist.
    monkeypatch.setattr(peephole_module.KERNEL, "_ops", None)
    monkeypatch.setattr(peephole_module.KERNEL, "_failure", None)
    monkeypatch.setattr(peephole_module.KERNEL, "_warned_fallback", False)
    monkeypatch.setenv(KERNEL_DIR_ENV, str(tmp_path))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv(KERNEL_ENV, "auto")
    assert peephole_module.kernel_build_dir().parent == tmp_path
    torch.manual_seed(6)
    model = PeepholeLSTM(3, 4).double()
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match=r"no C\+\+ compiler.*falls back to the slower pure-PyTorch path"):
        fallback = model(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per process, not at every forward
        model(x).sum().backward()
    monkeypatch.setenv(KERNEL_ENV, "python")
    torch.testing.assert_close(fallback, model(x), rtol=0, atol=0)
    monkeypatch.setenv(KERNEL_ENV, "cpp")  # forcing the kernel turns the same problem into an error
    with pytest.raises(PeepholeKernelError, match=r"no C\+\+ compiler"):
        model(x)


@pytest.mark.parametrize("cell", ["lstm", "peephole"])
def test_lstm_family_forget_bias_is_one(cell):
    model = rnnbench.get_cell(cell).build(input_size=3, hidden_size=4, num_layers=2, dropout=0.0)
    h = 4
    if cell == "lstm":
        for k in range(2):
            total = getattr(model.rnn, f"bias_ih_l{k}") + getattr(model.rnn, f"bias_hh_l{k}")
            assert torch.equal(total[h : 2 * h], torch.ones(h))
    else:
        for layer in model.layers:
            assert torch.equal(layer.bias[h : 2 * h], torch.ones(h))
    assert "forget-gate bias initialised to 1" in rnnbench.get_cell(cell).description


# --- gru: the custom paths against torch.nn.GRU -------------------------------------------------


def _require_gru_kernel() -> None:
    """Skip when the GRU kernel is neither cached nor buildable here; a failing build is a real failure."""
    if not gru_module.KERNEL.available():
        pytest.skip(f"the compiled gru kernel cannot be built here: {missing_tools()}")
    gru_module.load_kernel()


def test_a_built_kernel_loads_without_torchs_build_tools():
    """Loading a kernel already built imports neither torch.utils.cpp_extension nor setuptools (0.2-0.3 s in
    every trial worker of a kernel's cell); the build root and library suffix restated from torch are torch's
    own. (setuptools' distutils shim imports it for anything importing distutils: a dependency doing that
    would fail this too.)"""
    import subprocess
    import sys

    from torch.utils import cpp_extension

    from rnnbench.cells import kernels

    assert kernels.default_build_root() == cpp_extension.get_default_build_root()
    assert kernels.LIB_EXT == cpp_extension.LIB_EXT
    _require_gru_kernel()
    code = (
        "import sys, torch\n"
        "from rnnbench.cells import gru\n"
        "gru.load_kernel()\n"
        "print(sorted(m for m in ('setuptools', 'torch.utils.cpp_extension') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


@pytest.fixture(params=["cpp", "python"])
def gru_path(request, monkeypatch):
    """Run the test once on the compiled CPU kernel and once on its pure-PyTorch twin."""
    if request.param == "cpp":
        _require_gru_kernel()
    monkeypatch.setenv(gru_module.KERNEL_ENV, request.param)
    return request.param


def _torch_gru_and_ours(input_size=3, hidden_size=5, num_layers=3, dropout=0.0, batch_first=True):
    torch.manual_seed(0)
    reference = nn.GRU(input_size, hidden_size, num_layers, batch_first=batch_first, dropout=dropout).double()
    ours = FastGRU(input_size, hidden_size, num_layers, batch_first=batch_first, dropout=dropout).double()
    ours.load_state_dict(reference.state_dict())
    return reference, ours


def _custom_path_ran(out: torch.Tensor) -> bool:
    """Whether the autograd graph behind ``out`` holds the custom GRU Function."""
    seen, todo = set(), [out.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if type(node).__name__ == "_GRUFunctionBackward":
            return True
        todo.extend(next_node for next_node, _ in node.next_functions)
    return False


@pytest.mark.parametrize("batch_first", [True, False])
def test_gru_custom_paths_equal_torch_gru(gru_path, batch_first):
    reference, ours = _torch_gru_and_ours(batch_first=batch_first)
    shape = (5, 17, 3) if batch_first else (17, 5, 3)
    x = torch.randn(*shape, dtype=torch.float64)
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_ref, h_ref = reference(x_ref)
    out_ours, h_ours = ours(x_ours)
    assert _custom_path_ran(out_ours)
    torch.testing.assert_close(out_ours, out_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h_ours, h_ref, rtol=1e-12, atol=1e-12)
    weights = torch.randn_like(out_ref)
    ((out_ref * weights).sum() + h_ref.sum()).backward()
    ((out_ours * weights).sum() + h_ours.sum()).backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad, rtol=1e-10, atol=1e-12)
    for (name, theirs), ours_param in zip(reference.named_parameters(), ours.parameters(), strict=True):
        torch.testing.assert_close(ours_param.grad, theirs.grad, rtol=1e-10, atol=1e-12, msg=name)


def test_gru_batch_of_one_leaves_the_parameters_alone(gru_path):
    """With one row, a buffer made from b_hh by expand().contiguous() would be b_hh itself."""
    reference, ours = _torch_gru_and_ours(num_layers=2)
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    x = torch.randn(1, 6, 3, dtype=torch.float64)
    out = ours(x)[0]
    out.sum().backward()
    torch.testing.assert_close(out, reference(x)[0], rtol=1e-12, atol=1e-12)
    for name, value in ours.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_gru_custom_paths_draw_torch_grus_dropout_masks(gru_path):
    reference, ours = _torch_gru_and_ours(dropout=0.4)
    x = torch.randn(4, 9, 3, dtype=torch.float64)
    torch.manual_seed(1)
    expected = reference(x)[0]
    torch.manual_seed(1)
    torch.testing.assert_close(ours(x)[0], expected, rtol=1e-12, atol=1e-12)


def test_gru_gradcheck(gru_path):
    torch.manual_seed(2)
    model = FastGRU(2, 3, num_layers=2, batch_first=True).double()
    names = [name for name, _ in model.named_parameters()]
    x = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)

    def f(x, *params):
        return torch.func.functional_call(model, dict(zip(names, params, strict=True)), (x,))[0]

    assert torch.autograd.gradcheck(f, (x, *model.parameters()), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gru_compiled_and_python_paths_agree(dtype, monkeypatch):
    _require_gru_kernel()
    torch.manual_seed(4)
    model = FastGRU(5, 7, num_layers=3, dropout=0.3, batch_first=True).to(dtype).train()
    x = torch.randn(9, 4, 5, dtype=dtype).transpose(0, 1)  # batch first and not contiguous
    compiled = _grads_of(model, x, "cpp", monkeypatch, env=gru_module.KERNEL_ENV)
    python = _grads_of(model, x, "python", monkeypatch, env=gru_module.KERNEL_ENV)
    # float32: the kernel's exp/tanh are within a few ulp of PyTorch's, not bit-identical
    tolerance = {"rtol": 1e-12, "atol": 1e-13} if dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-5}
    assert compiled[0].shape == (4, 9, 7)
    for ours, theirs in zip(compiled, python, strict=True):
        torch.testing.assert_close(ours, theirs, **tolerance)


def test_gru_kernels_backward_refuses_tensors_of_other_shapes_than_its_forwards():
    """The steps read the saved tensors through raw pointers: a mismatch is an error, not a read past them."""
    _require_gru_kernel()
    ops = gru_module.load_kernel()
    steps, batch, inputs, hidden = 4, 3, 2, 5
    x = torch.randn(steps, batch, inputs)
    w_ih, w_hh = torch.randn(3 * hidden, inputs), torch.randn(3 * hidden, hidden)
    b_ih, b_hh = torch.zeros(3 * hidden), torch.zeros(3 * hidden)
    h, act, hn = ops.forward(x, w_ih, w_hh, b_ih, b_hh)
    grads = ops.backward(torch.ones_like(h), x, w_ih, w_hh, h, act, hn, False)
    assert grads[2].shape == w_hh.shape
    with pytest.raises(RuntimeError, match="backward tensors do not have the forward pass's shapes"):
        ops.backward(torch.ones(steps, batch + 1, hidden), x, w_ih, w_hh, h, act, hn, False)
    with pytest.raises(RuntimeError, match="backward tensors do not have the forward pass's shapes"):
        ops.backward(torch.ones_like(h), x, w_ih, w_hh, h, act[:, :, :hidden].contiguous(), hn, False)


def test_gru_cell_state_dict_round_trips_with_plain_torch_gru():
    cell = rnnbench.get_cell("gru").build(input_size=3, hidden_size=4, num_layers=2, dropout=0.0).double()
    before = FusedRecurrent("gru", 3, 4, num_layers=2)
    assert list(cell.state_dict()) == list(before.state_dict())
    assert sum(p.numel() for p in cell.parameters()) == sum(p.numel() for p in before.parameters())
    assert isinstance(cell.rnn, nn.GRU)
    plain = nn.GRU(3, 4, 2, batch_first=True).double()
    plain.load_state_dict({k.removeprefix("rnn."): v for k, v in cell.state_dict().items()})
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    torch.testing.assert_close(cell(x), plain(x)[0], rtol=1e-12, atol=1e-12)
    torch.manual_seed(8)
    other = nn.GRU(3, 4, 2, batch_first=True).double()
    cell.load_state_dict({f"rnn.{k}": v for k, v in other.state_dict().items()})
    torch.testing.assert_close(cell(x), other(x)[0], rtol=1e-12, atol=1e-12)


def test_gru_auto_takes_the_kernel_on_cpu_and_torch_elsewhere(monkeypatch):
    _require_gru_kernel()
    monkeypatch.setenv(gru_module.KERNEL_ENV, "auto")
    reference, ours = _torch_gru_and_ours(num_layers=2)
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    assert _custom_path_ran(ours(x)[0]) and _custom_path_ran(ours.float()(x.float())[0])
    h0 = torch.zeros(2, 2, 5)
    assert not _custom_path_ran(ours(x.float(), h0)[0])  # an initial state: nn.GRU's forward
    ours.double()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = ours(x)[0]
        expected = reference(x)[0]
    assert not _custom_path_ran(out)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    monkeypatch.setenv(gru_module.KERNEL_ENV, "torch")
    out = ours(x)[0]
    assert not _custom_path_ran(out)
    torch.testing.assert_close(out, reference(x)[0], rtol=0, atol=0)


def test_gru_forced_path_runs_in_float32_under_autocast(gru_path):
    torch.manual_seed(7)
    model = FastGRU(3, 4, num_layers=2, batch_first=True)
    x = torch.randn(2, 5, 3)
    expected = model(x)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        same = model(x)[0]
        low = model(x.bfloat16())[0]
        (same.sum() + low.float().sum()).backward()
    torch.testing.assert_close(same, expected, rtol=0, atol=0)
    assert low.dtype == torch.float32
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())


def test_gru_kernel_env_var_rejects_unknown_values(monkeypatch):
    monkeypatch.setenv(gru_module.KERNEL_ENV, "fast")
    model = rnnbench.get_cell("gru").build(input_size=3, hidden_size=4, num_layers=1, dropout=0.0)
    with pytest.raises(GruKernelChoiceError, match=r"RNNBENCH_GRU_KERNEL='fast'.*auto, cpp, python, torch"):
        model(torch.randn(2, 5, 3))


def test_gru_forced_paths_reject_what_they_cannot_take(monkeypatch):
    monkeypatch.setenv(gru_module.KERNEL_ENV, "cpp")
    model = FastGRU(3, 4, batch_first=True).to(torch.bfloat16)
    with pytest.raises(GruKernelError, match="CPU float32 or float64"):
        model(torch.randn(2, 5, 3, dtype=torch.bfloat16))
    monkeypatch.setenv(gru_module.KERNEL_ENV, "auto")  # auto takes nn.GRU's forward for them instead
    assert model(torch.randn(2, 5, 3, dtype=torch.bfloat16))[0].dtype == torch.bfloat16
    model = FastGRU(3, 4, batch_first=True)
    for choice in ("cpp", "python"):
        monkeypatch.setenv(gru_module.KERNEL_ENV, choice)
        with pytest.raises(GruKernelError, match=rf"RNNBENCH_GRU_KERNEL={choice}.*an initial hidden state"):
            model(torch.randn(2, 5, 3), torch.zeros(1, 2, 4))


def test_gru_falls_back_to_torch_with_one_warning_when_the_kernel_cannot_be_built(tmp_path, monkeypatch):
    # A fresh process state and cache directory, and a compiler that does not exist.
    monkeypatch.setattr(gru_module.KERNEL, "_ops", None)
    monkeypatch.setattr(gru_module.KERNEL, "_failure", None)
    monkeypatch.setattr(gru_module.KERNEL, "_warned_fallback", False)
    monkeypatch.setenv(KERNEL_DIR_ENV, str(tmp_path))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv(gru_module.KERNEL_ENV, "auto")
    assert gru_module.KERNEL.build_dir().parent == tmp_path
    reference, ours = _torch_gru_and_ours(num_layers=2)
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match=r"no C\+\+ compiler.*falls back to torch.nn.GRU's own forward"):
        fallback = ours(x)[0]
    assert not _custom_path_ran(fallback)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per process, not at every forward
        ours(x)[0].sum().backward()
    torch.testing.assert_close(fallback, reference(x)[0], rtol=0, atol=0)
    monkeypatch.setenv(
        gru_module.KERNEL_ENV, "cpp"
    )  # forcing the kernel turns the same problem into an error
    with pytest.raises(GruKernelError, match=r"no C\+\+ compiler"):
        ours(x)


def test_gru_inference_matches_training_forward(gru_path):
    torch.manual_seed(5)
    model = rnnbench.get_cell("gru").build(input_size=3, hidden_size=6, num_layers=2, dropout=0.0)
    model = model.double().eval()
    x = torch.randn(2, 8, 3, dtype=torch.float64)
    with torch.no_grad():
        no_grad = model(x)
    with torch.inference_mode():
        inference = model(x)
    with_graph = model(x)
    torch.testing.assert_close(no_grad, with_graph.detach(), rtol=0, atol=0)
    torch.testing.assert_close(inference, no_grad, rtol=0, atol=0)
    assert model(torch.randn(2, 1, 3, dtype=torch.float64)).shape == (2, 1, 6)


def test_gru_conforms_on_each_custom_path(gru_path):
    assert_cell_conforms("gru")


# --- the conformance kit catches broken cells ----------------------------------------------------


class _Base(nn.Module):
    def __init__(self, input_size, hidden_size, num_layers, dropout):
        super().__init__()
        self.rnn = nn.GRU(input_size, hidden_size, batch_first=True)

    def forward(self, x):
        if x.dim() != 3:
            raise ValueError("need 3-d input")
        return self.rnn(x)[0]


class WrongShape(_Base):
    def forward(self, x):
        return super().forward(x)[:, -1]


class UnusedParameter(_Base):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.unused = nn.Parameter(torch.zeros(3))


class Bidirectional(_Base):
    def forward(self, x):
        return super().forward(x.flip(1)).flip(1)


class AcceptsUnbatched(_Base):
    def forward(self, x):
        return self.rnn(x)[0]


class CarriesState(_Base):
    """Keeps its last hidden state between calls: a classic stateful-RNN bug in a benchmark."""

    def forward(self, x):
        h0 = getattr(self, "h", None)
        h0 = h0 if h0 is not None and h0.shape[1] == x.shape[0] else None
        out, self.h = self.rnn(x, h0)
        self.h = self.h.detach()
        return out


class KeepsFloat32(_Base):
    def forward(self, x):
        return super().forward(x).float()


class MixesBatch(_Base):
    def forward(self, x):
        out = super().forward(x)
        return out + out.mean(0, keepdim=True)


@pytest.mark.parametrize(
    ("cell", "failing_check", "reason"),
    [
        (WrongShape, "output shape", "expected"),
        (UnusedParameter, "gradient to every parameter", "no gradient: unused"),
        (Bidirectional, "causal, with memory", "outputs before step 5 change"),
        (AcceptsUnbatched, "rejects wrong input rank", "a 2-d input of shape (5, 3) was accepted"),
        (CarriesState, "deterministic under a seed", "state kept between calls"),
        (KeepsFloat32, "dtype kept", "torch.float64 input and parameters gave torch.float32"),
        (MixesBatch, "batch independence", "depends on the other examples"),
    ],
)
def test_conformance_kit_reports_broken_cells(cell, failing_check, reason):
    report = check_cell(cell)
    failed = {r.check: r.detail for r in report.failures}
    assert not report.passed
    assert failing_check in failed, report.format()
    assert reason in failed[failing_check]
    with pytest.raises(AssertionError, match=failing_check):
        assert_cell_conforms(cell)


def test_conformance_kit_turns_a_crash_into_a_failed_check():
    def explodes(input_size, hidden_size, num_layers, dropout):
        raise RuntimeError("out of cheese")

    report = check_cell(explodes)
    assert not report.passed
    assert all(r.detail == "raised RuntimeError: out of cheese" for r in report.failures)


def test_conformance_kit_restores_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check_cell("gru")
    assert torch.equal(torch.rand(3), expected)


def test_prebuild_builds_the_named_kernels_or_says_why_not(tmp_path, monkeypatch, capsys):
    """``python -m rnnbench.cells.prebuild`` (run by scripts/bootstrap beside the install): the kernels
    ready, or exit 1 naming the kernel and the reason, or exit 2 naming an unknown kernel and the choices."""
    from rnnbench.cells import prebuild

    assert prebuild.main(["lstm_family", "nope"]) == 2
    assert "unknown kernel 'nope'; choose from: lstm_family, gru" in capsys.readouterr().err
    if missing_tools() is None:  # the kernels the suite uses: built, or now built into the usual cache
        assert prebuild.main([]) == 0
        out = capsys.readouterr().out
        assert "kernel lstm_family: ready in" in out and "kernel gru: ready in" in out
    # A fresh process state and cache directory, and a compiler that does not exist.
    monkeypatch.setattr(gru_module.KERNEL, "_ops", None)
    monkeypatch.setattr(gru_module.KERNEL, "_failure", None)
    monkeypatch.setenv(KERNEL_DIR_ENV, str(tmp_path))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    assert prebuild.main(["gru"]) == 1
    assert re.search(r"kernel gru: not built: .*no C\+\+ compiler", capsys.readouterr().err)
