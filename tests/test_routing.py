"""One Tune run for all cells: each trial goes to its own cell's searcher and scheduler."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher

from rnnbench.sweep.routing import CELL, CellSchedulers, CellSearches, cell_of, sampled_values
from rnnbench.sweep.scheduler import EpochASHA


class Counting(Searcher):
    """Suggests {"x": 0}, {"x": 1}, ... and remembers what it was told."""

    def __init__(self) -> None:
        super().__init__(metric="val_loss", mode="min")
        self.given, self.results, self.completed = 0, [], []

    def suggest(self, trial_id: str) -> dict:
        self.given += 1
        return {"x": self.given - 1}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.results.append(trial_id)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.completed.append((trial_id, error))


def test_each_cell_gets_its_budget_in_order_and_hears_only_of_its_own_trials():
    lstm, gru = Counting(), Counting()
    search = CellSearches({"lstm": lstm, "gru": gru}, {"lstm": 2, "gru": 1}, "val_loss", "min")
    configs = [search.suggest(f"t{i}") for i in range(4)]
    assert configs[:3] == [{"x": 0, CELL: "lstm"}, {"x": 1, CELL: "lstm"}, {"x": 0, CELL: "gru"}]
    assert configs[3] == Searcher.FINISHED and (lstm.given, gru.given) == (2, 1)
    assert [cell_of(c) for c in configs[:3]] == ["lstm", "lstm", "gru"]
    assert sampled_values(configs[2]) == {"x": 0}, "the routing key is no sampled value"
    search.on_trial_result("t2", {"val_loss": 1.0})
    search.on_trial_complete("t0", {"val_loss": 0.5})
    search.on_trial_complete("t2", error=True)
    search.on_trial_complete("unknown", {})  # not one of its trials: ignored
    assert lstm.results == [] and gru.results == ["t2"]
    assert lstm.completed == [("t0", False)] and gru.completed == [("t2", True)]


def test_a_cell_whose_searcher_is_finished_early_hands_on_to_the_next():
    class Done(Counting):
        def suggest(self, trial_id: str):
            return Searcher.FINISHED

    gru = Counting()
    search = CellSearches({"lstm": Done(), "gru": gru}, {"lstm": 3, "gru": 1}, "val_loss", "min")
    assert search.suggest("a") == {"x": 0, CELL: "gru"} and search.suggest("b") == Searcher.FINISHED


def _trial(trial_id: str, cell: str) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, config={"lr": 0.1, CELL: cell})


def test_asha_rungs_never_mix_cells():
    """A trial far worse than another cell's is not pruned for it: it is compared with its own cell's."""
    schedulers = CellSchedulers(
        {c: EpochASHA(4, grace_period=1, reduction_factor=2) for c in ("lstm", "gru")}
    )
    assert schedulers.set_search_properties("val_loss", "min")
    good = [_trial(f"lstm{i}", "lstm") for i in range(2)]
    bad = [_trial(f"gru{i}", "gru") for i in range(2)]
    for trial in good + bad:
        schedulers.on_trial_add(None, trial)

    def report(trial, loss: float) -> str:
        return schedulers.on_trial_result(None, trial, {"training_iteration": 1, "val_loss": loss})

    assert [report(t, loss) for t, loss in zip(good, (0.1, 0.2), strict=True)] == [
        TrialScheduler.CONTINUE,
        TrialScheduler.STOP,
    ]
    # Mixed into lstm's rung, a loss of 5.0 would be cut; in its own cell's rung it is the first, and stays.
    assert report(bad[0], 5.0) == TrialScheduler.CONTINUE
    # ASHA still prunes within the cell: a worse gru trial at the same rung is stopped.
    assert report(bad[1], 9.0) == TrialScheduler.STOP
    assert "lstm" in schedulers.debug_string() and "gru" in schedulers.debug_string()


def test_a_trial_that_ends_without_a_final_checkpoint_loses_its_epoch_checkpoint_at_once(tmp_path):
    """With every cell in one Tune run, the sweep-end clean-up comes too late for a big sweep's disk."""
    import numpy as np
    from safetensors.numpy import save_file

    from rnnbench.sweep.models import CheckpointDropper
    from rnnbench.training import recipe

    trials = {name: tmp_path / f"trial_entry_{name}_0000{k}" for k, name in enumerate(("pruned", "files", "before",
                                                                                      "cut", "some"))}  # fmt: skip
    for folder in trials.values():
        (folder / "checkpoint_000003").mkdir(parents=True)
    (trials["pruned"] / "checkpoint_000003" / "state.pt").write_bytes(b"epoch state")
    (trials["before"] / "checkpoint_000003" / recipe.ONE_FILE_CHECKPOINT).write_bytes(b"tested weights")
    for name in (
        "files",
        "cut",
        "some",
    ):  # the model's files; cut short (a worker killed as Tune copied them)
        checkpoint = trials[name] / "checkpoint_000003"
        save_file({"w": np.zeros(64, dtype=np.float32)}, str(checkpoint / recipe.WEIGHTS_FILE))
        for other in (recipe.RECIPE_FILE, recipe.EXAMPLE_FILE, recipe.VERSIONS_FILE)[
            : 1 if name == "some" else 3
        ]:
            (checkpoint / other).write_text("{}")
    weights = trials["cut"] / "checkpoint_000003" / recipe.WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-4])
    dropper = CheckpointDropper()
    dropper.on_trial_complete(0, [], SimpleNamespace(path=str(trials["pruned"])))
    dropper.on_trial_error(0, [], SimpleNamespace(path=str(trials["files"])))
    for name in ("before", "cut", "some"):
        dropper.on_trial_complete(0, [], SimpleNamespace(path=str(trials[name])))
    dropper.on_trial_complete(0, [], SimpleNamespace(path=None))  # a trial that never got a folder
    kept = {name for name, folder in trials.items() if (folder / "checkpoint_000003").exists()}
    assert kept == {"files", "before"}, (
        "the tested weights are kept, whole; an epoch's state is never resumed"
    )


def test_a_trial_keeps_only_its_newest_epoch_checkpoint(tmp_path):
    """Tune keeps every checkpoint (num_to_keep=None: no rewrite of its state at each); the dropper keeps one."""
    from rnnbench.sweep.models import CheckpointDropper

    trial = SimpleNamespace(path=str(tmp_path / "trial_entry_a_00000"))
    dropper = CheckpointDropper()
    for epoch in range(3):
        new = Path(trial.path) / f"checkpoint_00000{epoch}"
        new.mkdir(parents=True)
        (new / "state.pt").write_bytes(b"epoch state")
        dropper.on_checkpoint(epoch, [], trial, SimpleNamespace(path=str(new)))
        assert sorted(p.name for p in Path(trial.path).iterdir()) == [new.name], f"after epoch {epoch}"
    (Path(trial.path) / "result.json").write_text("{}")  # Tune's own files stay
    dropper.on_checkpoint(3, [], trial, SimpleNamespace(path=str(new)))
    assert (new / "state.pt").is_file() and (Path(trial.path) / "result.json").is_file()
    dropper.on_checkpoint(4, [], SimpleNamespace(path=None), SimpleNamespace(path=str(new)))
