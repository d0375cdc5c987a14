"""Sweep settings, sweep files, space overrides and the progress display, without Ray."""

from __future__ import annotations

import pytest

import rnnbench
from rnnbench.search_spaces.overrides import (
    OverriddenTrial,
    SpaceOverrideError,
    apply_overrides,
    check_overrides,
)
from rnnbench.sweep import CellProgress, SweepProgress
from rnnbench.sweep.settings import SweepConfigError, SweepSettings, check_values, load_sweep_file, validate


def test_sweep_file_round_trip(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        'task = "copy"\ncells = "all"\ntrials = 5\ngpus_per_trial = 0.25\n'
        "[task_options]\nlength = 30\n[train]\nbatch_size = 16\n[space_overrides]\ndepth = 2\n"
    )
    settings = SweepSettings(**load_sweep_file(path))
    validate(settings)
    assert settings.cells == ["lstm", "gru", "peephole", "rnn"]
    assert (settings.trials, settings.gpus_per_trial, settings.task_options) == (5, 0.25, {"length": 30})
    assert settings.train == {"batch_size": 16} and settings.space_overrides == {"depth": 2}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"cells": "lstm,,gru"}, "cells has an empty name"),
        ({"cells": ["lstm", "lstm"]}, "cells lists a name twice"),
        ({"epochs": 2.5}, "key 'epochs': must be integer, got 2.5"),
        ({"trials": True}, "key 'trials': must be integer, got True"),
        ({"train": {"batch_size": "big"}}, "key 'train.batch_size': must be int, got 'big'"),
        ({"task_options": [1]}, "key 'task_options': must be a table"),
    ],
)
def test_check_values_errors(values, message):
    with pytest.raises(SweepConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_values(values, "sweep file x.toml")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"trials": 0}, "key 'trials': must be a positive integer"),
        ({"cpus_per_trial": 0}, "key 'cpus_per_trial': must be a positive number"),
        ({"gpus_per_trial": -1}, "key 'gpus_per_trial': must be a non-negative number"),
        ({"metric": "test_accuracy"}, "key 'metric': must be one of val_loss, val_accuracy"),
        ({"name": "../escape"}, "key 'name': must be letters, digits"),
        ({"name": "nl\n"}, "key 'name': must be letters, digits"),  # "$" matched before a trailing newline
        ({"reduction_factor": 1}, "key 'reduction_factor': must be an integer >= 2"),
        ({"sampler": "grid"}, "key 'sampler': must be one of tpe, random, got 'grid'"),
        ({"startup_trials": 0}, "key 'startup_trials': must be a positive integer"),
    ],
)
def test_validate_errors(overrides, message):
    with pytest.raises(SweepConfigError, match=message):
        validate(SweepSettings(**overrides), "sweep file x.toml")


@pytest.mark.parametrize(
    ("trials", "startup", "expected"), [(8, None, 3), (20, None, 5), (100, None, 10), (8, 6, 6)]
)
def test_tpe_models_after_a_few_random_trials_on_small_budgets(trials, startup, expected):
    from rnnbench.sweep.search import make_sampler

    settings = SweepSettings(trials=trials, startup_trials=startup)
    assert settings.tpe_startup_trials == expected
    assert make_sampler(settings)._n_startup_trials == expected
    assert type(make_sampler(SweepSettings(sampler="random"))).__name__ == "RandomSampler"


def test_overrides_fix_narrow_and_restrict():
    import optuna

    space = rnnbench.get_search_space("default")
    overrides = {"depth": 2, "width": {"low": 20, "high": 24}, "clipping": {"choices": ["norm"]}}
    check_overrides(space, overrides, "test")
    suggest = apply_overrides(space, overrides)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(20):
        trial = study.ask()
        config = suggest(trial)
        assert config["depth"] == 2 and 20 <= config["width"] <= 24 and config["clip"] is not None
        assert "depth" not in trial.params, "a fixed parameter is not searched"
        study.tell(trial, 0.0)


def test_override_of_a_conditional_parameter_is_found():
    check_overrides(rnnbench.get_search_space("default"), {"clip": {"low": 0.5, "high": 2.0}}, "test")


