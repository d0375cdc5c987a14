"""Fault injection: trials that raise, diverge or lose their worker, a killed driver, two sweeps on one
store, bad plugins, bad sweep files, an unwritable or full store, and a load of 100 trials.

Each case checks that the sweep finishes (or stops with a clear error), that MLflow and Optuna agree
with what happened, and that no completed result is lost. Run alone with ``pytest -m faults``.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from rnnbench.analysis.leaderboard import build
from rnnbench.core.plugin_manager import load_plugin_file, unregister_plugin
from rnnbench.errors import RnnbenchError
from rnnbench.report.leaderboard import markdown
from rnnbench.sweep import run_sweep
from rnnbench.sweep.search import FINISHED
from rnnbench.sweep.settings import SweepSettings, check_values, load_sweep_file, validate
from tests.conftest import TEST_PLUGINS, TINY_TASK
from tests.test_sweep import PACED, UNPACED, cli, optuna_trials, trial_runs, wait_for_a_finished_trial

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def sweep_settings(tmp_path: Path, name: str, cells: list[str], **overrides) -> SweepSettings:
    # One trial at a time unless a test says otherwise (tests.test_sweep.settings says why).
    values = dict(
        task="adding", cells=cells, trials=2, epochs=2, task_options=dict(TINY_TASK), name=name,
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", sweeps_dir=str(tmp_path / "sweeps"),
        cache_dir=str(tmp_path / "cache"), train={"batch_size": 32}, space_overrides={"depth": 1, "width": 8},
        max_concurrent=1,
    )  # fmt: skip
    values.update(overrides)
    return SweepSettings(**values)


@contextlib.contextmanager
def file_plugin(path: Path):
    """Load a one-file plugin (workers load it too, through RNNBENCH_PLUGINS) for one test."""
    info = load_plugin_file(path)
    try:
        yield info
    finally:
        unregister_plugin(info.name)


def by_trial(runs: list) -> dict[int, object]:
    numbers = [int(r.data.tags["optuna_trial"]) for r in runs]
    assert len(numbers) == len(set(numbers)), f"duplicate MLflow runs for trials {sorted(numbers)}"
    return dict(zip(numbers, runs, strict=True))


# 1 and 2 --------------------------------------------------------------------------------------------


def test_raising_and_diverging_trials_are_recorded_and_the_sweep_goes_on(tmp_path, ray_session):
    s = sweep_settings(tmp_path, "f12", ["crash-after-3", "nan-after-3", "gru"])
    with file_plugin(TEST_PLUGINS / "faulty_cells.py"):
        result = run_sweep(s)
    uri = result.tracking_uri
    crashed = by_trial(trial_runs(uri, "f12", "crash-after-3"))
    assert sorted(crashed) == [0, 1]
    for run in crashed.values():
        assert run.info.status == "FAILED" and run.data.tags["status"] == "failed"
        assert "RuntimeError: simulated cell failure at call 4" in run.data.tags["error"]
        assert run.data.tags["attempts"] == "1", "an exception is a result: Ray does not retry it"
    diverged = by_trial(trial_runs(uri, "f12", "nan-after-3"))
    assert sorted(diverged) == [0, 1]
    for run in diverged.values():
        assert run.data.tags["status"] == "diverged" and run.info.status == "FINISHED"
        assert int(run.data.tags["diverged_step"]) == 4 and run.data.metrics["diverged_step"] == 4
    for cell in ("crash-after-3", "nan-after-3"):
        states = [t.state for t in optuna_trials(result.folder, f"f12:{cell}")]
        assert states == [TrialState.FAIL, TrialState.FAIL], "the sampler is told, not left waiting"
        assert result.counts[cell]["completed"] == 0
    assert all(t.state in FINISHED for t in optuna_trials(result.folder, "f12:gru"))
    assert result.counts["gru"]["completed"] + result.counts["gru"]["pruned"] == 2
    board = build(uri, sweep="f12", with_importance=False)
    ranked = {e.cell: e for e in board.for_task("adding")}
    # The only cell with a completed trial: first, unless nothing beat chance on this tiny budget.
    assert ranked["gru"].run_id and (ranked["gru"].rank == 1 or board.groups[0].unsolved)
    for cell, status in (("crash-after-3", "failed"), ("nan-after-3", "diverged")):
        assert ranked[cell].run_id == "" and ranked[cell].counts[status] == 2, "counted, never ranked"
        assert ranked[cell].rank is None
    page = markdown(board)
    missing = next(
        line for line in page.splitlines() if line.startswith("No completed trial, so not in the table:")
    )
    assert "crash-after-3 (2 failed)" in missing and "nan-after-3 (2 diverged)" in missing
    assert "| crash-after-3 |" not in page and "| gru |" in page, "no ranked-looking row of dashes"


# 3 ----------------------------------------------------------------------------------------------------


def test_killed_worker_is_retried_without_duplicate_runs(tmp_path, ray_session):
    plugin = tmp_path / "worker_killer.py"
    marker = tmp_path / "killed-once"
    template = (TEST_PLUGINS / "worker_killer.py").read_text()
    plugin.write_text(template.replace('MARKER = "/nonexistent/marker"', f"MARKER = {str(marker)!r}"))
    # Killed at its 11th batch: in epoch 2, after epoch 1's checkpoint (8 batches an epoch).
    # No ASHA (grace_period >= epochs): a rung at epoch 2 could stop a resumed kill-always trial before
    # its second kill.
    s = sweep_settings(tmp_path, "f3", ["kill-once", "kill-always"], trials=2, epochs=3, max_failures=1,
                       grace_period=3)  # fmt: skip
    with file_plugin(plugin):
        result = run_sweep(s)
    assert marker.exists(), "a worker was killed"
    once = by_trial(trial_runs(result.tracking_uri, "f3", "kill-once"))
    assert sorted(once) == [0, 1], "every trial exactly once, the retried one included"
    assert sorted(r.data.tags["attempts"] for r in once.values()) == ["1", "2"]
    assert all(r.data.tags["status"] in ("completed", "pruned") for r in once.values())
    retried = next(r for r in once.values() if r.data.tags["attempts"] == "2")
    assert retried.data.tags["resumed_from_epoch"] == "1", "continued from its checkpoint, not from epoch 1"
    client = MlflowClient(result.tracking_uri)
    steps = [m.step for m in client.get_metric_history(retried.info.run_id, "val_loss")]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 2, "each epoch once, in the same run"
    assert all(t.state in FINISHED for t in optuna_trials(result.folder, "f3:kill-once"))
    always = by_trial(trial_runs(result.tracking_uri, "f3", "kill-always"))
    assert sorted(always) == [0, 1]
    for run in always.values():
        assert run.info.status == "FAILED" and run.data.tags["attempts"] == "2", "max_failures=1: one retry"
        assert "worker failed 2 time(s)" in run.data.tags["error"]
    assert [t.state for t in optuna_trials(result.folder, "f3:kill-always")] == [TrialState.FAIL] * 2


# 4 ----------------------------------------------------------------------------------------------------


def test_killed_driver_resumes_to_exact_counts(tmp_path, ray_address):
    # Paced trials (at least 4 s each on any machine) leave time to kill while one runs.
    args = ["sweep", "--cells", "paced-rnn,paced-gru", "--trials", "3", "--epochs", "3", "--length", "12",
            "--name", "k1", "-o", "train_size=64", "-o", "validation_size=32", "-o", "test_size=32", "--json",
            "--address", ray_address]  # fmt: skip
    process = cli(tmp_path, *args, extra_env=PACED)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    deadline = time.monotonic() + 300
    finished_before_kill: list = []
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.3)
        if (tmp_path / "mlflow.db").exists():
            try:
                runs = trial_runs(uri, "k1")
            except Exception:  # the store is still being created
                continue
            finished_before_kill = [r for r in runs if r.info.status == "FINISHED"]
            running = [r for r in runs if r.info.status == "RUNNING"]
            if finished_before_kill and running:
                break
    exited = process.poll()
    with contextlib.suppress(ProcessLookupError):  # the group is gone already if the sweep ended
        os.killpg(process.pid, signal.SIGKILL)  # the driver and its whole process group, with no clean-up
    _, err = process.communicate()
    assert exited is None, f"the sweep ended before it could be killed: {err[-3000:]}"
    assert finished_before_kill, f"the sweep never got going: {err[-3000:]}"
    assert len(finished_before_kill) < 6

    resumed = cli(tmp_path, "sweep", "--resume", "k1", "--json", "--address", ray_address, extra_env=UNPACED)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    for cell in ("paced-rnn", "paced-gru"):
        runs = trial_runs(uri, "k1", cell)
        assert len(runs) == 3, f"{cell}: exactly the requested trials, no duplicates"
        assert sorted(int(r.data.tags["optuna_trial"]) for r in runs) == [0, 1, 2]
        assert all(r.info.status in ("FINISHED", "FAILED") for r in runs)
        trials = optuna_trials(tmp_path / "rnnbench-sweeps" / "k1", f"k1:{cell}")
        assert len(trials) == 3 and all(t.state in FINISHED for t in trials)
    kept = {r.info.run_id for r in trial_runs(uri, "k1")}
    assert {r.info.run_id for r in finished_before_kill} <= kept, "finished trials survive the kill"
    assert json.loads(out)["name"] == "k1"


# 5 ----------------------------------------------------------------------------------------------------


def test_two_sweeps_write_to_one_sqlite_store_at_once(tmp_path, ray_address):
    common = ["--cells", "gru,rnn", "--trials", "2", "--epochs", "2", "--length", "16", "--max-concurrent", "1",
              "-o", "train_size=256", "-o", "validation_size=64", "-o", "test_size=128", "--json",
              "--address", ray_address]  # fmt: skip
    # Neither exists when both start: both set up the same new store at the same moment.
    processes = [cli(tmp_path, "sweep", "--name", name, *common) for name in ("left", "right")]
    outputs = [p.communicate(timeout=600) for p in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err[-3000:]
        assert "database is locked" not in err
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for name in ("left", "right"):
        for cell in ("gru", "rnn"):
            runs = by_trial(trial_runs(uri, name, cell))
            assert sorted(runs) == [0, 1], f"{name}/{cell}: every run recorded once"
            assert all(r.info.status in ("FINISHED", "FAILED") for r in runs.values())
            assert len(optuna_trials(tmp_path / "rnnbench-sweeps" / name, f"{name}:{cell}")) == 2
    client = MlflowClient(uri)
    parents = client.search_runs(
        [client.get_experiment_by_name("rnnbench").experiment_id], "tags.kind = 'sweep'"
    )
    assert sorted(r.data.tags["sweep"] for r in parents) == ["left", "right"]
    assert all(r.info.status == "FINISHED" for r in parents)


def test_processes_opening_a_new_store_at_once_set_it_up_once(tmp_path):
    """A sweep, a leaderboard, a test polling the store: MLflow creates a new store's tables on first
    use, and processes doing that at once fail ("table ... already exists") unless they take turns."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = f"from rnnbench.tracking.store import open_client; open_client({uri!r}).search_experiments()"
    openers = [
        subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(4)
    ]
    for opener in openers:
        _, err = opener.communicate(timeout=300)
        assert opener.returncode == 0, err[-2000:]


