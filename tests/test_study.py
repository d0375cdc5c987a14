"""Greff et al.'s analysis (rnnbench.analysis.study) on a real MLflow store of hand-made sweep runs whose
answer is known: NFG and NOAF worse than vanilla, CIFG and NP equal, the learning rate decisive."""

from __future__ import annotations

import base64
import json
import math
import random
import re

import pytest
from mlflow.entities import Metric, Param
from optuna.distributions import FloatDistribution, IntDistribution, distribution_to_json
from typer.testing import CliRunner

from rnnbench.analysis.importance import INTERACTIONS
from rnnbench.analysis.study import CellTrials, StudyError, TaskStudy, Trial, analyse, collect, findings
from rnnbench.cli import app
from rnnbench.tracking.recorder import RunRecorder
from tests.pages import chromium, in_a_1280_pixel_browser, incomplete_rows, table_count

DISTRIBUTIONS = json.dumps({
    "lr": distribution_to_json(FloatDistribution(1e-6, 1e-2, log=True)),
    "width": distribution_to_json(IntDistribution(20, 200, log=True)),
    "momentum_complement": distribution_to_json(FloatDistribution(0.01, 1.0, log=True)),
})  # fmt: skip
EFFECT = {"peephole": 0.0, "nfg": -0.25, "noaf": -0.2, "cifg": 0.0, "np": 0.0}


def make_sweep(uri: str, name: str, task: str, trials: int = 30, *, unfinished: int = 0, paired: bool = False,
               level: float = 0.3, slope: float = 0.5, effects: dict[str, float] = EFFECT) -> None:  # fmt: skip
    """A sweep whose test accuracy is level + slope * (log10 lr + 6) / 4 + the cell's effect + small noise
    (chance 0.25, 1,000 test examples); ``paired``: every cell trains the same configurations."""
    recorder = RunRecorder(uri, "rnnbench")
    client, experiment = recorder.client, recorder.experiment_id
    parent = client.create_run(experiment, tags={"kind": "sweep", "sweep": name})
    settings = {"task": task, "metric": "val_accuracy", "cells": json.dumps(["noaf", "cifg", "nfg", "peephole", "np"]), "trials": str(trials), "epochs": "5", "space": "greff",
                "seed": "0", "sampler": "random", "task_options": json.dumps({"length": 30})}  # fmt: skip
    client.log_batch(parent.info.run_id, params=[Param(k, v) for k, v in settings.items()])
    draws, noise = random.Random(0), random.Random(1)
    for cell, effect in effects.items():
        if paired:
            draws = random.Random(0)
        for number in range(trials + unfinished):
            lr = 10 ** draws.uniform(-6, -2)
            width, complement = draws.randint(20, 200), 10 ** draws.uniform(-2, 0)
            accuracy = level + slope * (math.log10(lr) + 6) / 4 + effect + noise.gauss(0, 0.003)
            status = "completed" if number < trials else "failed"
            tags = {"sweep": name, "cell": cell, "task": task, "optuna_trial": str(number), "status": status,
                    "optuna_distributions": DISTRIBUTIONS}  # fmt: skip
            run = client.create_run(experiment, tags=tags)
            params = {"lr": repr(lr), "width": str(width), "momentum_complement": repr(complement)}
            metrics = {"best_val_accuracy": accuracy + noise.gauss(0, 0.003), "test_accuracy": accuracy,
                       "chance": 0.25, "test_count": 1000}  # fmt: skip
            client.log_batch(
                run.info.run_id,
                params=[Param(k, v) for k, v in params.items()],
                metrics=[] if status != "completed" else [Metric(k, v, 0, 0) for k, v in metrics.items()],
            )


# One process builds the module's fixture (scripts/test: --dist loadgroup), not one per process.
pytestmark = pytest.mark.xdist_group("study-store")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    uri = f"sqlite:///{tmp_path_factory.mktemp('study') / 'mlflow.db'}"
    make_sweep(uri, "study-a", "temporal_order", unfinished=2)
    make_sweep(uri, "study-p", "copy", paired=True)
    make_sweep(
        uri, "study-chance", "adding", level=0.25, slope=0.0, paired=True, effects=dict.fromkeys(EFFECT, 0.0)
    )
    return uri


