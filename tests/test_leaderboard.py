"""The leaderboard, read from a real MLflow store filled by a real sweep."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from benchmarks.ui_start import free_port
from rnnbench.analysis.importance import INTERACTIONS
from rnnbench.analysis.leaderboard import LeaderboardError, NothingToRank, build
from rnnbench.cli import app
from rnnbench.errors import UnknownTaskError
from rnnbench.report.leaderboard import markdown, pareto_front, publish, to_csv, to_html
from rnnbench.serve.ui import answers
from rnnbench.sweep import run_sweep
from rnnbench.sweep.reseed import config_from_params, reseed
from rnnbench.sweep.settings import SweepSettings
from rnnbench.training.config import build_task
from tests.conftest import TINY_TASK
from tests.pages import chromium, in_a_1280_pixel_browser, incomplete_rows

# One process builds the module's store (scripts/test: --dist loadgroup), not one per process.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("leaderboard-store")]


@pytest.fixture(scope="module")
def store(tmp_path_factory, ray_session) -> str:
    folder = tmp_path_factory.mktemp("board")
    settings = SweepSettings(
        task="adding", cells=["lstm", "rnn"], trials=5, epochs=3, task_options=dict(TINY_TASK), name="board",
        tracking_uri=f"sqlite:///{folder / 'mlflow.db'}", sweeps_dir=str(folder / "sweeps"),
        cache_dir=str(folder / "cache"), train={"batch_size": 32}, grace_period=3, max_concurrent=1,
        space_overrides={"depth": 1, "width": {"low": 8, "high": 32}},
    )  # fmt: skip
    run_sweep(settings)
    return settings.tracking_uri


def test_ranks_best_trial_per_cell(store):
    board = build(store)
    assert board.tasks() == ["adding"] and len(board.groups) == 1
    group = board.groups[0]
    assert group.setup.task == "adding" and dict(group.setup.options)["length"] == "16"
    entries = board.for_task("adding")
    assert {e.cell for e in entries} == {"lstm", "rnn"}
    assert group.single_runs or group.unsolved, "no reseeds yet: single runs"
    if group.unsolved:
        assert [e.rank for e in entries] == [None, None], "a group at chance is not ranked"
    else:
        assert sorted(e.rank for e in entries) in ([1, 2], [1, 1])
        assert entries[0].score >= entries[1].score
    for entry in entries:
        assert sum(entry.counts.values()) == 5
        assert entry.selection == "best_val_loss" and entry.plugin == f"rnnbench.plugins.{entry.cell}"
        assert entry.test_accuracy is not None and 0 <= entry.lrd_score <= 1
        assert entry.spread["n"] == entry.counts["completed"]
        assert entry.spread["q1"] <= entry.spread["median"] <= entry.spread["q3"]
        assert entry.config["depth"] == "1" and "lr" in entry.config
        assert entry.median_seconds > 0
        assert entry.importance is None and entry.importance_trials == entry.learned_trials
        assert entry.learned_trials <= entry.counts["completed"] < 20
        assert entry.n == 1 and entry.values == [entry.lrd_score] and entry.chance_p is not None
    for entry in build(store, min_trials=3).for_task("adding"):
        if entry.learned_trials >= 3:
            # Fractions of the variance (not normalised), the rest named: they sum to 1 with it.
            assert set(entry.importance) <= {"width", "clipping", "clip", "lr", INTERACTIONS}
            assert all(0 <= v <= 1 for v in entry.importance.values())
            assert math.isclose(sum(entry.importance.values()), 1.0, rel_tol=1e-6)
    by_accuracy = build(store, metric="test_accuracy", with_importance=False).for_task("adding")
    assert by_accuracy[0].test_accuracy >= by_accuracy[1].test_accuracy


def test_formats_carry_the_same_data(store):
    board = build(store, with_importance=False)
    result = CliRunner().invoke(
        app, ["leaderboard", "--tracking-uri", store, "--format", "json", "--no-plots"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    (group,) = data["groups"].values()
    assert group["setup"]["id"] == board.groups[0].setup.id and group["setup"]["task"] == "adding"
    assert [e["cell"] for e in group["entries"]] == [e.cell for e in board.for_task("adding")]
    assert group["entries"][0]["lrd_score"] == board.for_task("adding")[0].lrd_score
    for key in ("mean", "std", "n", "ci_low", "ci_high", "rank_label", "p_value", "chance_p"):
        assert key in group["entries"][0]
    assert isinstance(group["unsolved"], bool)
    text = markdown(board)
    assert (
        "## adding · adding-" in text and "| rank | cell | plugin |" in text and "Set-up: task adding" in text
    )
    assert len(to_csv(board).strip().splitlines()) == 3
    table = CliRunner().invoke(app, ["leaderboard", "--tracking-uri", store, "--no-plots", "--wide"])
    assert table.exit_code == 0 and "lstm" in table.stdout and "importance: n/a (" in table.stdout, (
        "importance below the minimum trials says so"
    )
    page = to_html(board)
    leaderboard = page.split('<table class="leaderboard">')[1].split("</table>")[0]
    assert leaderboard.count("<tr>") == 3, "the columns, one row per cell"
    assert '<table class="budget">' in page


def test_bad_input(store, tmp_path):
    with pytest.raises(
        LeaderboardError, match="unknown metric 'accuracy'; valid metrics: lrd_score, test_accuracy"
    ):
        build(store, metric="accuracy")
    with pytest.raises(UnknownTaskError, match="unknown task 'adds'"):
        build(store, task="adds")
    with pytest.raises(NothingToRank, match=r"no sweep trials .* for task 'copy'; tasks with trials: adding"):
        build(store, task="copy")
    with pytest.raises(NothingToRank, match="no MLflow store at"):
        build(f"sqlite:///{tmp_path / 'none.db'}")
    empty = CliRunner().invoke(app, ["leaderboard", "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}"])
    assert empty.exit_code == 0 and "Nothing to rank" in empty.stderr
    bad = CliRunner().invoke(app, ["leaderboard", "--tracking-uri", store, "--metric", "acc"])
    assert bad.exit_code == 2 and "valid metrics: lrd_score, test_accuracy" in bad.stderr


def test_reseed_gives_mean_and_std_and_ranks_by_the_mean(store, tmp_path):
    best = {e.cell: e for e in build(store, with_importance=False).for_task("adding")}
    from mlflow.tracking import MlflowClient

    params = MlflowClient(store).get_run(best["lstm"].run_id).data.params
    config = config_from_params(params)
    assert config.cell == "lstm" and config.task_options["length"] == 16 and config.epochs == 3
    runs = reseed("board", 2, store, cache_dir=str(tmp_path))
    assert len(runs) == 4 and {r.result.config.seed for r in runs} == {1000, 2000}
    assert reseed("board", 2, store, cache_dir=str(tmp_path)) == [], "the seeds it has are not trained again"
    client = MlflowClient(store)
    assert all(client.get_run(r.run_id).data.tags["model_uri"].startswith("models:/m-") for r in runs), (
        "each re-seeded run keeps its model"
    )
    board = build(store, with_importance=False)
    for entry in board.for_task("adding"):
        assert entry.reseed["n"] == 2 and entry.n == 2 and entry.seeds == 2
        stats = entry.reseed["lrd_score"]
        assert entry.score == stats["mean"] and stats["std"] >= 0
        assert entry.ci_low <= entry.score <= entry.ci_high
    assert not board.groups[0].single_runs
    assert "± " in markdown(board)
    assert sum(build(store, with_importance=False).for_task("adding")[0].counts.values()) == 5, (
        "re-seeded runs are not counted as trials"
    )


def test_publish_writes_a_page_that_loads_in_headless_chromium(store, tmp_path):
    board = build(store)
    written = publish(board, tmp_path / "site", ["Generated by the test suite."])
    names = {p.name for p in written}
    setup = board.groups[0].setup.id
    assert {"README.md", "index.html", f"{setup}-lrd-curves.png", f"{setup}-distribution.png",
            f"{setup}-cost.png", f"{setup}-learning-curves.png"} <= names  # fmt: skip
    readme = (tmp_path / "site" / "README.md").read_text()
    assert f"![{setup}-lrd-curves]({setup}-lrd-curves.png)" in readme
    assert f"{setup}-budget.png" in names and "Budget curves (Dodge et al. 2019)" in readme
    html_page = (tmp_path / "site" / "index.html").read_text()
    assert incomplete_rows(html_page) == [], "every row of every table as wide as its header"
    assert "<h2>Across set-ups</h2>" in html_page and "## Across set-ups" in readme
    if chromium() is not None:  # the page fits a 1,280-pixel screen
        seen = in_a_1280_pixel_browser(tmp_path / "site" / "index.html", tmp_path)
        assert seen["scroll"] <= seen["inner"] == 1280, "no sideways scroll on a 1,280-pixel screen"
        assert seen["decoded"] == seen["images"] >= 4 and seen["incomplete"] == 0, seen
    browser = chromium()
    if browser is None:
        pytest.skip(
            "Chromium is not installed (apt-get install chromium); the page was written but not loaded"
        )
    page = (tmp_path / "site" / "index.html").resolve().as_uri()
    flags = _chromium_flags(tmp_path)
    dom = subprocess.run([browser, *flags, "--dump-dom", page], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count('<table class="leaderboard">') == 1 and "lstm" in dom.stdout
    assert dom.stdout.count('src="data:image/png;base64,') >= 4, "LRD, distribution, cost, learning curves"
    for entry in board.entries:  # each row links to its model in the MLflow UI
        model_id = entry.model_uri.removeprefix("models:/")
        assert (
            f'<a href="http://127.0.0.1:5000/#/experiments/{board.experiment_id}/models/{model_id}">'
            in dom.stdout
        )
    errors = [
        line for line in dom.stderr.splitlines() if "CONSOLE" in line and ("Error" in line or "error" in line)
    ]
    assert not errors, errors


def test_pareto_front_keeps_the_points_nothing_cheaper_beats():
    points = [(3, 0.6), (1, 0.5), (2, 0.4), (3, 0.7), (5, 0.7), (8, 0.9), (8, 0.2)]
    assert pareto_front(points) == [(1, 0.5), (3, 0.7), (8, 0.9)]
    assert pareto_front([]) == [] and pareto_front([(2, 0.1)]) == [(2, 0.1)]


def test_ui_opens_the_sweeps_runs_table_with_the_ranking_metrics_in_headless_chromium(store, tmp_path):
    port = free_port()
    script = Path(sys.executable).parent / "rnnbench"
    process = subprocess.Popen([str(script), "ui", "--port", str(port), "--tracking-uri", store, "--sweep", "board"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip
    lines = []
    try:
        deadline = time.monotonic() + 120
        while not any("every trial by" in line for line in lines):
            assert time.monotonic() < deadline and process.poll() is None, f"the UI did not start: {lines}"
            lines.append(process.stdout.readline())
        said = "".join(lines)
        assert "MLflow UI ready in" in said and "Warning" not in said and "INFO" not in said, said
        url = (
            next(line for line in lines if "sweep board, trials by lrd_score:" in line)
            .split(": ", 1)[1]
            .strip()
        )
        assert url.startswith(
            f"http://127.0.0.1:{port}/#/experiments/1/runs?viewStateShareKey=rnnbench-board-"
        )
        experiment = MlflowClient(store).get_experiment("1")
        assert experiment.tags["mlflow.experimentKind"] == "custom_model_development", (
            "opens on the runs table"
        )
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium is None:
            pytest.skip(
                "Chromium is not installed (apt-get install chromium); the UI was started, not loaded"
            )
        dom = subprocess.run([chromium, *_chromium_flags(tmp_path), "--virtual-time-budget=30000",
                              "--window-size=1600,1000", "--dump-dom", url],
                             capture_output=True, text=True, timeout=180)  # fmt: skip
        assert dom.returncode == 0, dom.stderr[-2000:]
        columns = re.findall(r'data-testid="sort-header-([^"]+)"', dom.stdout)
        assert {"lrd_score", "test_accuracy"} <= set(columns), columns
        shown = set(re.findall(r">((?:lstm|rnn)-t\d+)<", dom.stdout))
        assert shown == {f"{cell}-t{k}" for cell in ("lstm", "rnn") for k in range(5)}, (
            "the sweep's ten trials"
        )
        assert "Sort: lrd_score" in dom.stdout
        with socket.socket() as other:  # bound to loopback only, not every interface
            other.settimeout(2)
            host = socket.gethostbyname(socket.gethostname())
            if not host.startswith("127."):
                assert other.connect_ex((host, port)) != 0
    finally:
        os.killpg(process.pid, 2)
        process.wait(timeout=30)
    assert not answers(f"http://127.0.0.1:{port}"), "Ctrl-C stops the server too"


def test_dashboard_serves_one_study_per_cell_with_the_trials_states(store, tmp_path):
    """optuna-dashboard's HTTP API on the sweep's journal: the studies, and each trial's state as MLflow
    records its status (completed: Complete, pruned: Pruned, diverged and failed: Fail)."""
    port = free_port()
    sweeps = str(Path(store.removeprefix("sqlite:///")).parent / "sweeps")
    script = Path(sys.executable).parent / "rnnbench"
    process = subprocess.Popen([str(script), "dashboard", "board", "--sweeps-dir", sweeps, "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                studies = json.loads(
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2).read()
                )
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, "the dashboard did not start"
                time.sleep(0.3)
        names = {s["study_name"]: s["study_id"] for s in studies["study_summaries"]}
        assert set(names) == {"board:lstm", "board:rnn"}
        expected = {"completed": "Complete", "pruned": "Pruned", "diverged": "Fail", "failed": "Fail"}
        for cell in ("lstm", "rnn"):
            study = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{names[f'board:{cell}']}",
                                                      timeout=10).read())  # fmt: skip
            states = sorted(t["state"] for t in study["trials"])
            runs = build(store, sweep="board", with_importance=False).for_task("adding")
            counts = next(e.counts for e in runs if e.cell == cell)
            assert states == sorted(expected[s] for s, n in counts.items() for _ in range(n)), (cell, states)
        # Read-only by default: optuna-dashboard's DELETE never reaches the journal --resume relies on.
        delete = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/studies/{names['board:lstm']}", method="DELETE"
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(delete, timeout=10)
        assert refused.value.code == 405
        again = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=10).read())
        assert {s["study_name"] for s in again["study_summaries"]} == {"board:lstm", "board:rnn"}
    finally:
        os.killpg(process.pid, 2)
        said = process.communicate(timeout=30)[0]
    assert f"http://127.0.0.1:{port}/dashboard" in said and "PED-ANOVA" in said and "read-only" in said
    assert "GET /api" not in said and "DELETE" not in said, "no access log unless --verbose"


def test_ctrl_c_while_the_dashboard_answers_a_request_stops_it():
    """wsgiref's request handler catches everything: a Ctrl-C that arrived while a response was being
    written was printed and swallowed, and the dashboard went on serving (CI, 2026-11-30). A request that
    takes seconds to answer is interrupted here; the command must stop once it is answered."""
    import signal
    import threading

    port = free_port()
    code = (
        "import time\n"
        "from rnnbench.serve import dashboard\n"
        "def slow(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    print('answering', flush=True)\n"
        "    time.sleep(3)\n"
        "    return [b'answered']\n"
        "dashboard.dashboard_app = lambda name, sweeps_dir, allow_writes: (slow, ['s:cell'])\n"
        f"dashboard.serve_dashboard('s', '.', '127.0.0.1', {port}, lambda text: print(text, flush=True))\n"
        "print('stopped', flush=True)\n"
    )
    process = subprocess.Popen([sys.executable, "-u", "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)  # fmt: skip
    answers: list[bytes] = []
    watchdog = threading.Timer(
        60, lambda: os.killpg(process.pid, signal.SIGKILL)
    )  # a hang fails, never blocks
    watchdog.start()
    try:
        assert "Ctrl-C to stop" in process.stdout.readline() and "PED-ANOVA" in process.stdout.readline()
        asking = threading.Thread(
            target=lambda: answers.append(
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30).read()
            )
        )
        asking.start()
        assert process.stdout.readline().strip() == "answering"
        os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C in a terminal: mid-request
        rest = process.communicate(timeout=20)[0]
        asking.join(30)
    finally:
        watchdog.cancel()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0 and rest.strip().endswith("stopped"), rest
    assert answers == [b"answered"], "the request being answered when Ctrl-C came is answered"


@pytest.mark.parametrize("begins", [True, False])
def test_ctrl_c_while_the_dashboards_thread_starts_stops_it(begins):
    """On a busy machine the serving thread answered a request before ``Thread.start()`` returned, and a
    Ctrl-C raised inside ``start()`` escaped the handler (CI, 2026-11-30). Here Ctrl-C arrives inside
    ``start()`` every time, and the thread begins or never does (``shutdown()`` would then wait forever):
    the command must stop cleanly either way."""
    port = free_port()
    begin = "super().start()" if begins else 'raise RuntimeError("can\'t start new thread")'
    code = (
        "import os, signal, threading\n"
        "from rnnbench.serve import dashboard\n"
        "class Interrupted(threading.Thread):\n"
        "    def start(self):\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        f"        {begin}\n"
        "dashboard.threading.Thread = Interrupted\n"
        "dashboard.dashboard_app = lambda name, sweeps_dir, allow_writes: (None, ['s:cell'])\n"
        f"dashboard.serve_dashboard('s', '.', '127.0.0.1', {port}, lambda text: None)\n"
        "print('stopped', flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "stopped", done.stdout + done.stderr


def test_dashboard_errors_name_the_sweep_or_the_missing_extra(store, tmp_path, monkeypatch):
    import builtins

    sweeps = str(Path(store.removeprefix("sqlite:///")).parent / "sweeps")
    result = CliRunner().invoke(app, ["dashboard", "nosuch", "--sweeps-dir", sweeps])
    assert result.exit_code == 2 and "no sweep named 'nosuch'" in result.output and "board" in result.output
    real_import = builtins.__import__

    def without_dashboard(name, *args, **kwargs):
        if name == "optuna_dashboard":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    broken = tmp_path / "sweeps" / "broken"
    broken.mkdir(parents=True)
    (broken / "sweep.json").write_bytes(b'{"name": "broken", "sett')
    result = CliRunner().invoke(app, ["dashboard", "broken", "--sweeps-dir", str(tmp_path / "sweeps")])
    assert result.exit_code == 2 and "sweep.json is not a sweep's state" in " ".join(result.output.split())
    (broken / "sweep.json").write_text(json.dumps({"name": "broken", "settings": {"cells": ["lstm"]}}))
    (broken / "optuna.journal").write_bytes(b'{"op_code": 0, "worker_id": "w"}\n{"op_code": 1, "stu')
    result = CliRunner().invoke(app, ["dashboard", "broken", "--sweeps-dir", str(tmp_path / "sweeps")])
    assert result.exit_code == 2 and "its last line was cut by a crash" in " ".join(result.output.split())
    warned = CliRunner().invoke(app, ["dashboard", "nosuch", "--sweeps-dir", sweeps, "--host", "0.0.0.0"])
    assert "Warning: binding 0.0.0.0 lets anyone who can reach this machine" in " ".join(
        warned.output.split()
    )
    monkeypatch.setattr(builtins, "__import__", without_dashboard)
    result = CliRunner().invoke(app, ["dashboard", "board", "--sweeps-dir", sweeps])
    assert result.exit_code == 2 and "pip install 'rnnbench[dashboard]'" in result.output


def test_the_dashboard_refuses_writes_unless_allowed(store):
    """The read-only guard answers every write method 405 itself; --allow-writes hands them to optuna-dashboard."""
    from wsgiref.util import setup_testing_defaults

    from rnnbench.serve.dashboard import dashboard_app

    sweeps = str(Path(store.removeprefix("sqlite:///")).parent / "sweeps")

    def call(wsgi, method: str) -> str:
        environ: dict = {"REQUEST_METHOD": method, "PATH_INFO": "/api/studies/987654"}
        setup_testing_defaults(environ)
        status = []
        b"".join(wsgi(environ, lambda s, headers, exc_info=None: status.append(s)))
        return status[0]

    guarded, studies = dashboard_app("board", sweeps)
    assert studies == ["board:lstm", "board:rnn"]
    for method in ("DELETE", "POST", "PUT", "PATCH"):
        assert call(guarded, method).startswith("405")
    assert call(guarded, "GET").startswith("404"), "reads reach optuna-dashboard (no study 987654)"
    writable, _ = dashboard_app("board", sweeps, allow_writes=True)
    assert not call(writable, "DELETE").startswith("405"), "with --allow-writes optuna-dashboard answers"


def _chromium_flags(tmp_path: Path) -> list[str]:
    return ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr", "--v=0"]  # fmt: skip


def test_cli_logs_plots_to_the_sweep_and_publishes_with_its_settings(store, tmp_path):
    from mlflow.tracking import MlflowClient

    result = CliRunner().invoke(
        app,
        ["leaderboard", "--tracking-uri", store, "--sweep", "board", "--publish", str(tmp_path / "pub"),
         "--note", "Reproduce: run the test."],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("rnnbench").experiment_id
    parent = client.search_runs([experiment], "tags.kind = 'sweep' and tags.sweep = 'board'")[0]
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "leaderboard")}
    setup = build(store, with_importance=False).groups[0].setup.id
    assert {f"leaderboard/{setup}-lrd-curves.png", f"leaderboard/{setup}-distribution.png"} <= logged
    page = (tmp_path / "pub" / "README.md").read_text()
    assert (
        "`rnnbench leaderboard --sweep board --metric lrd_score --tracking-uri sqlite:///mlflow.db --publish"
        in page
    )
    assert str(tmp_path) not in page and "/tmp/" not in page, "a published page names no absolute path"
    assert "Sweep `board`: task=adding" in page and "seed=0" in page and "trials=5" in page
    assert "Machine:" in page and "Reproduce: run the test." in page


def _without_generation_line(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if "Generated " not in line)


def test_export_round_trips_a_page_built_from_it_equals_the_page_built_from_mlflow(store, tmp_path):
    """`rnnbench export` writes the runs as parquet (datasets); `--from` builds the same page from it."""
    import datasets

    data = tmp_path / "data" / "board.parquet"
    datasets.enable_progress_bars()  # as in a fresh command: another test may have turned them off
    exported = CliRunner().invoke(
        app, ["export", "--tracking-uri", store, "--sweep", "board", "--out", str(data)]
    )
    assert exported.exit_code == 0, exported.output
    assert "Creating parquet" not in exported.stderr, "no progress bar for a one-batch write"
    # The module's reseed test ran first: its reseed runs are exported with the trials they re-train.
    assert re.search(
        r"Exported \d+ runs \(1 sweeps, 10 trials, \d+ reseeds\)", " ".join(exported.stderr.split())
    )
    rows = datasets.load_dataset("parquet", data_files=str(data), split="train")
    assert {"sweep", "trial"} <= set(rows["kind"]) <= {"sweep", "trial", "reseed"}
    assert set(rows["cell"]) <= {"", "lstm", "rnn", "?"} and {"lstm", "rnn"} <= set(rows["cell"])
    trial = next(r for r in rows if r["kind"] == "trial" and r["status"] == "completed")
    assert json.loads(trial["curves"])["val_loss"] and json.loads(trial["lrd_curve"])
    written = "".join([*rows["params"], *rows["tags"], *rows["store"]])
    assert str(tmp_path) not in written, "no path of this machine"
    pages = {}
    for name, extra in (("mlflow", ["--tracking-uri", store]), ("export", ["--from", str(data)])):
        built = CliRunner().invoke(
            app, ["leaderboard", *extra, "--publish", str(tmp_path / name), "--no-plots"]
        )
        assert built.exit_code == 0, built.output
        pages[name] = {p.name: p.read_bytes() for p in (tmp_path / name).iterdir()}
    assert pages["mlflow"].keys() == pages["export"].keys()
    for file, content in pages["mlflow"].items():
        if file.endswith(".png"):
            assert content == pages["export"][file], f"{file} differs"
        else:
            assert _without_generation_line(content.decode()) == _without_generation_line(
                pages["export"][file].decode()
            ), file
    missing = CliRunner().invoke(app, ["leaderboard", "--from", str(tmp_path / "nope.parquet")])
    assert missing.exit_code == 2 and "nope.parquet: no such file or folder" in missing.stderr
    (tmp_path / "bad.parquet").write_text("not parquet")
    bad = CliRunner().invoke(app, ["leaderboard", "--from", str(tmp_path / "bad.parquet")])
    assert bad.exit_code == 2 and "not a readable parquet file" in bad.stderr
    unknown = CliRunner().invoke(
        app, ["export", "--tracking-uri", store, "--sweep", "nope", "--out", str(data)]
    )
    assert unknown.exit_code == 2 and "no sweep named 'nope'" in unknown.stderr


def test_the_sweeps_run_carries_its_leaderboard_as_mlflow_tables_and_a_page(store, monkeypatch):
    """`rnnbench leaderboard --sweep NAME` (and every sweep's end) logs the rankings with mlflow.log_table and
    the page as HTML on the sweep's parent run: one click from the runs table."""
    import mlflow
    from mlflow.tracking import MlflowClient

    result = CliRunner().invoke(app, ["leaderboard", "--tracking-uri", store, "--sweep", "board"])
    assert result.exit_code == 0, result.output
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("rnnbench").experiment_id
    parent = client.search_runs([experiment], "tags.kind = 'sweep' and tags.sweep = 'board'")[0]
    setup = build(store, with_importance=False).groups[0].setup.id
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "leaderboard")}
    assert {
        f"leaderboard/{setup}.json",
        "leaderboard/index.html",
        f"leaderboard/{setup}-budget.png",
    } <= logged
    previous = mlflow.get_tracking_uri()
    # load_table searches the default store, not the client's; setting it also sets $MLFLOW_TRACKING_URI,
    # which the monkeypatch gives back as it was.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    mlflow.set_tracking_uri(store)
    try:
        table = client.load_table(experiment, f"leaderboard/{setup}.json", run_ids=[parent.info.run_id])
    finally:
        mlflow.set_tracking_uri(previous)
    assert sorted(table["cell"]) == ["lstm", "rnn"] and "verdict" in table.columns
    page = client.download_artifacts(parent.info.run_id, "leaderboard/index.html")
    assert incomplete_rows(open(page).read()) == []


