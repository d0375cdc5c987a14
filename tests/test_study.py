"""Greff et al.'s analysis (rnnbench.study) on a real MLflow store of hand-made sweep runs whose
answer is known: NFG and NOAF worse than vanilla, CIFG and NP equal, the learning rate decisive."""

from __future__ import annotations

import json
import math
import random

import pytest
from mlflow.entities import Metric, Param
from optuna.distributions import FloatDistribution, IntDistribution, distribution_to_json
from typer.testing import CliRunner

from rnnbench.cli import app
from rnnbench.study import StudyError, analyse, collect, findings
from rnnbench.tracking import RunRecorder

DISTRIBUTIONS = json.dumps({
    "lr": distribution_to_json(FloatDistribution(1e-6, 1e-2, log=True)),
    "width": distribution_to_json(IntDistribution(20, 200, log=True)),
    "momentum_complement": distribution_to_json(FloatDistribution(0.01, 1.0, log=True)),
})  # fmt: skip
EFFECT = {"peephole": 0.0, "nfg": -0.25, "noaf": -0.2, "cifg": 0.0, "np": 0.0}


def make_sweep(uri: str, name: str, task: str, trials: int = 30, *, unfinished: int = 0) -> None:
    """A sweep whose test accuracy is 0.3 + 0.5 * (log10 lr + 6) / 4 + the cell's effect + small noise."""
    recorder = RunRecorder(uri, "rnnbench")
    client, experiment = recorder.client, recorder.experiment_id
    parent = client.create_run(experiment, tags={"kind": "sweep", "sweep": name})
    settings = {"task": task, "metric": "val_accuracy", "cells": json.dumps(["noaf", "cifg", "nfg", "peephole", "np"]), "trials": str(trials), "epochs": "5", "space": "greff",
                "seed": "0", "sampler": "random", "task_options": json.dumps({"length": 30})}  # fmt: skip
    client.log_batch(parent.info.run_id, params=[Param(k, v) for k, v in settings.items()])
    draws = random.Random(0)
    for cell, effect in EFFECT.items():
        for number in range(trials + unfinished):
            lr = 10 ** draws.uniform(-6, -2)
            width, complement = draws.randint(20, 200), 10 ** draws.uniform(-2, 0)
            accuracy = 0.3 + 0.5 * (math.log10(lr) + 6) / 4 + effect + draws.gauss(0, 0.003)
            status = "completed" if number < trials else "failed"
            tags = {"sweep": name, "cell": cell, "task": task, "optuna_trial": str(number), "status": status,
                    "optuna_distributions": DISTRIBUTIONS}  # fmt: skip
            run = client.create_run(experiment, tags=tags)
            params = {"lr": repr(lr), "width": str(width), "momentum_complement": repr(complement)}
            metrics = {"best_val_accuracy": accuracy + draws.gauss(0, 0.003), "test_accuracy": accuracy}
            client.log_batch(
                run.info.run_id,
                params=[Param(k, v) for k, v in params.items()],
                metrics=[] if status != "completed" else [Metric(k, v, 0, 0) for k, v in metrics.items()],
            )


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    uri = f"sqlite:///{tmp_path_factory.mktemp('study') / 'mlflow.db'}"
    make_sweep(uri, "study-a", "temporal_order", unfinished=2)
    return uri


def test_the_analysis_finds_what_the_data_were_made_to_show(store):
    recorder = RunRecorder(store, "rnnbench")
    settings, cells = collect(recorder.client, recorder.experiment_id, "study-a")
    assert settings["selection_metric"] == "best_val_accuracy"
    assert {c: len(t.pairs) for c, t in cells.items()} == dict.fromkeys(EFFECT, 30)
    assert all(t.not_completed == 2 for t in cells.values()), "failed trials are counted, not compared"
    study = analyse("study-a", settings, cells)
    assert [c.cell for c in study.comparisons] == ["peephole", "noaf", "cifg", "nfg", "np"], (
        "the sweep's order"
    )
    verdicts = {c.cell: c.verdict for c in study.comparisons}
    assert verdicts == {"peephole": "reference", "nfg": "significantly worse", "noaf": "significantly worse",
                        "cifg": "no significant difference", "np": "no significant difference"}  # fmt: skip
    nfg = study.comparison("nfg")
    assert len(nfg.best) == 3, "the best 10 % of 30 trials"
    assert nfg.difference == pytest.approx(-0.25, abs=0.05)  # plus the spread of the best lr draws
    assert nfg.p_holm >= nfg.p
    assert max(study.importance, key=study.importance.get) == "lr"
    outcomes = [f.outcome["temporal_order"] for f in findings([study])]
    assert [o.split(":")[0] for o in outcomes] == ["reproduced"] * 4, outcomes


