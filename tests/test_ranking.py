"""The leaderboard's science on hand-made MLflow runs: set-ups kept apart, seeds, Welch + Holm, chance."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rnnbench.analysis.leaderboard import LeaderboardError, build
from rnnbench.analysis.stats import Summary, holm, welch_p
from rnnbench.cli import app
from rnnbench.report.leaderboard import row, terminal_row
from rnnbench.tracking.recorder import RunRecorder
from tests.pages import incomplete_rows

ADDING = {"task.length": "100", "task.spread": "1.0", "task.train_size": "3000", "task.validation_size": "500",
          "task.test_size": "1000", "data_seed": "0"}  # fmt: skip


class Store:
    """A real sqlite MLflow store holding runs shaped as a sweep's trials and reseeds."""

    def __init__(self, tmp_path) -> None:
        self.uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        self.recorder = RunRecorder(self.uri, "rnnbench")
        self.client, self.experiment = self.recorder.client, self.recorder.experiment_id
        self.numbers: dict[tuple[str, str], int] = {}

    def trial(self, sweep: str, cell: str, accuracy: float, lrd: float | None = None, *, task: str = "adding",
              options: dict[str, str] = ADDING, status: str = "completed", chance: float = 0.0776,
              val_loss: float | None = None) -> str:  # fmt: skip
        number = self.numbers.get((sweep, cell), 0)
        self.numbers[(sweep, cell)] = number + 1
        tags = {"sweep": sweep, "cell": cell, "task": task, "optuna_trial": str(number), "status": status}
        run = self.client.create_run(self.experiment, tags=tags)
        params = {
            "cell": cell,
            "task": task,
            "metric": "val_loss",
            "plugin": f"p.{cell}",
            "depth": "1",
            **options,
        }
        for key, value in params.items():
            self.client.log_param(run.info.run_id, key, value)
        metrics = {"test_accuracy": accuracy, "best_val_loss": 1 - accuracy if val_loss is None else val_loss,
                   "chance": chance, "test_count": 1000.0}  # fmt: skip
        if lrd is not None:
            metrics["lrd_score"] = lrd
        for key, value in metrics.items():
            self.client.log_metric(run.info.run_id, key, value)
        return run.info.run_id

    def reseeds(self, best: str, accuracies: list[float], lrds: list[float] | None = None) -> None:
        for k, accuracy in enumerate(accuracies):
            tags = {"kind": "reseed", "reseed_of": best, "status": "completed", "cell": "?"}
            run = self.client.create_run(self.experiment, tags=tags)
            self.client.log_metric(run.info.run_id, "test_accuracy", accuracy)
            if lrds is not None:
                self.client.log_metric(run.info.run_id, "lrd_score", lrds[k])


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path)