def test_the_same_leaderboard_is_not_drawn_and_uploaded_twice(store):
    """The sweep's end attached its leaderboard; `rnnbench leaderboard --sweep` then finds the same one
    there (a fingerprint tag) and skips the plots, until the leaderboard differs."""
    from mlflow.tracking import MlflowClient

    from rnnbench.report.leaderboard import LOGGED_TAG, log_plots

    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("rnnbench").experiment_id
    parent = client.search_runs([experiment], "tags.kind = 'sweep' and tags.sweep = 'board'")[0].info.run_id
    board = build(store, sweep="board")
    log_plots(board, client, parent)
    key = client.get_run(parent).data.tags[LOGGED_TAG]
    assert log_plots(board, client, parent) == [], "the same leaderboard again: nothing drawn"
    other = build(store, sweep="board", metric="test_accuracy")
    assert log_plots(other, client, parent), "another leaderboard is drawn and attached"
    assert client.get_run(parent).data.tags[LOGGED_TAG] != key


class _FirstEpochOnly:
    """The store's runs, each history cut to its first epoch (a sweep of one-epoch trials)."""

    def __init__(self, runs) -> None:
        self._runs = runs

    def history(self, run_id: str, metric: str) -> list:
        return self._runs.history(run_id, metric)[:1]

    def __getattr__(self, name: str):
        return getattr(self._runs, name)