def test_the_best_trials_are_picked_by_the_selection_metric_not_by_the_test_metric():
    from rnnbench.study import CellTrials

    trials = CellTrials("x", pairs=[(0.9, 0.1), (0.2, 0.95), (0.8, 0.2), (0.1, 0.99)] + [(0.0, 0.0)] * 16)
    assert trials.best() == [0.1, 0.2], "selection by validation, at least two trials"


def test_the_published_page_has_the_findings_tables_and_plots_and_no_paths(store, tmp_path):
    out = tmp_path / "odyssey"
    result = CliRunner().invoke(
        app,
        ["odyssey-report", "--sweep", "study-a", "--tracking-uri", store, "--out", str(out), "--note", "n"],
    )
    assert result.exit_code == 0, result.output
    readme, page = (out / "README.md").read_text(), (out / "index.html").read_text()
    assert sorted(p.name for p in out.glob("*.png")) == ["study-a-box.png", "study-a-importance.png"]
    for text in (readme, page):
        assert "Findings of the paper, checked" in text and "significantly worse" in text
        assert "length=30" in text and "30 trials per cell" in text
        assert str(tmp_path) not in text, "a published page names no path of this machine"
    assert page.count("data:image/png;base64,") == 2


def test_a_sweep_the_store_lacks_or_without_vanilla_is_a_clear_error(store, tmp_path):
    result = CliRunner().invoke(
        app, ["odyssey-report", "--sweep", "nope", "--tracking-uri", store, "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "no sweep named 'nope' in this MLflow store" in result.stderr
    assert not (tmp_path / "o").exists()
    with pytest.raises(
        StudyError, match=r"the vanilla LSTM \('peephole'\) needs at least 2 completed trials"
    ):
        analyse("s", {"selection_metric": "best_val_accuracy"}, {})


@pytest.mark.slow
def test_a_ninth_variant_from_a_plugin_runs_through_the_same_study(run_cli, tmp_path):
    """The README's recipe: the plugin file, a sweep of vanilla and the new cell over `greff` with
    random search, then the report, which compares the new cell with vanilla."""
    from tests.conftest import REPO, TEST_PLUGINS

    plugin = str(TEST_PLUGINS / "cifg_np.py")
    checked = run_cli("--plugin", plugin, "check-cell", "cifg_np")
    assert checked.returncode == 0 and "cell 'cifg_np' passed" in checked.stdout, checked.stderr
    study = (
        (REPO / "examples" / "odyssey.toml")
        .read_text()
        .replace('cells = "odyssey"', 'cells = ["peephole", "cifg_np"]')
    )
    study = study.replace("grace_period = 12", "grace_period = 1")
    assert 'cells = ["peephole", "cifg_np"]' in study
    (tmp_path / "ninth.toml").write_text(study)
    swept = run_cli("--plugin", plugin, "sweep", "ninth.toml", "--trials", "2", "--epochs", "1", "--length", "12",
                    "-o", "train_size=128", "-o", "validation_size=64", "-o", "test_size=64", "--name", "ninth",
                    "--json")  # fmt: skip
    assert swept.returncode == 0, swept.stderr[-2000:]
    reported = run_cli("odyssey-report", "--sweep", "ninth", "--out", str(tmp_path / "page"))
    assert reported.returncode == 0, reported.stderr[-2000:]
    readme = (tmp_path / "page" / "README.md").read_text()
    assert "| vanilla (peephole) | 2 |" in readme and "| cifg_np | 2 |" in readme
