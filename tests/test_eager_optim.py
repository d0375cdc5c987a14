"""torch.optim's optimizers without TorchDynamo's import: the same updates, and no import."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# In a fresh process: whether Dynamo is imported is the point, and this pytest process may have
# imported it already (then eager() rightly returns torch's own classes).
SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from rnnbench.training.eager_optim import eager

    def run(cls, kwargs, state=None):
        torch.manual_seed(0)
        model = torch.nn.LSTM(3, 5)
        optimizer = cls(model.parameters(), **kwargs)
        if state is not None:
            optimizer.load_state_dict(state)
        for step in range(6):
            optimizer.zero_grad()
            output, _ = model(torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(step)))
            output.pow(2).sum().backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            optimizer.step()
        return [p.detach().clone() for p in model.parameters()], optimizer.state_dict()

    cases = [
        (torch.optim.Adam, dict(lr=0.01, weight_decay=0.01)),
        (torch.optim.Adam, dict(lr=0.01, foreach=False)),
        (torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
        (torch.optim.SGD, dict(lr=0.1, weight_decay=0.1, foreach=True)),
        (torch.optim.RMSprop, dict(lr=0.01, momentum=0.5)),
    ]
    # Every eager run first: torch's own classes import Dynamo on their first step.
    # Once the marking is done, a plain Adam may be built without Dynamo, and torch then wraps Adam.step
    # in its profiling hook too: eager(Adam) must still reach torch's own step beneath both wrappers.
    eager(torch.optim.SGD)
    torch.optim.Adam(torch.nn.Linear(2, 2).parameters())
    assert getattr(torch.optim.Adam.step, "hooked", False) and "torch._dynamo" not in sys.modules
    fast = {}
    for cls, kwargs in cases:
        assert eager(cls) is not cls and issubclass(eager(cls), cls), cls
        fast[cls, str(kwargs)] = run(eager(cls), kwargs)
    assert "torch._dynamo" not in sys.modules, "an eager optimizer imported Dynamo"
    import pickle
    model = torch.nn.GRU(2, 3)
    optimizer = eager(torch.optim.Adam)(model.parameters(), lr=0.1)
    model(torch.ones(2, 1, 2))[0].sum().backward()
    optimizer.step()
    again = pickle.loads(pickle.dumps(optimizer))  # by its name, EagerAdam, in rnnbench.training.eager_optim
    assert type(again) is eager(torch.optim.Adam) and str(again.state_dict()) == str(optimizer.state_dict())

    from rnnbench.training.loop import TrainConfig, train
    for optimizer in ("adam", "nesterov", "rmsprop"):
        train(TrainConfig(cell="gru", task="adding", width=4, epochs=2, batch_size=16, threads=1,
                          optimizer=optimizer, momentum=0.5, clip=1.0,
                          task_options=dict(length=6, train_size=32, validation_size=16, test_size=16),
                          cache_dir=sys.argv[1]))
    assert "torch._dynamo" not in sys.modules, "training imported Dynamo"

    for cls, kwargs in cases:
        want, want_state = run(cls, kwargs)
        got, got_state = fast[cls, str(kwargs)]
        assert all(torch.equal(a, b) for a, b in zip(want, got)), f"{cls.__name__} {kwargs}: other weights"
        assert str(want_state) == str(got_state), f"{cls.__name__} {kwargs}: other state"
        # A state dict crosses between the two: a checkpoint of either resumes in the other.
        resumed, _ = run(eager(cls), kwargs, state=want_state)
        assert all(torch.equal(a, b) for a, b in zip(run(cls, kwargs, state=got_state)[0], resumed))

    import torch._dynamo
    eager.cache_clear()
    assert eager(torch.optim.Adam) is torch.optim.Adam, "with Dynamo loaded, torch's class is kept"
    print("ok")
    """
)


def test_eager_optimizers_update_as_torchs_own_and_never_import_dynamo(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "cache")], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