def test_greff_space_matches_the_paper_ranges():
    import optuna

    space = rnnbench.get_search_space("greff")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    momenta = []
    for _ in range(2000):
        config = space.suggest(study.ask())
        assert config["depth"] == 1 and config["optimizer"] == "nesterov" and config["clip"] is None
        assert 20 <= config["width"] <= 200 and 1e-6 <= config["lr"] <= 1e-2
        assert 0 <= config["momentum"] <= 0.99 and 0 <= config["input_noise"] <= 1
        assert config["momentum"] == pytest.approx(1 - config["momentum_complement"])
        momenta.append(config["momentum"])
    above = sum(m > 0.9 for m in momenta) / len(momenta)
    assert 0.46 < above < 0.54, f"1 - log-uniform[0.01, 1]: half the draws above 0.9, got {above:.3f}"


def test_input_noise_is_neither_sampled_nor_returned_on_one_hot_tasks():
    import optuna

    from rnnbench.search_spaces.overrides import for_task

    space = rnnbench.get_search_space("greff")
    for encoding, present in (("linear", True), ("one-hot", False)):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        trial = study.ask()
        config = for_task(space, {}, encoding)(trial)
        assert ("input_noise" in config) is present and ("input_noise" in trial.params) is present
        assert "lr" in trial.params


def test_overridden_trial_delegates_everything_else():
    class Fake:
        number = 7

        def suggest_int(self, name, low, high, step=1, log=False):
            return low

    wrapped = OverriddenTrial(Fake(), {"a": {"low": 3}})
    assert wrapped.number == 7 and wrapped.suggest_int("a", 1, 9) == 3 and wrapped.suggest_int("b", 1, 9) == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"dept": 2}, "has no parameter 'dept'"),
        ({"lr": {"low": -1.0, "high": 1.0, "log": True}}, "key 'space_overrides.lr'"),
        (
            {"width": [1, 2]},
            r"must be a value or a table, got \[1, 2\] \(a list of values to choose from is "
            r"\{ choices = \[1, 2\] \}\)",
        ),
        ({"clipping": {"choices": []}}, "choices must be a non-empty list"),
        # Each was dropped without a word, leaving the space's own range: {choices} on an integer among them.
        (
            {"width": {"choices": [8, "wide"]}},
            r"'space_overrides.width': fixed to 'wide', but the space samples it as",
        ),
        (
            {"width": {"choices": [8], "low": 4}},
            "choices replace the range: give choices, or low and high, not both",
        ),
        (
            {"clipping": {"low": 1}},
            r"'space_overrides.clipping': low does not apply to a categorical parameter; it "
            r"takes choices, or a single value",
        ),
        ({"lr": {"choice": [0.1]}}, "unknown field"),
        ({"clipping": {"choices": ["sometimes"]}}, "choice 'sometimes' is not one of the space's choices"),
    ],
)
def test_bad_overrides(overrides, message):
    with pytest.raises(SpaceOverrideError, match=message):
        check_overrides(rnnbench.get_search_space("default"), overrides, "sweep file x.toml")


def test_choices_narrow_an_integer_or_a_number_to_those_values():
    """`width = { choices = [8, 16] }` (a user's sweep file on the greff space trained widths 52, 103 and 156)."""
    import optuna

    from rnnbench.search_spaces.overrides import apply_overrides

    space = rnnbench.get_search_space("greff")
    overrides = {"width": {"choices": [8, 16]}, "input_noise": {"choices": [0.0, 0.5]}}
    assert check_overrides(space, overrides, "sweep file x.toml") >= {"width", "input_noise"}
    suggest = apply_overrides(space, overrides)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = [suggest(study.ask()) for _ in range(40)]
    assert {c["width"] for c in drawn} == {8, 16} and {c["input_noise"] for c in drawn} == {0.0, 0.5}
    assert all(isinstance(c["width"], int) for c in drawn)
    plain, other = apply_overrides(space, {"width": {"low": 30, "high": 40}}), optuna.create_study()
    assert all(30 <= plain(other.ask())["width"] <= 40 for _ in range(20)), "a range still narrows"


