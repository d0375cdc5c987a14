"""The built-in cells: correctness against references, and the conformance kit on good and bad cells."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rnnbench
from rnnbench.cells.peephole import PeepholeLSTM, PeepholeLSTMLayer
from rnnbench.testing import assert_cell_conforms, check_cell

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


def test_peephole_with_zero_peepholes_equals_torch_lstm():
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


def test_peephole_gates_see_the_right_cell_state():
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


def test_peephole_gradcheck_with_nonzero_peepholes():
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