def test_a_plot_is_drawn_only_where_it_has_more_than_one_point(store, tmp_path):
    """A sweep of one cell, one trial of one epoch, gives each plot one point: the table holds it, so no
    plot is drawn for it (the sweep's tail drew four such plots); a second cell, or a second trial, brings
    them back."""
    from rnnbench.report.leaderboard import plots

    board = build(store, sweep="board", with_importance=False)
    group = board.groups[0]
    setup = group.setup.id

    def drawn(name: str) -> set[str]:
        return {p.name.removeprefix(f"{setup}-") for p in plots(board, tmp_path / name).get(setup, [])}

    assert {"distribution.png", "budget.png", "cost.png", "learning-curves.png"} <= drawn("all")

    for entry in group.entries:  # one completed trial, one seed, one epoch each
        entry.trial_values, entry.values = entry.trial_values[:1], entry.values[:1]
        entry.costs, entry.budget, entry.best_runs = entry.costs[:1], entry.budget[:1], entry.best_runs[:1]
    board.runs = _FirstEpochOnly(board.runs)
    cells = group.entries
    group.entries = cells[:1]
    lone = drawn("lone")
    assert lone <= {"lrd-curves.png"}, f"plots of a single point: {lone}"
    assert f"![{setup}-distribution]" not in markdown(board, plots(board, tmp_path / "page"))

    group.entries = cells[:2]  # a second cell: each plot compares two points
    assert {"distribution.png", "budget.png", "cost.png", "learning-curves.png"} <= drawn("two cells")
    group.entries = cells[:1]
    first = cells[0]
    first.trial_values = [
        first.trial_values[0],
        first.trial_values[0] - 0.1,
    ]  # a second trial of the one cell
    assert "distribution.png" in drawn("two trials")


