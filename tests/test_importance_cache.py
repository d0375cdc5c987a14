"""Importances kept by a sweep's run: read back while its trials are unchanged, recomputed once they change.

The store is the leaderboard benchmark's synthetic one (real MLflow, trial runs shaped as a sweep writes them)
cut to three of its nine cells: every board built with its importances recomputed fits fANOVA once per
cell (0.2-0.35 s each here), and these tests build several.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from benchmarks.leaderboard import CELLS as ALL_CELLS
from benchmarks.leaderboard import SWEEP, add_trials, open_store
from rnnbench.analysis.importance import CACHE_TAG
from rnnbench.analysis.leaderboard import build, cache_importances
from rnnbench.tracking.records import MlflowRuns

CELLS = ALL_CELLS[:3]


@pytest.fixture
def synthetic(tmp_path: Path) -> tuple:
    client, uri, experiment, parent = open_store(tmp_path, CELLS)
    add_trials(client, experiment, parent, 0, 6 * len(CELLS), random.Random(0), CELLS)
    return client, uri, experiment, parent


def _cached(client, parent: str) -> dict[str, dict]:
    tags = client.get_run(parent).data.tags
    return {k.removeprefix(CACHE_TAG): json.loads(v) for k, v in tags.items() if k.startswith(CACHE_TAG)}


def test_a_sweeps_importances_are_kept_read_back_and_replaced_when_its_trials_change(synthetic):
    client, uri, experiment, parent = synthetic
    assert cache_importances(MlflowRuns(uri, client, experiment), SWEEP) > 0
    kept = _cached(client, parent)
    assert kept and all(v["trials"] >= 2 for v in kept.values())
    assert cache_importances(MlflowRuns(uri, client, experiment), SWEEP) == 0, (
        "nothing changed: nothing written"
    )

    fresh = {
        e.cell: e.importance for e in build(uri, sweep=SWEEP, min_trials=2, recompute_importance=True).entries
    }
    read = build(uri, sweep=SWEEP, min_trials=2)
    assert {e.cell: e.importance for e in read.entries} == fresh, "the cache holds what fANOVA computes"

    # A doctored cache entry is what the board shows: proof that it was read rather than recomputed.
    peephole = next(e for e in read.entries if e.cell == "peephole")
    client.set_tag(parent, CACHE_TAG + peephole.importance_key,
                   json.dumps({"fractions": {"lr": 0.5}, "trials": peephole.importance_trials}))  # fmt: skip
    shown = {e.cell: e.importance for e in build(uri, sweep=SWEEP, min_trials=2).entries}
    assert shown["peephole"] == {"lr": 0.5}
    assert {
        e.cell: e.importance for e in build(uri, sweep=SWEEP, min_trials=2, recompute_importance=True).entries
    }["peephole"] == fresh["peephole"]
    # A reader asking for more trials than were behind the kept result gets none, as fANOVA would give.
    many = peephole.importance_trials + 1
    assert {e.cell: e.importance for e in build(uri, sweep=SWEEP, min_trials=many).entries}[
        "peephole"
    ] is None

    # Two more trials of peephole alone (its trials 6 and 7: the cells take the indices in turn): its
    # fingerprint changes, so it is recomputed, and the sweep's next end replaces its kept entries; the other
    # cells' entries stay as they were.
    for index in (6 * len(CELLS), 7 * len(CELLS)):
        add_trials(client, experiment, parent, index, index + 1, random.Random(index), CELLS)
    grown = {e.cell: e for e in build(uri, sweep=SWEEP, min_trials=2).entries}
    assert grown["peephole"].importance != {"lr": 0.5}
    assert grown["peephole"].importance_key != peephole.importance_key
    others = {cell: entry.importance_key for cell, entry in grown.items() if cell != "peephole"}
    assert others == {e.cell: e.importance_key for e in read.entries if e.cell != "peephole"}
    cache_importances(MlflowRuns(uri, client, experiment), SWEEP)
    after = _cached(client, parent)
    assert peephole.importance_key not in after and grown["peephole"].importance_key in after
    assert all(after[key] == kept[key] for key in others.values()), "the other cells' kept entries stay"
    assert len(after) == len(kept)


def test_the_leaderboard_command_reads_the_cache_or_recomputes_on_request(synthetic, run_cli):
    client, uri, experiment, _ = synthetic
    cache_importances(MlflowRuns(uri, client, experiment), SWEEP)
    for extra in ([], ["--recompute-importance"]):
        done = run_cli("leaderboard", "--tracking-uri", uri, "--sweep", SWEEP, "--min-trials", "2",
                       "--no-plots", "--format", "json", *extra)  # fmt: skip
        assert done.returncode == 0, done.stderr
        groups = json.loads(done.stdout)["groups"]
        entries = [e for g in groups.values() for e in g["entries"]]
        assert {e["cell"] for e in entries} == set(CELLS)
        assert all(e["importance"] for e in entries if e["importance_trials"] >= 2)