def board_json(store: Store, *args: str) -> dict:
    result = CliRunner().invoke(
        app, ["leaderboard", "--tracking-uri", store.uri, "--format", "json", "--no-plots", *args]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def board_text(store: Store, fmt: str, *args: str) -> str:
    result = CliRunner().invoke(
        app, ["leaderboard", "--tracking-uri", store.uri, "--format", fmt, "--no-plots", *args]
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def entries(data: dict) -> dict[str, dict]:
    (group,) = data["groups"].values()
    return {e["cell"]: e for e in group["entries"]}


def test_a_significant_difference_ranks_apart_and_a_tie_shares_the_rank(store):
    lstm = store.trial("s", "lstm", 0.95, 0.9)
    gru = store.trial("s", "gru", 0.94, 0.9)
    rnn = store.trial("s", "rnn", 0.20, 0.1)
    store.reseeds(lstm, [0.95, 0.96, 0.94, 0.97, 0.95], [0.90, 0.92, 0.89, 0.93, 0.91])
    store.reseeds(gru, [0.94, 0.97, 0.93, 0.96, 0.95], [0.89, 0.93, 0.88, 0.92, 0.91])
    store.reseeds(rnn, [0.20, 0.22, 0.19, 0.21, 0.20], [0.10, 0.12, 0.09, 0.11, 0.10])
    data = board_json(store)
    (group,) = data["groups"].values()
    assert group["unsolved"] is False and group["single_runs"] is False and group["metric"] == "lrd_score"
    cells = entries(data)
    assert cells["lstm"]["rank_label"] == "=1" and cells["gru"]["rank_label"] == "=1", "no significant gap"
    assert cells["rnn"]["rank_label"] == "3"
    for entry in cells.values():
        assert entry["n"] == 5 and entry["ci_low"] < entry["mean"] < entry["ci_high"] and entry["std"] > 0
    leader = max(cells.values(), key=lambda e: e["mean"])
    others = [c for c in cells if c != leader["cell"]]
    for cell in others:
        assert cells[cell]["compared_with"] == leader["cell"]
    raw = [welch_p(_values(store, leader["cell"]), _values(store, c)) for c in others]
    assert [cells[c]["p_value"] for c in others] == pytest.approx(holm(raw))
    tie = next(c for c in others if c != "rnn")
    assert cells["rnn"]["p_value"] < 0.001 and cells[tie]["p_value"] > 0.05
    assert cells["lstm"]["chance_p"] < 0.05


def _values(store: Store, cell: str) -> list[float]:
    board = build(store.uri, with_importance=False)
    return next(e.values for e in board.entries if e.cell == cell)


def test_a_group_where_no_cell_beats_chance_is_unsolved_and_unranked(store):
    for cell, values in (("lstm", [0.12, 0.13, 0.11]), ("gru", [0.13, 0.12, 0.12])):
        best = store.trial(
            "c", cell, values[0], 0.01, task="copy", options={"task.length": "30"}, chance=0.125
        )
        store.reseeds(best, values, [0.0, 0.01, 0.0])
    (group,) = board_json(store)["groups"].values()
    assert group["unsolved"] is True
    assert all(e["rank"] is None and e["rank_label"] == "-" for e in group["entries"])
    assert any("unsolved at this budget" in note for note in group["notes"])
    text = CliRunner().invoke(app, ["leaderboard", "--tracking-uri", store.uri, "--format", "markdown",
                                    "--no-plots"]).stdout  # fmt: skip
    assert "unsolved at this budget" in text


def test_a_reseed_from_another_folder_names_the_data_files_the_sweep_gave_by_a_relative_path(
    store, tmp_path, monkeypatch
):
    """The runs keep a data file's path as given to the sweep: relative to the folder it ran in. From another
    folder the reseed stops before any work, naming the file and where to run it (it used to say the file
    "does not exist"); hub names and absolute paths are not files to look for."""
    store.trial("hs", "gru", 0.9, task="hf", options={"task.path": "data/train.csv", "task.data_files": "none",
                "task.train_size": "0", "task.validation_size": "0", "task.test_size": "0"})  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = CliRunner().invoke(app, ["reseed", "--sweep", "hs", "--seeds", "1", "--tracking-uri", store.uri])
    assert result.exit_code == 2, result.output
    assert f"sweep 'hs' names its data as given to it, relative to the folder it ran in, and this folder ({elsewhere})" \
        f" has no path=data/train.csv: run the reseed from the sweep's folder" in " ".join(result.stderr.split())  # fmt: skip
    assert not [
        r for r in store.client.search_runs([store.experiment]) if r.data.tags.get("kind") == "reseed"
    ]

    from rnnbench.sweep.reseed import files_not_here
    from rnnbench.training.config import TrainConfig

    def named(**options):
        return files_not_here(TrainConfig(cell="gru", task="hf", task_options=options))

    assert named(path="imdb") == [] and named(path=str(tmp_path / "gone.csv")) == []
    assert named(path="csv", data_files="train=a.csv,test=data/b.csv") == [
        "data_files=a.csv",
        "data_files=data/b.csv",
    ]
    (elsewhere / "a.csv").write_text("sequence,label\n")
    assert named(path="csv", data_files="train=a.csv,test=data/b.csv") == ["data_files=data/b.csv"]


def test_without_reseeds_ranks_are_single_runs_and_equal_values_share_a_rank(store):
    for cell, accuracy in (("peephole", 1.0), ("gru", 1.0), ("lstm", 1.0), ("rnn", 0.6)):
        store.trial("t", cell, accuracy, 1.0 if accuracy == 1.0 else 0.4, task="temporal_order",
                    options={"task.length": "60"}, chance=0.25)  # fmt: skip
    (group,) = board_json(store)["groups"].values()
    assert group["single_runs"] is True
    cells = {e["cell"]: e for e in group["entries"]}
    assert {cells[c]["rank_label"] for c in ("peephole", "gru", "lstm")} == {"=1"}
    assert cells["rnn"]["rank_label"] == "4" and cells["rnn"]["n"] == 1 and cells["rnn"]["p_value"] is None
    assert any("single runs" in note for note in group["notes"])


def test_two_lengths_and_two_data_files_are_four_set_ups(store):
    for length in ("50", "100"):
        store.trial("a" + length, "lstm", 0.9, 0.8, options={**ADDING, "task.length": length})
    for name in ("mnist1d.csv", "shuffled.csv"):
        store.trial("h" + name[0], "gru", 0.9, task="hf",
                    options={"task.path": f"/data/{name}", "task.sequence_column": "x"}, chance=0.1)  # fmt: skip
    data = board_json(store)
    setups = {g["setup"]["id"]: g for g in data["groups"].values()}
    assert len(setups) == 4, "different set-ups are never merged"
    lengths = sorted(
        g["setup"]["options"]["length"] for g in setups.values() if g["setup"]["task"] == "adding"
    )
    assert lengths == ["100", "50"]
    labels = sorted(g["setup"]["label"] for g in setups.values() if g["setup"]["task"] == "hf")
    assert labels == ["mnist1d", "shuffled"], "a data set is named by its file's stem"
    assert all("/data/" not in json.dumps(g["setup"]) for g in setups.values()), "no path shown"
    one = next(i for i, g in setups.items() if g["setup"]["label"] == "shuffled")
    assert list(board_json(store, "--setup", one)["groups"]) == [one]
    bad = CliRunner().invoke(
        app, ["leaderboard", "--tracking-uri", store.uri, "--setup", "nope", "--no-plots"]
    )
    assert bad.exit_code == 2 and "unknown set-up 'nope'; set-ups with trials:" in bad.stderr


def test_fixed_length_data_is_ranked_by_accuracy_with_lrd_na(store):
    for cell, accuracy in (("gru", 0.9), ("lstm", 0.8)):
        store.trial("m", cell, accuracy, task="mnist1d", options={"task.length": "40"}, chance=0.1)
    (group,) = board_json(store)["groups"].values()
    assert group["metric"] == "test_accuracy" and any("LRD is n/a" in n for n in group["notes"])
    markdown = CliRunner().invoke(app, ["leaderboard", "--tracking-uri", store.uri, "--format", "markdown",
                                        "--no-plots"]).stdout  # fmt: skip
    assert "| n/a |" in markdown


def test_baseline_tests_every_cell_against_the_chosen_cell(store):
    for cell, values in (
        ("lstm", [0.90, 0.91, 0.92]),
        ("gru", [0.95, 0.96, 0.97]),
        ("rnn", [0.5, 0.52, 0.51]),
    ):
        best = store.trial("b", cell, values[0], values[0])
        store.reseeds(best, values, values)
    cells = entries(board_json(store, "--baseline", "lstm", "--metric", "test_accuracy"))
    assert cells["gru"]["compared_with"] == "lstm" and cells["rnn"]["compared_with"] == "lstm"
    assert cells["lstm"]["p_value"] is None
    with pytest.raises(LeaderboardError, match="--baseline 'mgu' has no trials in set-up"):
        build(store.uri, baseline="mgu")


def test_importance_needs_enough_completed_trials(store):
    best = store.trial("i", "lstm", 0.9, 0.9)
    store.trial("i", "lstm", 0.5, 0.4, status="pruned")
    board = build(store.uri)
    (entry,) = board.entries
    assert entry.run_id == best and entry.importance is None and entry.importance_trials == 0
    from rnnbench.report.leaderboard import COLUMNS, row

    assert row(entry, board.groups[0])[COLUMNS.index("importance")] == "n/a (0 trials that learned < 20)"


def test_summary_and_holm_by_hand():
    summary = Summary.of([1.0, 2.0, 3.0])
    assert summary.mean == 2.0 and summary.std == 1.0 and summary.n == 3
    assert summary.high - summary.mean == pytest.approx(4.302653 / 3**0.5, rel=1e-5)  # t(0.975, 2)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert welch_p([1.0, 1.0], [1.0, 1.0]) == 1.0 and welch_p([1.0], [2.0]) == 1.0
    # No spread, no error to test against: constant unequal samples are no evidence of a difference.
    assert welch_p([1.0] * 5, [0.999] * 5) == 1.0


def test_a_cell_without_reseeds_beside_seeded_ones_is_shown_not_ranked(store):
    for cell, values in (("lstm", [0.90, 0.91, 0.92]), ("gru", [0.50, 0.52, 0.51])):
        best = store.trial("m", cell, values[0], values[0])
        store.reseeds(best, values, values)
    store.trial("m", "peephole", 0.99, 0.99)  # its sweep stopped before its reseeds
    (group,) = board_json(store, "--metric", "test_accuracy")["groups"].values()
    cells = {e["cell"]: e for e in group["entries"]}
    assert group["single_runs"] is False and group["unseeded"] == ["peephole"]
    assert cells["lstm"]["rank_label"] == "1" and cells["gru"]["rank_label"] == "2"
    assert cells["peephole"]["rank"] is None and cells["peephole"]["n"] == 1
    assert any("not ranked: peephole" in note for note in group["notes"])


def test_every_sweep_with_trials_in_a_set_up_is_listed_with_its_current_budget(store):
    """The published page lists each sweep behind a table, not only those of the best trials: a sweep
    resumed (or grown) into a set-up where another sweep holds every best trial is listed too, with the
    budget its `trials` tag says (a param cannot change when a sweep grows)."""
    from rnnbench.analysis.leaderboard import sweep_settings

    for name, trials in (("first", "2"), ("grown", "4")):
        parent = store.client.create_run(
            store.experiment, tags={"kind": "sweep", "sweep": name, "trials": trials}
        )
        store.client.log_param(parent.info.run_id, "trials", "2")
        store.client.log_param(parent.info.run_id, "task", "adding")
    store.trial("first", "lstm", 0.95, 0.9)
    store.trial("grown", "lstm", 0.40, 0.3)  # never the best of its cell
    board = build(store.uri)
    assert {e.sweep for e in board.entries} == {"first"}
    listed = {found["sweep"]: found["trials"] for found in sweep_settings(board)}
    assert listed == {"first": "2", "grown": "4"}


def test_every_cell_has_a_three_way_verdict_against_the_leader(store):
    """Better/worse from Welch (Holm), equivalent only from TOST within the margin, else inconclusive with
    the smallest difference the seeds could detect; '=' is explained as 'not separated', not equality."""
    for cell, values in (
        ("lstm", [0.900, 0.902, 0.899, 0.901, 0.898]),
        ("gru", [0.901, 0.899, 0.900, 0.902, 0.898]),
        ("peephole", [0.95, 0.80, 0.99, 0.70, 0.90]),
        ("rnn", [0.50, 0.52, 0.51, 0.49, 0.50]),
    ):
        best = store.trial("v", cell, values[0], values[0])
        store.reseeds(best, values, values)
    (group,) = board_json(store, "--metric", "test_accuracy")["groups"].values()
    cells = {e["cell"]: e for e in group["entries"]}
    leader = next(e for e in cells.values() if e["rank"] == 1 and e["verdict"] is None)
    assert leader["cell"] in ("lstm", "gru", "peephole")
    kinds = {c: e["verdict"]["kind"] for c, e in cells.items() if e["verdict"]}
    assert kinds["rnn"] == "worse" and cells["rnn"]["verdict"]["high"] < 0
    if leader["cell"] != "peephole":
        assert kinds["peephole"] == "inconclusive" and cells["peephole"]["verdict"]["detectable"] > 0.05
        assert kinds[{"lstm": "gru", "gru": "lstm"}[leader["cell"]]] == "equivalent"
    assert any("not a claim of equality" in note for note in group["notes"])
    assert any("equivalent (two one-sided tests within ±0.02)" in note for note in group["notes"])
    narrow = entries(board_json(store, "--metric", "test_accuracy", "--margin", "0.0005"))
    assert all(e["verdict"]["kind"] != "equivalent" for e in narrow.values() if e["verdict"]), (
        "a tight margin"
    )
    bad = CliRunner().invoke(app, ["leaderboard", "--tracking-uri", store.uri, "--margin", "2", "--no-plots"])
    assert bad.exit_code == 2 and "--margin must lie between 0 and 1" in bad.stderr


def test_the_search_and_the_retraining_are_labelled_apart(store):
    """The selected trial is optimistic: its numbers sit under 'search', the ranks under 're-training'."""
    best = store.trial("w", "gru", 0.61, 0.556)
    store.reseeds(best, [0.40, 0.41, 0.39], [0.39, 0.40, 0.41])
    other = store.trial("w", "lstm", 0.5, 0.5)
    store.reseeds(other, [0.30, 0.31, 0.29], [0.3, 0.31, 0.29])
    page = board_text(store, "html")
    assert (
        '<table class="leaderboard"><caption>re-training on seeds: the ranks rest on these</caption>' in page
    )
    assert "<caption>search: the selected trial is optimistic" in page
    search = page.split('<table class="search">')[1].split("</table>")[0]
    assert "<th>selected trial: test acc</th>" in search and ">0.610</td>" in search
    ranks = page.split('<table class="leaderboard">')[1].split("</table>")[0]
    assert "0.610" not in ranks and ">0.400 ± 0.010</td>" in ranks, "the ranks show the seeds only"
    assert incomplete_rows(page) == []
    markdown = board_text(store, "markdown")
    assert (
        "**re-training on seeds: the ranks rest on these**" in markdown
        and "| selected trial: test acc |" in markdown
    )


@pytest.mark.parametrize("columns", [80, 160])
def test_every_format_fits_and_splits_no_number_or_header(store, columns, monkeypatch):
    """The terminal table fits the width (COLUMNS off a terminal) with the ranking columns; --wide's details
    wrap between words; no number and no header is ever cut, in any format."""
    import re

    from rnnbench.report.leaderboard import COLUMNS, TERMINAL

    for cell, values in (
        ("lstm", [0.900, 0.902, 0.899]),
        ("peephole", [0.95, 0.80, 0.99]),
        ("rnn", [0.5, 0.52, 0.51]),
    ):
        best = store.trial("f", cell, values[0], values[0])
        store.reseeds(best, values, values)
    monkeypatch.setenv("COLUMNS", str(columns))
    numbers = re.compile(r"[-+]?\d+\.\d+")
    board = build(store.uri, metric="test_accuracy", with_importance=False)
    expected = {n for e in board.entries for cell in row(e, board.groups[0]) for n in numbers.findall(cell)}
    for flags in ([], ["--wide"]):
        out = CliRunner().invoke(app, ["leaderboard", "--tracking-uri", store.uri, "--no-plots", "--metric",
                                       "test_accuracy", *flags]).stdout  # fmt: skip
        lines = out.splitlines()
        assert max(len(line) for line in lines) <= columns, "fits the width"
        header = next(line for line in lines if line.lstrip().startswith("rank"))
        assert header.split() == " ".join(TERMINAL).split(), "every header whole, on one line"
        shown = set(numbers.findall(out))
        table_numbers = {n for e in board.entries for cell in terminal_row(e) for n in numbers.findall(cell)}
        assert table_numbers <= shown, "every number of the table whole"
        if flags:
            assert expected <= shown, "--wide shows every number of every column, none cut"
            assert "…" not in out
    for fmt in ("markdown", "html", "json", "csv"):
        out = CliRunner().invoke(app, ["leaderboard", "--tracking-uri", store.uri, "--no-plots", "--metric",
                                       "test_accuracy", "--format", fmt]).stdout  # fmt: skip
        if fmt == "json":  # numbers at full precision, the model URI whole
            assert {e["cell"] for g in json.loads(out)["groups"].values() for e in g["entries"]} == {
                "lstm", "peephole", "rnn"}  # fmt: skip
            continue
        assert expected <= set(numbers.findall(out)), fmt
        if fmt == "markdown":
            heads = [
                line
                for line in out.splitlines()
                if line.startswith("| rank |") or line.startswith("| cell |")
            ]
            named = [c.strip() for head in heads for c in head.strip("|").split(" | ")]
            assert set(COLUMNS) <= set(named), "every column in one of the tables, each header on one line"
