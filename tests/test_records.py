"""The leaderboard reads an sqlite store's trial runs from its tables: the same runs, params, tags and
metrics as MLflow's search, with its filter (active runs only, trial runs only, by sweep and task)."""

from __future__ import annotations

import math
import random
from pathlib import Path

from benchmarks.leaderboard import CELLS, SWEEP, add_trials, open_store
from rnnbench.tracking.records import in_order, sqlite_trial_runs
from rnnbench.tracking.run_search import trial_runs


def _as_data(runs: list) -> list[tuple]:
    def metrics(found: dict) -> dict:  # NaN != NaN: compare it as a word
        return {k: "nan" if isinstance(v, float) and math.isnan(v) else v for k, v in found.items()}

    return [(r.info.run_id, r.info.start_time, r.info.end_time, r.info.status, r.data.params, r.data.tags,
             metrics(r.data.metrics)) for r in in_order(runs)]  # fmt: skip


def test_the_sqlite_reader_gives_what_mlflows_search_gives(tmp_path: Path):
    client, uri, experiment, parent = open_store(tmp_path)
    add_trials(client, experiment, parent, 0, 2 * len(CELLS), random.Random(0))
    runs = trial_runs(client, experiment, sweep=SWEEP)
    client.delete_run(runs[0].info.run_id)  # deleted: neither gives it
    client.log_metric(runs[1].info.run_id, "test_loss", float("nan"))  # NaN kept as NaN
    client.set_tag(runs[2].info.run_id, "sweep", "other")  # another sweep's trial
    other = client.create_run(experiment, tags={"sweep": SWEEP, "optuna_trial": ""}).info.run_id  # no number
    client.log_param(other, "cell", "lstm")
    for filters in (
        {"sweep": SWEEP},
        {"sweep": "other"},
        {"task": "temporal_order"},
        {"sweep": "missing"},
        {},
    ):
        ours = sqlite_trial_runs(uri, experiment, **filters)
        theirs = trial_runs(client, experiment, **filters)
        assert ours is not None
        assert _as_data(ours) == _as_data(theirs), filters
    assert len(sqlite_trial_runs(uri, experiment, sweep=SWEEP)) == 2 * len(CELLS) - 2


def test_a_store_that_is_not_an_sqlite_file_is_left_to_mlflow(tmp_path: Path):
    assert sqlite_trial_runs("http://127.0.0.1:5000", "1") is None
    assert sqlite_trial_runs(f"sqlite:///{tmp_path / 'missing.db'}", "1") is None
    (tmp_path / "other.db").write_bytes(b"not a database at all" * 100)
    assert sqlite_trial_runs(f"sqlite:///{tmp_path / 'other.db'}", "1") is None
