"""Test plugin: cells whose trials last a set time on any machine, for tests that act while trials run.

A test that signals or kills a sweep mid-run needs trials still running when it acts. Trials sized by
work (epochs of examples) last seconds on a fast idle host and a minute on a loaded one, so they were
sized for the fast host and cost the slow one most. These cells train a small GRU or tanh RNN and sleep
``PACE_S`` seconds at the start of every epoch after the first: a trial of E epochs lasts at least
(E - 1) x ``PACE_S`` seconds, and the sleep leaves the CPUs to the rest of the test run.
"""

import time

from torch import nn

import rnnbench

PACE_S = 2.0  # seconds of sleep at the start of each epoch after the first


class Paced(nn.Module):
    def __init__(self, kind, input_size, hidden_size, num_layers, dropout):
        super().__init__()
        self.rnn = kind(input_size, hidden_size, num_layers, batch_first=True, dropout=dropout)
        self.evaluated = False  # an eval-mode pass ran since the last training step: an epoch ended

    def forward(self, x):
        if not self.training:
            self.evaluated = True
        elif self.evaluated:  # the first training step after validation: a new epoch starts
            self.evaluated = False
            time.sleep(PACE_S)
        return self.rnn(x)[0]


def build_gru(input_size, hidden_size, num_layers, dropout):
    return Paced(nn.GRU, input_size, hidden_size, num_layers, dropout)


def build_rnn(input_size, hidden_size, num_layers, dropout):
    return Paced(nn.RNN, input_size, hidden_size, num_layers, dropout)


@rnnbench.hookimpl
def register_cells(register):
    waits = f"each epoch after the first waits {PACE_S:g} s"
    register("paced-gru", build_gru, description=f"GRU; {waits}", reference="test")
    register("paced-rnn", build_rnn, description=f"tanh RNN; {waits}", reference="test")