def test_ctrl_c_while_a_new_store_is_set_up_leaves_no_broken_store(tmp_path, monkeypatch):
    """MLflow's schema migrations on sqlite are not atomic: a Ctrl-C among them used to leave an
    ``mlflow.db`` no later run could open ("table _alembic_tmp_experiments already exists")."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from rnnbench.tracking.store import STORE_TEMPLATE_ENV, open_client

    monkeypatch.setenv(STORE_TEMPLATE_ENV, "0")  # the migrations run here, not a copy of their result

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    seen = []

    def interrupt_mid_migration(conn, cursor, statement, *args):
        seen.append(statement)
        if "_alembic_tmp" in statement:
            raise KeyboardInterrupt

    event.listen(Engine, "before_cursor_execute", interrupt_mid_migration)
    try:
        with pytest.raises(KeyboardInterrupt):
            open_client(uri)
    finally:
        event.remove(Engine, "before_cursor_execute", interrupt_mid_migration)
    assert any("_alembic_tmp" in s for s in seen), "the interruption came after the migrations"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db.lock"], "a half-built store is left"
    client = open_client(uri)  # the next run sets the store up from scratch
    assert [e.name for e in client.search_experiments()] == ["Default"]


def test_a_new_store_copied_from_the_kept_empty_one_is_the_store_mlflow_builds(tmp_path, monkeypatch):
    """New stores start from an empty store this MLflow version migrated once: the same tables, MLflow
    accepts it, its Default experiment under the new store's folder; a damaged copy is replaced."""
    import sqlite3

    from rnnbench.tracking.store import STORE_TEMPLATE_ENV, open_client, store_template

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    template = store_template()
    assert template is not None and not template.exists()

    def schema(path: Path) -> list:  # tables, indexes and columns (sqlite keeps each table's SQL as typed)
        with sqlite3.connect(path) as db:
            names = sorted(db.execute("select type, name from sqlite_master").fetchall())
            columns = {
                n: db.execute(f"pragma table_info('{n}')").fetchall() for t, n in names if t == "table"
            }
            version = db.execute("select version_num from alembic_version").fetchall()
        return [names, columns, version]

    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    open_client(f"sqlite:///{tmp_path / 'a' / 'mlflow.db'}")  # migrates, and keeps the result
    assert template.is_file()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "b")
    client = open_client(f"sqlite:///{tmp_path / 'b' / 'mlflow.db'}")  # copied
    assert schema(tmp_path / "b" / "mlflow.db") == schema(tmp_path / "a" / "mlflow.db")
    assert client.get_experiment("0").artifact_location == f"{tmp_path / 'b' / 'mlruns'}/0"
    client.create_experiment("works")
    template.write_bytes(b"not a database" * 100)
    open_client(f"sqlite:///{tmp_path / 'b' / 'other.db'}").create_experiment("works too")
    assert schema(template) == schema(tmp_path / "a" / "mlflow.db"), "the damaged copy was rebuilt"
    monkeypatch.setenv(STORE_TEMPLATE_ENV, "0")
    assert store_template() is None


