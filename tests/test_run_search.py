"""MLflow searches are built in one place: quoted values match exactly, never widen or break a filter."""

from __future__ import annotations

import re

import pytest

from rnnbench.tracking.recorder import RunRecorder
from rnnbench.tracking.run_search import SearchValueError, run_filter, trial_runs

AWKWARD = ["plain", "a'b", 'say "hi"', "x' and tags.cell = 'rnn", "x' or tags.cell != '"]


def test_quoted_values_match_exactly(tmp_path):
    store = RunRecorder(f"sqlite:///{tmp_path / 'mlflow.db'}", "rnnbench")
    for name in AWKWARD:
        for cell in ("lstm", "rnn"):
            store.client.create_run(
                store.experiment_id, tags={"sweep": name, "cell": cell, "optuna_trial": "0"}
            )
    for name in AWKWARD:
        found = trial_runs(store.client, store.experiment_id, sweep=name)
        assert sorted(r.data.tags["cell"] for r in found) == ["lstm", "rnn"]
        assert {r.data.tags["sweep"] for r in found} == {name}
        only = trial_runs(store.client, store.experiment_id, sweep=name, cell="rnn")
        assert [r.data.tags["cell"] for r in only] == ["rnn"], "an injected clause would widen this"


def test_a_value_with_both_quotes_is_an_error_naming_it():
    awkward = "a'b\"c"
    with pytest.raises(SearchValueError, match=re.escape(f"sweep {awkward!r} holds both kinds of quote")):
        run_filter({"sweep": awkward})
    assert run_filter({"sweep": "s", "cell": None}, status="RUNNING", trials_only=True) == (
        "tags.optuna_trial != '' and tags.sweep = 's' and attributes.status = 'RUNNING'"
    )


@pytest.mark.parametrize("command", ["leaderboard", "reseed"])
@pytest.mark.parametrize("name", ["a'b", "x' and tags.cell = 'rnn", "../up"])
def test_a_sweep_name_no_sweep_can_have_is_a_one_line_error(run_cli, command, name):
    result = run_cli(command, "--sweep", name)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--sweep: {name!r} is not a sweep name" in lines[0]