@pytest.mark.parametrize(
    ("values", "base", "expected"),
    [
        ([0.15, 0.6], 10, {"0.2", "0.5"}),
        ([0.12, 5.0], 10, {"0.2", "0.5", "1", "2"}),
        ([17.0, 140.0], 10, {"20", "50", "100"}),
        ([3e3, 7e5], 10, {"10k", "100k"}),
        ([1.0, 4096.0], 2, {"1", "16", "1024", "4096"}),
    ],
)
def test_a_log_axis_is_labelled_in_plain_numbers_over_any_range(values, base, expected):
    """Decades alone left a training-time axis of 0.15-0.6 s without any label (the cost plot, 2026-11-30); a
    distance axis (base 2) reads 1024, not 1.024k."""
    from rnnbench.report.page import log_axis, new_figure, plain_number

    figure, axis = new_figure()
    axis.scatter(values, [0.0, 1.0])
    log_axis(axis, base=base, values=values)
    figure.canvas.draw()
    low, high = axis.get_xlim()
    shown = {
        label.get_text()
        for tick, label in zip(axis.get_xticks(), axis.get_xticklabels(), strict=True)
        if low <= tick <= high and label.get_text()
    }
    assert shown >= expected and not any("$" in text for text in shown), shown
    assert [plain_number(v) for v in (0.25, 40, 1500, 16384, 2e6, 1048576, 3e9)] == [
        "0.25",
        "40",
        "1500",
        "16.4k",
        "2M",
        "1.05M",
        "3G",
    ]