def test_progress_counts_best_and_eta():
    progress = SweepProgress(
        "s", "val_loss", "min", {"lstm": CellProgress(4), "gru": CellProgress(4)}, concurrency=2
    )
    seen = []
    progress.listeners.append(lambda p: seen.append(p.as_dict()))
    assert progress.eta_seconds() is None
    progress.cells["lstm"].counts["completed"] = 2
    progress.cells["lstm"].durations = [10.0, 30.0]
    progress.record_best("lstm", 0.5)
    progress.record_best("lstm", 0.7)
    progress.update()
    assert progress.cells["lstm"].best == 0.5 and progress.cells["lstm"].finished == 2
    assert progress.eta_seconds() == pytest.approx(6 * 20.0 / 2)
    assert seen[-1]["cells"]["lstm"]["best_val_loss"] == 0.5
    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(progress.render())
    text = console.export_text()
    assert "2/4" in text and "lstm" in text and "about 60 s left" in text


def test_scheduler_never_prunes_at_or_after_the_last_epoch():
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler

    from rnnbench.sweep.scheduler import make_scheduler

    assert isinstance(make_scheduler(SweepSettings(epochs=5, grace_period=5)), FIFOScheduler)
    asha = make_scheduler(SweepSettings(epochs=6, grace_period=2, reduction_factor=3))
    for result in ({"training_iteration": 6, "final": False}, {"training_iteration": 7, "final": True}):
        assert asha.on_trial_result(None, None, result) == TrialScheduler.CONTINUE


def test_search_tells_optuna_only_what_mlflow_recorded(tmp_path):
    """Tune may call the searcher before the recorder has written the trial, or never (a stopped
    sweep): the study learns of a trial only once its record is written, and never of one whose
    record failed (it stays RUNNING, and --resume reruns it)."""
    import optuna
    from optuna.trial import TrialState

    from rnnbench.sweep.search import SweepSearch, journal_storage

    storage = journal_storage(str(tmp_path / "j.journal"))
    search = SweepSearch(
        space=lambda trial: {"lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True)},
        metric="val_loss", mode="min", sampler=optuna.samplers.RandomSampler(seed=0),
        study_name="s:lstm", storage=storage,
    )  # fmt: skip
    for trial_id in ("a", "b", "c", "d"):
        assert search.suggest(trial_id) is not None

    def states() -> list:
        return [t.state for t in optuna.load_study(study_name="s:lstm", storage=storage).trials]

    final = {"final": True, "status": "completed", "val_loss": 0.5}
    search.record_written("a", final)  # the recorder first: told at once
    search.on_trial_complete("a", final)  # Tune's later call changes nothing
    search.on_trial_complete("b", error=True)  # Tune first (a worker that died): held
    assert states() == [TrialState.COMPLETE, TrialState.RUNNING, TrialState.RUNNING, TrialState.RUNNING]
    search.record_written("b", None)
    search.on_trial_complete("c", {"final": False, "val_loss": 0.9})
    search.leave_untold("c")  # its record failed
    search.record_written("d", {"final": False, "val_loss": 0.7})
    assert states() == [TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING, TrialState.PRUNED]


def test_a_greff_trial_trains_with_nesterov_sgd():
    import optuna

    from rnnbench.sweep.worker import TrialSpec, trial_config

    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1)).ask()
    sampled = rnnbench.get_search_space("greff").suggest(trial)
    config = trial_config(sampled, TrialSpec(cell="lstm", task="adding", epochs=1, seed=0, cpus_per_trial=1))
    assert config.optimizer == "nesterov" and config.momentum == sampled["momentum"] and config.clip is None


def test_a_pilot_says_whether_the_median_trial_learns_and_what_budget_it_would_need():
    from types import SimpleNamespace

    from rnnbench.sweep.status import learning

    def run(cell, accuracy, epochs_run):
        metrics = {"test_accuracy": accuracy, "chance": 0.25, "test_count": 1000.0, "epochs_run": epochs_run}
        return SimpleNamespace(
            data=SimpleNamespace(tags={"status": "completed", "cell": cell}, metrics=metrics)
        )

    found = learning([run("a", 0.9, 10), run("a", 0.26, 10), run("a", 0.8, 10), run("b", 0.25, 40),
                      run("b", 0.26, 40), run("c", 0.24, 3)], epochs=40)  # fmt: skip
    assert found["a"].learned and found["a"].accuracy == 0.8
    assert not found["b"].learned and "raise `epochs`" in found["b"].line()
    assert not found["c"].learned and "stopped early after 3 of 40 epochs" in found["c"].line()
