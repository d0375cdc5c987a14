"""Test plugin: cells that go wrong after a few training steps (divergence, a crash)."""

import torch
from torch import nn

import rnnbench

FAULT_AFTER = 3  # training-mode forward calls that behave before the fault


class Faulty(nn.Module):
    def __init__(self, fault, input_size, hidden_size, num_layers, dropout):
        super().__init__()
        self.fault = fault
        self.rnn = nn.GRU(input_size, hidden_size, num_layers, batch_first=True)
        self.calls = 0

    def forward(self, x):
        out = self.rnn(x)[0]
        if self.training:
            self.calls += 1
            if self.calls > FAULT_AFTER:
                if self.fault == "nan":
                    return out * torch.tensor(float("nan"))
                raise RuntimeError(f"simulated cell failure at call {self.calls}")
        return out


def build_nan(input_size, hidden_size, num_layers, dropout):
    return Faulty("nan", input_size, hidden_size, num_layers, dropout)


def build_crash(input_size, hidden_size, num_layers, dropout):
    return Faulty("crash", input_size, hidden_size, num_layers, dropout)


@rnnbench.hookimpl
def register_cells(register):
    register("nan-after-3", build_nan, description="Output turns NaN after 3 steps", reference="test")
    register("crash-after-3", build_crash, description="Raises after 3 steps", reference="test")