def _copy_of(store: str, folder: Path) -> str:
    folder.mkdir()
    shutil.copy(store.removeprefix("sqlite:///"), folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}"


def test_reseeds_trained_side_by_side_are_the_runs_trained_one_after_another(store, tmp_path, monkeypatch):
    """Reseeds trained in worker processes (``reseed_pool``) record what training them in this process
    records: the same runs, params, tags and metrics (all but times), each epoch's metrics timed within the
    run, and a model; this process trains none of them itself."""
    import rnnbench.sweep.reseed as reseed_module
    from rnnbench.sweep import reseed_pool

    apart_uri, here_uri = _copy_of(store, tmp_path / "apart"), _copy_of(store, tmp_path / "here")
    cache = str(tmp_path / "cache")
    monkeypatch.setattr(reseed_pool, "workers_for", lambda configs: 2)
    built = []
    with monkeypatch.context() as patched:
        patched.setattr(reseed_module, "run_tracked", lambda *a, **k: pytest.fail("trained in this process"))
        patched.setattr(
            reseed_module, "build_task", lambda config: built.append(config) or build_task(config)
        )
        apart = reseed("board", 3, apart_uri, cache_dir=cache)
    assert len(built) == 1, "the cells' reseeds share their data: one task built and checked for them all"
    monkeypatch.setattr(reseed_pool, "workers_for", lambda configs: 1)
    here = reseed("board", 3, here_uri, cache_dir=cache)
    assert len(apart) == len(here) >= 2
    timeless = ("rnnbench_version", "status", "kind", "reseed_of", "sweep", "cell", "task")
    for one, other in zip(apart, here, strict=True):
        a, h = MlflowClient(apart_uri).get_run(one.run_id), MlflowClient(here_uri).get_run(other.run_id)
        assert a.info.run_name == h.info.run_name and a.data.params == h.data.params
        assert {k: a.data.tags[k] for k in timeless} == {k: h.data.tags[k] for k in timeless}
        untimed = {k: v for k, v in a.data.metrics.items() if "second" not in k}
        assert untimed == {k: v for k, v in h.data.metrics.items() if "second" not in k} and untimed
        assert a.info.status == "FINISHED" and a.data.tags["model_uri"].startswith("models:/m-")
        history = MlflowClient(apart_uri).get_metric_history(one.run_id, "val_loss")
        assert len(history) == one.result.epochs_run
        assert all(a.info.start_time <= m.timestamp <= a.info.end_time for m in history)