def _study(uri: str, sweep: str) -> TaskStudy:
    recorder = RunRecorder(uri, "rnnbench")
    return analyse(sweep, *collect(recorder.client, recorder.experiment_id, sweep))


def test_the_analysis_finds_what_the_data_were_made_to_show(store):
    recorder = RunRecorder(store, "rnnbench")
    settings, cells = collect(recorder.client, recorder.experiment_id, "study-a")
    assert settings["selection_metric"] == "best_val_accuracy"
    assert {c: len(t.trials) for c, t in cells.items()} == dict.fromkeys(EFFECT, 30)
    assert all(t.not_completed == 2 for t in cells.values()), "failed trials are counted, not compared"
    study = analyse("study-a", settings, cells)
    assert [c.cell for c in study.comparisons] == ["peephole", "noaf", "cifg", "nfg", "np"], (
        "the sweep's order"
    )
    assert not study.paired, "each cell drew its own configurations: nothing to pair"
    kinds = {c.cell: c.greff.kind for c in study.comparisons if c.greff}
    assert kinds["nfg"] == "worse" and kinds["noaf"] == "worse"
    # Three best trials each: the difference test cannot reject, and equality is not shown either.
    assert kinds["cifg"] == "inconclusive" and kinds["np"] == "inconclusive"
    nfg = study.comparison("nfg")
    assert len(nfg.best) == 3, "the best 10 % of 30 trials"
    assert nfg.greff.difference == pytest.approx(-0.25, abs=0.05)  # plus the spread of the best lr draws
    assert nfg.greff.low < nfg.greff.difference < nfg.greff.high < 0
    assert study.comparison("cifg").greff.detectable > 0, "inconclusive says what could have been detected"
    assert max((k for k in study.importance if k != INTERACTIONS), key=study.importance.get) == "lr"
    assert sum(study.importance.values()) == pytest.approx(1.0), "main effects plus the rest"
    outcomes = {f.claim[:12]: f.outcome["temporal_order"]["best 10 %"] for f in findings([study])[:3]}
    assert outcomes["No variant s"].startswith("inconclusive"), (
        "cifg and np were shown neither worse nor equal"
    )
    assert outcomes["Removing the"].startswith("reproduced")
    assert outcomes["Coupling the"].startswith("inconclusive"), outcomes


def test_shared_configurations_are_compared_pair_by_pair(store):
    study = _study(store, "study-p")
    assert study.paired
    paired = {c.cell: c.paired for c in study.comparisons if c.paired}
    assert {c: v.kind for c, v in paired.items()} == {"noaf": "worse", "cifg": "equivalent", "nfg": "worse",
                                                      "np": "equivalent"}  # fmt: skip
    assert paired["nfg"].n == 30 and paired["nfg"].difference == pytest.approx(-0.25, abs=0.01)
    assert paired["cifg"].low > -0.02 and paired["cifg"].high < 0.02
    outcome = {f.claim[:12]: f.outcome["copy"] for f in findings([study])}
    assert outcome["No variant s"]["paired"].startswith("reproduced: every variant equivalent or worse")
    assert outcome["Coupling the"]["paired"].startswith("reproduced")
    assert outcome["Removing the"]["paired"].startswith("reproduced")


def test_models_at_chance_make_every_comparison_inconclusive(store):
    """Nothing learned: no finding can be reproduced or contradicted, and fANOVA is not computed."""
    study = _study(store, "study-chance")
    for comparison in study.comparisons[1:]:
        for verdict in (comparison.greff, comparison.paired):
            assert verdict.kind == "inconclusive" and verdict.reason == "did not learn at this budget"
    assert study.importance is None and study.importance_trials == 0
    for finding in findings([study]):
        assert all(o.startswith("inconclusive") for o in finding.outcome["adding"].values()), finding