# 6 ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plugin", "cell", "message"),
    [
        (
            "wrong_shape.py",
            "last-step-only",
            "cell 'last-step-only' from plugin {path} broke the cell contract: input (batch=3, time=4, 2) "
            "with hidden_size=5 gave shape (3, 5), expected (3, 4, 5)",
        ),
        (
            "broken_import.py",
            "gru",
            "plugin file {path} (from --plugin or RNNBENCH_PLUGINS) failed to import",
        ),
        ("clash.py", "gru", "cell 'gru' is registered twice: first by plugin 'rnnbench.plugins.gru'"),
    ],
)
def test_bad_plugin_fails_the_sweep_before_any_trial(tmp_path, plugin, cell, message):
    sources = {
        "broken_import.py": "import rnnbench_no_such_module\n",
        "clash.py": "import rnnbench\nfrom torch import nn\n\n\n@rnnbench.hookimpl\ndef register_cells(register):\n"
        "    register('gru', lambda **k: nn.GRU(batch_first=True, input_size=k['input_size'], "
        "hidden_size=k['hidden_size']), description='x', reference='x')\n",
    }
    path = tmp_path / plugin
    path.write_text(sources.get(plugin) or (TEST_PLUGINS / plugin).read_text())
    started = time.monotonic()
    process = cli(tmp_path, "--plugin", str(path), "sweep", "--cells", cell, "--trials", "2", "--name", "bad",
                  "--length", "16")  # fmt: skip
    _, err = process.communicate(timeout=300)
    assert process.returncode == 2, err[-2000:]
    assert message.format(path=path.resolve()) in " ".join(err.split())
    assert "Traceback" not in err
    assert not (tmp_path / "rnnbench-sweeps" / "bad" / "optuna.journal").exists(), "no trial started"
    assert not (tmp_path / "mlflow.db").exists(), "no run recorded"
    assert time.monotonic() - started < 120


def test_other_plugins_keep_working_beside_a_broken_one(tmp_path, run_cli):
    """A plugin the user names must load; a broken installed one is disabled (tests/test_plugins.py)
    while the rest keep working; a file plugin's cell that breaks the contract does not stop the others."""
    env = {
        "RNNBENCH_PLUGINS": os.pathsep.join(
            [str(TEST_PLUGINS / "wrong_shape.py"), str(TEST_PLUGINS / "mgu.py")]
        )
    }
    listed = run_cli("cells", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert {"last-step-only", "mgu", "lstm"} <= {c["name"] for c in json.loads(listed.stdout)}
    assert run_cli("check-cell", "mgu", env=env).returncode == 0
    bad = run_cli("check-cell", "last-step-only", env=env)
    assert bad.returncode == 1 and "output shape" in bad.stdout


# 7 ----------------------------------------------------------------------------------------------------

KEYS = ["task", "cells", "trials", "space", "seed", "epochs", "length", "cpus_per_trial", "gpus_per_trial",
        "max_concurrent", "metric", "grace_period", "reduction_factor", "max_failures", "name", "train",
        "task_options", "space_overrides", "trails", "Cells", ""]  # fmt: skip
scalars = st.one_of(
    st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.booleans(),
    st.text(max_size=12), st.sampled_from(["all", "lstm,gru", "adding", "val_loss", "default"]),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from([*KEYS, "width", "lr"]), inner, max_size=3)
    ),
    max_leaves=6,
)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if value != value
            else ("inf" if value > 0 else "-inf")
            if abs(value) == float("inf")
            else repr(value)
        )
    if isinstance(value, (int, str)):
        return json.dumps(value) if isinstance(value, str) else str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