def test_reseeds_on_other_data_get_their_own_task_checked_and_recorded(tmp_path, monkeypatch):
    """Side by side, the command builds one task per data identity, and records each run with its own."""
    import rnnbench.sweep.reseed as reseed_module
    from rnnbench.sweep import reseed_pool
    from rnnbench.sweep.reseed import Reseed, train_and_record
    from rnnbench.tracking.store import Store
    from rnnbench.training.config import TrainConfig

    monkeypatch.setattr(reseed_pool, "workers_for", lambda configs: 2)
    built = []
    monkeypatch.setattr(
        reseed_module, "build_task", lambda config: built.append(config) or build_task(config)
    )
    store = Store.open(f"sqlite:///{tmp_path / 'mlflow.db'}", "rnnbench")
    jobs = []
    for length in (16, 12):
        config = TrainConfig(cell="gru", task="adding", task_options={**TINY_TASK, "length": length}, epochs=1,
                             threads=1, cache_dir=str(tmp_path / "cache"))  # fmt: skip
        entry = type("Entry", (), {"cell": "gru"})()
        jobs += [Reseed(entry, k, replace(config, seed=k), None, {"kind": "reseed"}) for k in (1, 2)]
    runs = train_and_record(jobs, store)
    assert [c.task_options["length"] for c in built] == [16, 12]
    lengths = [MlflowClient(store.uri).get_run(run.run_id).data.params["task.length"] for run in runs]
    assert lengths == ["16", "16", "12", "12"]