def test_the_best_trials_are_picked_by_the_selection_metric_in_its_direction():
    pairs = [(0.9, 0.1), (0.2, 0.95), (0.8, 0.2), (0.1, 0.99)] + [(0.5, 0.0)] * 16
    trials = CellTrials("x", [Trial(v, t, (), True) for v, t in pairs])
    assert [t.test for t in trials.best()] == [0.1, 0.2], "selection by validation, at least two trials"
    trials.mode = "min"  # a loss: the best are the lowest
    assert [t.test for t in trials.best()] == [0.99, 0.95]


def test_the_published_page_has_the_findings_tables_and_plots_and_no_paths(store, tmp_path):
    out = tmp_path / "odyssey"
    result = CliRunner().invoke(
        app,
        ["odyssey-report", "--sweep", "study-a", "--sweep", "study-p", "--tracking-uri", store, "--out", str(out),
         "--note", "n"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    readme, page = (out / "README.md").read_text(), (out / "index.html").read_text()
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == sorted(f"study-{k}-{kind}.png" for k in "ap" for kind in ("box", "budget", "importance"))
    for text in (readme, page):
        assert "Findings of the paper, checked" in text and "worse" in text and "equivalent" in text
        assert "length=30" in text and "30 trials per cell" in text and "Budget curves" in text
        assert str(tmp_path) not in text, "a published page names no path of this machine"
    assert page.count("data:image/png;base64,") == 6
    assert incomplete_rows(page) == [] and table_count(page) == 5, (
        "findings, and a study and budget table per task"
    )
    for encoded in page.split("data:image/png;base64,")[1:]:
        base64.b64decode(encoded.split('"', 1)[0], validate=True)  # every image intact
    if chromium() is not None:
        seen = in_a_1280_pixel_browser(out / "index.html", tmp_path)
        assert seen["scroll"] <= seen["inner"] == 1280 and seen["decoded"] == seen["images"] == 6, seen
        assert seen["incomplete"] == 0, seen


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
def test_a_ninth_variant_from_a_plugin_runs_through_the_same_study(run_cli, tmp_path, ray_address):
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
                    "--max-concurrent", "1", "--json", "--address", ray_address)  # fmt: skip
    assert swept.returncode == 0, swept.stderr[-2000:]
    reported = run_cli("odyssey-report", "--sweep", "ninth", "--out", str(tmp_path / "page"))
    assert reported.returncode == 0, reported.stderr[-2000:]
    readme = (tmp_path / "page" / "README.md").read_text()
    assert re.search(r"\| vanilla \(peephole\) \| 2 \(\d\) \|", readme) and re.search(
        r"\| cifg_np \| 2 \(\d\) \|", readme
    )


def test_the_learning_rate_finding_asks_for_by_far():
    from rnnbench.analysis.study import _lr_first

    def outcome(importance):
        study = TaskStudy("s", "t", {}, "best_val_accuracy", 0.1, 0.02, [], importance, 40)
        return _lr_first(study).split(":")[0]

    assert outcome({"lr": 0.52, "width": 0.20, INTERACTIONS: 0.28}) == "reproduced"
    assert outcome({"lr": 0.26, "momentum_complement": 0.22, INTERACTIONS: 0.52}) == "inconclusive"
    assert outcome({"lr": 0.10, "width": 0.40, INTERACTIONS: 0.50}) == "contradicted"
    # A near-tie is no ranking: lr second by a hair is inconclusive, not contradicted.
    assert outcome({"momentum_complement": 0.241, "lr": 0.239, "input_noise": 0.238, INTERACTIONS: 0.28}) == (
        "inconclusive"
    )
    assert outcome(None) == "inconclusive"


def test_a_studys_wall_time_counts_its_trials_time_not_the_pauses_between_sittings():
    from rnnbench.analysis.study import busy_milliseconds

    assert busy_milliseconds([]) == 0
    # Two trials side by side (0-10, 5-12), a pause, then a resumed sitting (100-110, 110-115).
    assert busy_milliseconds([(100, 110), (0, 10), (5, 12), (110, 115)]) == 12 + 15
    assert busy_milliseconds([(0, 10), (2, 3)]) == 10, "a trial inside another adds nothing"