def _check_file(path: Path) -> None:
    """What ``rnnbench sweep FILE`` does with a file before it needs a cluster: never anything but
    SweepSettings or a domain error whose message names the file."""
    try:
        settings_ = SweepSettings(**load_sweep_file(path))
        validate(settings_, f"sweep file {path}")
    except RnnbenchError as exc:
        assert str(exc) and "Traceback" not in str(exc)
        assert "sweep file" in str(exc) or "cell" in str(exc), str(exc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=st.dictionaries(st.sampled_from(KEYS), values, max_size=6))
def test_any_sweep_file_gives_settings_or_a_clear_error(tmp_path, document):
    path = tmp_path / "sweep.toml"
    path.write_text("\n".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in document.items()) + "\n")
    _check_file(path)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=200) | st.text(max_size=200))
def test_any_bytes_as_a_sweep_file_give_a_clear_error(tmp_path, content):
    path = tmp_path / "sweep.toml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    _check_file(path)


@settings(max_examples=200, deadline=None)
@given(raw=st.dictionaries(st.sampled_from(KEYS), values, max_size=6))
def test_any_flag_values_give_settings_or_a_clear_error(raw):
    """Flags go through the same checks as file keys (check_values with where='flags')."""
    try:
        validate(SweepSettings(**check_values(raw, "flags")), "flags")
    except RnnbenchError as exc:
        assert str(exc)


def test_bad_sweep_files_through_the_cli_never_show_a_traceback(tmp_path):
    for content in (
        "\x00\xff",
        "cells = [1, 2]\n",
        "trials = 1e400\n",
        "[train]\nlr = 'fast'\n",
        "task = 'x'\n",
    ):
        (tmp_path / "sweep.toml").write_text(content, errors="surrogateescape")
        process = cli(tmp_path, "sweep", "sweep.toml")
        _, err = process.communicate(timeout=120)
        assert process.returncode == 2 and "Traceback" not in err and "Error:" in err, (content, err[-1500:])


# 8 ----------------------------------------------------------------------------------------------------

UNWRITABLE = Path("/sys/fs")  # exists; no process may create files there, root included


def _unwritable() -> bool:
    try:
        (UNWRITABLE / "rnnbench-probe").touch()
    except OSError:
        return True
    return False


@pytest.mark.skipif(not _unwritable(), reason=f"{UNWRITABLE} is writable on this machine")
@pytest.mark.parametrize("command", ["sweep", "train"])
def test_unwritable_tracking_location_is_refused_before_any_work(tmp_path, command):
    uri = f"sqlite:///{UNWRITABLE / 'mlflow.db'}"
    args = ["--cells", "gru", "--trials", "1"] if command == "sweep" else ["--cell", "gru"]
    process = cli(tmp_path, command, *args, "--task", "adding", "--length", "16", "--tracking-uri", uri)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 2 and "Traceback" not in err
    assert f"tracking URI {uri}: the store cannot be written there" in " ".join(err.split())
    assert not (tmp_path / "rnnbench-sweeps").exists()


def _disk_full() -> None:
    """In the child before it runs: writes beyond 8 KiB fail (EFBIG), as on a full disk."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))


def test_full_tracking_location_gives_a_clear_error_and_keeps_the_store(tmp_path):
    from rnnbench.tracking.tracked_run import run_tracked
    from rnnbench.training.config import TrainConfig

    args = ["train", "--cell", "gru", "--task", "adding", "--length", "16", "--train-size", "256",
            "--validation-size", "64", "--test-size", "128", "--epochs", "2", "--width", "8"]  # fmt: skip
    # The store to keep, with a finished run in it, made in this process; its task data are in the cache
    # the command reads (cli's), so that on the full disk only the store's writes fail.
    options = {"length": 16, "train_size": 256, "validation_size": 64, "test_size": 128}
    config = TrainConfig(cell="gru", task="adding", epochs=2, width=8, threads=1, task_options=options,
                         cache_dir=str(tmp_path / "cache"))  # fmt: skip
    kept = run_tracked(config, f"sqlite:///{tmp_path / 'mlflow.db'}")

    second = cli(tmp_path, *args, preexec_fn=_disk_full)
    _, err = second.communicate(timeout=300)
    assert second.returncode == 2, err[-2000:]
    assert "Traceback" not in err
    assert f"tracking URI sqlite:///{tmp_path / 'mlflow.db'}: could not record" in " ".join(err.split())
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        assert db.execute("pragma integrity_check").fetchall() == [("ok",)], "the store is not corrupted"
    run = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(kept.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["test_accuracy"] == kept.result.test_accuracy


def test_a_full_disk_under_the_task_cache_is_a_clear_error_naming_the_folder(tmp_path):
    """The task's data are written to their cache before anything trains: on a full disk that write fails,
    and the command says where, once, instead of datasets' traceback."""
    process = cli(tmp_path, "train", "--cell", "rnn", "--task", "adding", "--length", "16", "--train-size", "256",
                  "--epochs", "1", "--width", "8", preexec_fn=_disk_full)  # fmt: skip
    _, err = process.communicate(timeout=300)
    said = " ".join(err.split())
    assert process.returncode == 2 and "Traceback" not in err, err[-2000:]
    assert f"task 'adding': its data could not be written to the cache folder {tmp_path / 'cache'}" in said, (
        said
    )
    assert not list((tmp_path / "cache").rglob(".partial-*")), "no half-written cache entry is left"