def test_a_reseed_worker_s_failures_reach_the_store_as_in_this_process(tmp_path, monkeypatch):
    """In a worker, a cell that fails its check raises its own error and records nothing; one that
    raises while training is recorded as a FAILED run with the error, and TrainingFailed is raised."""
    from rnnbench.core.plugin_manager import load_plugin_file, unregister_plugin
    from rnnbench.errors import CellContractError
    from rnnbench.sweep import reseed_pool
    from rnnbench.sweep.reseed import Reseed, train_and_record
    from rnnbench.tracking.store import Store
    from rnnbench.tracking.tracked_run import TrainingFailed
    from rnnbench.training.config import TrainConfig
    from tests.conftest import TEST_PLUGINS

    monkeypatch.setattr(reseed_pool, "workers_for", lambda configs: 2)
    store = Store.open(f"sqlite:///{tmp_path / 'mlflow.db'}", "rnnbench")

    def jobs(cell: str) -> list[Reseed]:
        config = TrainConfig(cell=cell, task="adding", task_options=dict(TINY_TASK), epochs=2, threads=1,
                             cache_dir=str(tmp_path / "cache"))  # fmt: skip
        return [
            Reseed(type("Entry", (), {"cell": cell})(), k, config, None, {"kind": "reseed"}) for k in (1, 2)
        ]

    runs = MlflowClient(store.uri)
    for path, cell, error in (("wrong_shape.py", "last-step-only", CellContractError),
                              ("faulty_cells.py", "crash-after-3", TrainingFailed)):  # fmt: skip
        info = load_plugin_file(TEST_PLUGINS / path)  # the workers load it too (RNNBENCH_PLUGINS)
        try:
            with pytest.raises(error, match=r"last-step-only|simulated cell failure"):
                train_and_record(jobs(cell), store)
        finally:
            unregister_plugin(info.name)
        recorded = runs.search_runs([store.experiment_id], f"params.cell = '{cell}'")
        if error is CellContractError:
            assert recorded == [], "a cell that fails its check records no run"
        else:
            assert recorded and all(r.info.status == "FAILED" for r in recorded)
            assert "simulated cell failure" in recorded[0].data.tags["error"]


