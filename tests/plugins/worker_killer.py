"""Test plugin template: cells whose worker process dies (SIGKILL) mid-training.

``kill-once`` kills its process the first time any trial trains it (a marker file records that it
happened); ``kill-always`` kills it every time. The test writes a copy with MARKER set.
"""

import os
import signal

from torch import nn

import rnnbench

MARKER = "/nonexistent/marker"  # replaced by the test
KILL_AT_CALL = 11  # training-mode forward calls before the kill: epoch 2 of 8 batches an epoch


class Killer(nn.Module):
    def __init__(self, always, input_size, hidden_size, num_layers, dropout):
        super().__init__()
        self.always = always
        self.rnn = nn.GRU(input_size, hidden_size, num_layers, batch_first=True)
        self.calls = 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls == KILL_AT_CALL and (self.always or _first_time()):
                os.kill(os.getpid(), signal.SIGKILL)
        return self.rnn(x)[0]


def _first_time():
    try:
        os.close(os.open(MARKER, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def build_once(input_size, hidden_size, num_layers, dropout):
    return Killer(False, input_size, hidden_size, num_layers, dropout)


def build_always(input_size, hidden_size, num_layers, dropout):
    return Killer(True, input_size, hidden_size, num_layers, dropout)


@rnnbench.hookimpl
def register_cells(register):
    register("kill-once", build_once, description="Its worker is SIGKILLed once", reference="test")
    register("kill-always", build_always, description="Its worker is SIGKILLed every time", reference="test")