def test_store_failing_mid_sweep_stops_it_cleanly_and_resume_completes(tmp_path, ray_session):
    """The sweep's experiment is deleted while a trial trains (the store then refuses new runs): the
    sweep stops with an error naming the store; once the experiment is restored, --resume completes
    it with every trial recorded exactly once in MLflow and in Optuna."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    marker = tmp_path / "broken-once"
    plugin = tmp_path / "store_breaker.py"
    plugin.write_text(
        "import os\nimport rnnbench\nfrom torch import nn\nfrom mlflow.tracking import MlflowClient\n\n\n"
        "class Breaker(nn.GRU):\n    def forward(self, x):\n"
        # Only in a Ray worker, not in the sweep's own pre-flight check of the cell.
        f"        if self.training and os.getpid() != {os.getpid()} and not os.path.exists({str(marker)!r}):\n"
        f"            open({str(marker)!r}, 'w').close()\n"
        f"            client = MlflowClient({uri!r})\n"
        "            client.delete_experiment(client.get_experiment_by_name('rnnbench').experiment_id)\n"
        "        return super().forward(x)[0]\n\n\n"
        "@rnnbench.hookimpl\ndef register_cells(register):\n"
        "    register('store-breaker', lambda input_size, hidden_size, num_layers, dropout: Breaker(input_size, "
        "hidden_size, num_layers, batch_first=True), description='x', reference='x')\n"
    )
    s = sweep_settings(tmp_path, "f8", ["store-breaker"], trials=4, max_concurrent=1)
    with file_plugin(plugin):
        with pytest.raises(RnnbenchError) as info:
            run_sweep(s)
        client = MlflowClient(uri)  # on the store the sweep made (from the kept empty one: no migrations)
        message = str(info.value)
        assert f"the tracking store {uri} could not be written" in message, message
        assert "rnnbench sweep --resume f8" in message
        assert marker.exists()
        experiment = client.get_experiment_by_name("rnnbench")
        client.restore_experiment(experiment.experiment_id)
        told = [
            t for t in optuna_trials(tmp_path / "sweeps" / "f8", "f8:store-breaker") if t.state in FINISHED
        ]
        recorded = [r for r in trial_runs(uri, "f8") if r.info.status in ("FINISHED", "FAILED")]
        assert len(told) == len(recorded) < 4, "Optuna is told only of trials MLflow recorded"
        result = run_sweep(
            sweep_settings(tmp_path, "f8", ["store-breaker"], trials=4, max_concurrent=1), resume=True
        )
    runs = by_trial(trial_runs(uri, "f8"))
    assert sorted(runs) == [0, 1, 2, 3]
    assert all(r.info.status in ("FINISHED", "FAILED") for r in runs.values())
    assert all(t.state in FINISHED for t in optuna_trials(result.folder, "f8:store-breaker"))
    assert sum(result.counts["store-breaker"].values()) == 4


# 9 ----------------------------------------------------------------------------------------------------


def test_load_of_100_trivial_trials_records_each_exactly_once(tmp_path, ray_session):
    s = sweep_settings(
        tmp_path, "load", ["rnn", "gru"], trials=50, epochs=1, grace_period=1, max_concurrent=None,
        task_options={"length": 4, "train_size": 32, "validation_size": 16, "test_size": 16},
        space_overrides={"depth": 1, "width": 4},
    )  # fmt: skip
    started = time.monotonic()
    result = run_sweep(s)
    elapsed = time.monotonic() - started
    for cell in ("rnn", "gru"):
        runs = by_trial(trial_runs(result.tracking_uri, "load", cell))
        assert sorted(runs) == list(range(50)), f"{cell}: every trial recorded exactly once"
        assert all(r.info.status in ("FINISHED", "FAILED") for r in runs.values())
        trials = optuna_trials(result.folder, f"load:{cell}")
        assert len(trials) == 50 and all(t.state in FINISHED for t in trials)
    print(f"100 trials in {elapsed:.0f} s")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("seed = -1\n", "key 'seed': must be an integer in [0, 4294967295]"),
        ("seed = 9223372036854775807\n", "key 'seed': must be an integer in [0, 4294967295]"),
        ("[train]\ndata_seed = -3\n", "data_seed must be an integer in [0, 4294967295]"),
        ("[task_options]\nbogus = 1\n", "task 'adding' has no option 'bogus'; its options: length, spread"),
        ("[task_options]\nlength = 1000000000000\n", "task 'adding': length 1000000000000 with"),
        (
            '[space_overrides]\nwidth = "wide"\n',
            "key 'space_overrides.width': fixed to 'wide', but the space samples it as an integer",
        ),
        (
            '[space_overrides]\nclipping = "sometimes"\n',
            "fixed to 'sometimes', not one of the space's choices",
        ),
        ("[train]\nwidth = 8\n", "key 'train.width': search space 'default' sets width for every trial"),
    ],
)
def test_mistakes_that_used_to_fail_after_ray_started_fail_before(tmp_path, content, message):
    """Each once ended in a traceback with a parent run left RUNNING and a sweep folder behind."""
    (tmp_path / "sweep.toml").write_text(
        "cells = ['gru']\ntrials = 1\nepochs = 1\nname = 'early'\n" + content
    )
    process = cli(tmp_path, "sweep", "sweep.toml")
    _, err = process.communicate(timeout=180)
    assert process.returncode == 2, err[-2000:]
    assert message in " ".join(err.split()) and "Traceback" not in err
    assert not (tmp_path / "rnnbench-sweeps" / "early").exists(), "no sweep folder before the checks pass"
    assert not (tmp_path / "mlflow.db").exists() or not trial_runs(
        f"sqlite:///{tmp_path / 'mlflow.db'}", "early"
    )


@pytest.mark.parametrize("after", [2.0, 6.0])
def test_ctrl_c_while_starting_up_stops_the_sweep(tmp_path, after):
    """While imports, checks and ray.init run (2 s) or Tune sets up (6 s): the sweep stops, exit 130."""
    import signal as signals

    process = cli(tmp_path, "sweep", "--cells", "gru", "--trials", "4", "--epochs", "3", "--length", "16",
                  "--name", "early", "-o", "train_size=512", "--json",
                  preexec_fn=lambda: signals.signal(signals.SIGINT, signals.SIG_DFL))  # fmt: skip
    time.sleep(after)
    process.send_signal(signals.SIGINT)
    started = time.monotonic()
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-2000:]
    assert time.monotonic() - started < 60 and "Traceback" not in err
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    if (tmp_path / "mlflow.db").exists():
        runs = trial_runs(uri, "early")
        assert len([r for r in runs if r.info.status == "FINISHED"]) < 4, "the sweep did not run to the end"
        assert all(r.info.status != "RUNNING" for r in runs)


def test_sigterm_stops_cleanly_like_ctrl_c_and_resumes(tmp_path, ray_address):
    import signal as signals

    args = ["sweep", "--cells", "paced-gru", "--trials", "4", "--epochs", "3", "--length", "12", "--name", "term",
            "-o", "train_size=64", "-o", "validation_size=32", "-o", "test_size=32", "--json"]  # fmt: skip
    process = cli(tmp_path, *args, extra_env=PACED)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    wait_for_a_finished_trial(uri, "term")
    process.send_signal(signals.SIGTERM)  # to the driver only, as `timeout` and `kill` send it
    _, err = process.communicate(timeout=300)
    assert process.returncode == 143, err[-2000:]
    assert "continue it with: rnnbench sweep --resume term" in err and "Traceback" not in err
    runs = trial_runs(uri, "term")
    assert runs and all(r.info.status in ("FINISHED", "FAILED", "KILLED") for r in runs), (
        "nothing left RUNNING"
    )
    # The stop is what runs on a Ray of the sweep's own; the resume joins the session's (its counts are the point).
    resumed = cli(
        tmp_path, "sweep", "--resume", "term", "--json", "--address", ray_address, extra_env=UNPACED
    )
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-2000:]
    runs = trial_runs(uri, "term")
    assert len(runs) == 4 and sorted(int(r.data.tags["optuna_trial"]) for r in runs) == list(range(4))


@pytest.mark.alone  # its threshold is what the machine uses now: another test allocating would be killed
def test_a_worker_killed_by_rays_memory_monitor_is_retried_then_failed_as_out_of_memory(tmp_path):
    """A real kill: Ray (its own, in the sweep's process) starts with a memory threshold just above what
    the machine uses now; the trial's worker allocates past it and Ray's memory monitor kills it."""
    import psutil

    memory = psutil.virtual_memory()
    if memory.available < 6 * 2**30:
        pytest.skip(f"needs 6 GiB available to hog memory safely, {memory.available / 2**30:.1f} GiB here")
    # 2 GiB above today's use: the trial's worker importing torch and the driver loading the sweep's
    # tail modules meanwhile (~0.7 GiB together) must stay under it, or the worker is killed as it
    # starts, before its trial, and only one attempt is recorded.
    threshold = (memory.total - memory.available + 2 * 2**30) / memory.total
    (tmp_path / "hog.toml").write_text(
        'task = "temporal_order"\ncells = ["memory-hog"]\ntrials = 1\nepochs = 1\nname = "hog"\n'
        "max_failures = 1\n[task_options]\nlength = 16\ntrain_size = 128\nvalidation_size = 32\n"
        "test_size = 64\n"
    )
    env = {"RNNBENCH_PLUGINS": str(TEST_PLUGINS / "memory_hog.py"), "RNNBENCH_TEST_HOG_GB": "4",
           "RAY_memory_usage_threshold": f"{threshold:.4f}", "RAY_memory_monitor_refresh_ms": "100"}  # fmt: skip
    process = cli(tmp_path, "sweep", "hog.toml", "--json", extra_env=env)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, f"the driver must not die of it: {err[-3000:]}"
    assert json.loads(out)["counts"]["memory-hog"]["failed"] == 1
    (run,) = trial_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "hog")
    assert run.info.status == "FAILED" and run.data.tags["status"] == "failed"
    assert run.data.tags["attempts"] == "2", "retried once under max_failures = 1"
    assert run.data.tags["error"].startswith("out of memory: worker failed 2 time(s): "), run.data.tags[
        "error"
    ]


def test_ray_giving_up_ends_the_sweep_with_its_reason_and_resume_completes(
    tmp_path, ray_session, monkeypatch
):
    """Ray's memory monitor killing workers once ended the driver in a RuntimeError, runs left RUNNING
    and no resume command. The failure is injected where Tune raises it: from Tuner.fit."""
    from ray import tune

    from rnnbench.sweep import SweepStopped

    s = sweep_settings(tmp_path, "oom", ["gru"])
    real_fit = tune.Tuner.fit

    def fit_then_give_up(self):
        real_fit(self)
        raise RuntimeError("2 worker(s) were killed due to the node running low on memory")

    monkeypatch.setattr(tune.Tuner, "fit", fit_then_give_up)
    with pytest.raises(SweepStopped) as info:
        run_sweep(s)
    assert "node running low on memory" in str(info.value)
    assert info.value.resume_command in str(info.value) and "--resume oom" in info.value.resume_command
    runs = trial_runs(s.tracking_uri, "oom")
    assert all(r.info.status != "RUNNING" for r in runs), "nothing left RUNNING"
    client = MlflowClient(s.tracking_uri)
    parent = client.search_runs([runs[0].info.experiment_id], "tags.kind = 'sweep' and tags.sweep = 'oom'")[0]
    assert parent.info.status == "KILLED"
    monkeypatch.setattr(tune.Tuner, "fit", real_fit)
    resumed = run_sweep(SweepSettings(**{**s.as_dict(), "name": "oom"}), resume=True)
    assert resumed.optuna_counts == {"gru": 2} and len(trial_runs(s.tracking_uri, "oom")) == 2


# Item 7 of the reliability round: end to end through the command line ------------------------------

TINY_FILE = {"cells": '["gru"]', "trials": "1", "epochs": "1", "grace_period": "1", "name": '"prop"'}
mutations = st.fixed_dictionaries(
    {},
    optional={
        "seed": st.sampled_from(["-1", "0", "7", "9223372036854775807", "4294967296"]),
        "trials": st.sampled_from(["0", "1", "-2", '"one"']),
        "length": st.sampled_from(["2", "12", "1000000000000", "-5"]),
        "task_options": st.sampled_from(["{ bogus = 1 }", "{ spread = 0.5 }", "{ train_size = 64 }", "{}"]),
        "space_overrides": st.sampled_from(
            ['{ width = "wide" }', "{ width = 8 }", "{ depth = 0 }", "{ wdth = 8 }"]
        ),
        "train": st.sampled_from(
            ["{ width = 8 }", "{ batch_size = 16 }", "{ data_seed = -1 }", "{ lr = 0 }"]
        ),
    },
)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=mutations)
def test_any_sweep_file_end_to_end_exits_0_or_2_and_leaves_nothing_half_done(
    tmp_path_factory, ray_address, changes
):
    folder = tmp_path_factory.mktemp("prop")
    keys = {**TINY_FILE, **changes}
    (folder / "sweep.toml").write_text(
        "\n".join(f"{k} = {v}" for k, v in keys.items())
        + "\n[task_options]\ntrain_size = 64\nvalidation_size = 32\ntest_size = 64\nlength = 12\n"
    )
    if "task_options" in keys or "length" in keys:  # a TOML key cannot be both: keep the table's keys apart
        text = (folder / "sweep.toml").read_text().split("[task_options]")[0]
        (folder / "sweep.toml").write_text(text)
    process = cli(folder, "sweep", "sweep.toml", "--json", "--address", ray_address)
    _, err = process.communicate(timeout=300)
    assert process.returncode in (0, 2), (keys, err[-2000:])
    assert "Traceback" not in err, (keys, err[-2000:])
    if process.returncode == 2:
        assert not (folder / "rnnbench-sweeps" / "prop").exists(), "no partial sweep folder"
    if (folder / "mlflow.db").exists():
        assert all(
            r.info.status != "RUNNING" for r in trial_runs(f"sqlite:///{folder / 'mlflow.db'}", "prop")
        )


cells_of_csv = st.one_of(
    st.sampled_from(["1 2 3", "0.5,0.25", "nan", "4 inf", "", "abc", "1e400", "-1e-3 2"]),
    st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=5).map(
        lambda v: " ".join(map(str, v))
    ),
)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(cells_of_csv, st.sampled_from(["0", "1", "", "x"])), min_size=0, max_size=40),
       header=st.booleans(), ragged=st.booleans())  # fmt: skip
def test_any_small_csv_trains_or_is_a_clear_error(tmp_path_factory, rows, header, ragged):
    folder = tmp_path_factory.mktemp("csv")
    lines = ["sequence,label"] if header else []
    lines += [
        f'"{seq}",{label}' + (",extra" if ragged and k == 3 else "") for k, (seq, label) in enumerate(rows)
    ]
    (folder / "data.csv").write_text("\n".join(lines) + "\n")
    process = cli(folder, "train", "--cell", "gru", "--task", "hf", "-o", "path=data.csv", "--epochs", "1",
                  "--width", "4", "--json")  # fmt: skip
    _, err = process.communicate(timeout=300)
    assert process.returncode in (0, 2), (lines[:6], err[-2000:])
    assert "Traceback" not in err, (lines[:6], err[-2000:])
    if (folder / "mlflow.db").exists():
        client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        assert all(r.info.status != "RUNNING" for r in runs)


# Reliability round 3 ------------------------------------------------------------------------------------


def _agree(tmp_path: Path, name: str, cells: list[str]) -> dict[str, int]:
    """MLflow and Optuna hold the same trials, number for number, each finished once; the counts per cell."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    found = {}
    for cell in cells:
        runs = by_trial(trial_runs(uri, name, cell))
        trials = {t.number: t for t in optuna_trials(tmp_path / "rnnbench-sweeps" / name, f"{name}:{cell}")}
        assert sorted(runs) == sorted(trials), f"{cell}: MLflow {sorted(runs)}, Optuna {sorted(trials)}"
        assert all(t.state in FINISHED for t in trials.values()), f"{cell}: a trial Optuna holds unfinished"
        assert all(r.info.status in ("FINISHED", "FAILED") for r in runs.values())
        found[cell] = len(runs)
    return found


def test_two_drivers_on_one_sweep_one_runs_the_other_is_refused(tmp_path, ray_address):
    """Two `--name Y` started together, then two `--resume Y --trials 3` together: one driver runs, the other is
    a one-line exit 2 naming the first's pid (or, where the first had finished, finds nothing to do); MLflow
    and Optuna agree trial for trial after each round."""
    args = ["sweep", "--cells", "rnn", "--epochs", "1", "--length", "12", "-o", "train_size=64", "-o",
            "validation_size=32", "-o", "test_size=32", "--max-concurrent", "1", "--json", "--address",
            ray_address]  # fmt: skip
    for round_args, trials in (
        (["--trials", "2", "--name", "y"], 2),
        (["--resume", "y", "--trials", "3"], 3),
    ):
        first, second = cli(tmp_path, *args, *round_args), cli(tmp_path, *args, *round_args)
        results = [(p.wait(timeout=600), p.communicate()[1]) for p in (first, second)]
        codes = sorted(code for code, _ in results)
        refused = [err for code, err in results if code == 2]
        assert codes in ([0, 0], [0, 2]), results
        for err in refused:
            said = " ".join(err.split())
            assert "is being run by another driver (pid " in said or "exists; continue it with" in said, said
            assert "Traceback" not in err
        assert _agree(tmp_path, "y", ["rnn"]) == {"rnn": trials}


def test_a_journal_cut_by_a_crash_is_repaired_on_resume_without_a_second_run(tmp_path, ray_session):
    """The last 40 bytes of the journal cut off (a crash mid-append, here the last trial's tell): --resume
    keeps the whole file as a backup and cuts the torn line; the trial whose tell was lost has a finished
    MLflow record, so Optuna is told from it and no trial trains again (the same runs, the same values)."""
    settings = sweep_settings(
        tmp_path, "torn", ["rnn"], trials=3, epochs=1, sweeps_dir=str(tmp_path / "rnnbench-sweeps")
    )
    result = run_sweep(settings)
    before = {r.info.run_id: r.data.metrics for r in trial_runs(result.tracking_uri, "torn")}
    journal = tmp_path / "rnnbench-sweeps" / "torn" / "optuna.journal"
    data = journal.read_bytes()
    journal.write_bytes(data[:-40])
    import optuna

    from rnnbench.sweep.search import journal_storage

    cut = optuna.load_study(study_name="torn:rnn", storage=journal_storage(str(journal)))
    assert [t.state for t in cut.trials].count(TrialState.RUNNING) == 1, "the cut took the last tell"
    run_sweep(SweepSettings(**settings.as_dict()), resume=True)
    assert [p.name.startswith("optuna.journal.torn-") for p in journal.parent.iterdir()].count(True) == 1
    assert _agree(tmp_path, "torn", ["rnn"]) == {"rnn": 3}
    assert {r.info.run_id: r.data.metrics for r in trial_runs(result.tracking_uri, "torn")} == before
    told = {t.number: t.value for t in optuna_trials(journal.parent, "torn:rnn")}
    assert all(t.state == TrialState.COMPLETE for t in optuna_trials(journal.parent, "torn:rnn"))
    recorded = {int(r.data.tags["optuna_trial"]): r.data.metrics["best_val_loss"]
                for r in trial_runs(result.tracking_uri, "torn")}  # fmt: skip
    assert told == recorded
    journal.write_bytes(journal.read_bytes().replace(b"\n", b"\nnot json\n", 1))
    with pytest.raises(RnnbenchError, match=r"optuna.journal: line 2 of \d+ is not a journal entry"):
        run_sweep(SweepSettings(**settings.as_dict()), resume=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    content=st.binary(max_size=300), cut=st.integers(min_value=0, max_value=400), tail=st.binary(max_size=60)
)
def test_any_bytes_in_the_state_files_give_state_or_a_clear_error(tmp_path, content, cut, tail):
    """Random bytes as sweep.json, a journal cut anywhere and given random bytes, random bytes over a store's
    header: each is loaded, repaired or refused with an error naming the file, never a traceback."""
    import optuna

    from rnnbench.sweep.search import journal_storage
    from rnnbench.sweep.state import SweepError, load_state, repair_journal
    from rnnbench.tracking.store import TrackingError, check_tracking_uri, open_client, store_error

    folder = tmp_path / "fz" / "s"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sweep.json").write_bytes(content)
    try:
        state = load_state("s", str(tmp_path / "fz"))
        assert isinstance(state, dict) and isinstance(state["settings"], dict)
    except SweepError as exc:
        assert "sweep.json" in str(exc)
    journal = folder / "optuna.journal"
    journal.unlink(missing_ok=True)
    storage = journal_storage(str(journal))
    study = optuna.create_study(storage=storage, study_name="s:rnn")
    study.enqueue_trial({"x": 1.0})
    for _ in range(2):
        trial = study.ask()
        trial.suggest_float("x", 0, 2)
        study.tell(trial, 0.5)
    whole = journal.read_bytes()
    journal.write_bytes(whole[: min(cut, len(whole))] + tail)
    try:
        repair_journal(journal)
    except SweepError as exc:
        assert "optuna.journal" in str(exc)
    else:  # repaired or whole: Optuna reads every line of it
        journal_storage(str(journal)).get_all_studies()
    store = tmp_path / "fz" / "mlflow.db"
    if not store.exists():
        open_client(f"sqlite:///{store}").search_experiments()
    raw = bytearray(store.read_bytes())
    raw[: len(tail)] = tail
    broken = tmp_path / "fz" / "broken.db"
    broken.write_bytes(bytes(raw))
    uri = f"sqlite:///{broken}"
    try:
        check_tracking_uri(uri, write=False)
        open_client(uri).search_experiments()
    except TrackingError:
        pass
    except Exception as exc:  # what the commands turn into one line
        message = str(store_error(uri, exc))
        assert "broken.db" in message and "\n" not in message