def test_a_reseed_worker_that_ends_without_an_answer_is_named_with_its_last_words(tmp_path):
    """A worker that dies (here: at its start, on a plugin file that is gone) is a WorkerDied naming its pid,
    its exit code and the last lines it wrote, not a hang or a bare pickle error."""
    from rnnbench.sweep.reseed_pool import WorkerDied, _Worker

    worker = _Worker([str(tmp_path / "gone.py")], tmp_path / "worker.log")
    try:
        worker.send(("device", "cpu"))
        with pytest.raises(
            WorkerDied,
            match=r"pid \d+\) ended with code 1 without an answer: .*PluginLoadError: .*gone\.py .*does not exist",
        ):
            worker.receive()
    finally:
        worker.end()


def test_a_reseed_whose_model_files_could_not_be_written_is_recorded_then_named(tmp_path):
    """As in this process: the run trained elsewhere is recorded FINISHED with its metrics and its times,
    and only then a TrackingError says that its model could not be logged, and why."""
    from rnnbench.sweep.reseed_pool import Trained
    from rnnbench.tracking.store import Store, TrackingError
    from rnnbench.tracking.tracked_run import record_trained
    from rnnbench.training.config import TrainConfig, build_task
    from rnnbench.training.loop import train

    config = TrainConfig(cell="rnn", task="adding", task_options=dict(TINY_TASK), epochs=1, threads=1,
                         cache_dir=str(tmp_path / "cache"))  # fmt: skip
    result = train(config)
    result.best_state = None
    ended = time.time() - 5
    trained = Trained(result, [], ended - 2, ended, model_error=OSError("No space left on device"))
    store = Store.open(f"sqlite:///{tmp_path / 'mlflow.db'}", "rnnbench")
    with pytest.raises(
        TrackingError, match=r"is recorded, but its model could not be logged .*No space left"
    ):
        record_trained(config, build_task(config), trained, tmp_path / "none", store, run_name="rnn-reseed1")
    (run,) = MlflowClient(store.uri).search_runs([store.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "rnn-reseed1"
    assert run.data.metrics["test_accuracy"] == pytest.approx(result.final_metrics()["test_accuracy"])
    assert (run.info.start_time, run.info.end_time) == (int((ended - 2) * 1000), int(ended * 1000))


def test_reseed_workers_fit_the_cpus_a_cgroup_gives(tmp_path):
    """A container's CPU cap (cgroup v2 ``cpu.max`` or v1's quota and period) bounds the workers, not the
    host's cores; no cap, or an unreadable one, leaves the CPUs this process may run on."""
    import os

    from rnnbench.sweep.reseed_pool import usable_cpus

    mine = float(len(os.sched_getaffinity(0)))
    (tmp_path / "none").mkdir()
    assert usable_cpus(tmp_path / "none") == mine
    for folder, files, cap in (
        ("v2", {"cpu.max": "100000 100000\n"}, 1.0),
        ("v2-max", {"cpu.max": "max 100000\n"}, mine),
        ("v1", {"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1.0),
        ("v1-off", {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, mine),
    ):
        for name, text in files.items():
            (tmp_path / folder / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / folder / name).write_text(text)
        assert usable_cpus(tmp_path / folder) == min(mine, cap), folder
