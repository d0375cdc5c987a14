"""Sweeps on a real local Ray with a real MLflow store and a real Optuna journal."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from rnnbench.sweep import SweepError, run_sweep
from rnnbench.sweep.search import FINISHED, journal_storage
from rnnbench.sweep.settings import SweepConfigError, SweepSettings
from rnnbench.tracking.store import open_client
from rnnbench.training.recipe import is_final
from rnnbench.util.timings import ENV as TIMINGS
from tests.conftest import TEST_PLUGINS, TINY_TASK

pytestmark = pytest.mark.slow


def settings(tmp_path: Path, **overrides) -> SweepSettings:
    # One trial at a time unless a test says otherwise: each concurrent trial is one more Ray worker process
    # per sweep (Tune's actor), about 4 s of CPU to start and import torch, for trials well under a second.
    values = dict(
        task="adding", cells=["lstm", "gru"], trials=3, epochs=3, task_options=dict(TINY_TASK),
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", sweeps_dir=str(tmp_path / "sweeps"),
        cache_dir=str(tmp_path / "cache"), name="s1", train={"batch_size": 32}, max_concurrent=1,
    )  # fmt: skip
    values.update(overrides)
    return SweepSettings(**values)


def trial_runs(uri: str, sweep: str, cell: str | None = None) -> list:
    client = open_client(uri)  # the sweep may be creating the store while a test polls it
    experiment = client.get_experiment_by_name("rnnbench")
    query = f"tags.sweep = '{sweep}' and tags.optuna_trial != ''" + (
        f" and tags.cell = '{cell}'" if cell else ""
    )
    return client.search_runs([experiment.experiment_id], query)


def optuna_trials(folder: Path, study: str) -> list:
    return optuna.load_study(study_name=study, storage=journal_storage(str(folder / "optuna.journal"))).trials


def test_every_trial_is_exactly_one_nested_run(tmp_path, ray_session, monkeypatch):
    import rnnbench.tracking.store as store

    seen, opened = [], []
    real_open = store.open_client
    monkeypatch.setattr(store, "open_client", lambda uri: opened.append(uri) or real_open(uri))
    s = settings(tmp_path, space_overrides={"depth": 1, "width": {"low": 8, "high": 16}})
    result = run_sweep(s, listener=lambda p: seen.append(p.as_dict()))
    # One store for the whole sweep: trials, models, importances and the leaderboard share its client.
    assert opened == [result.tracking_uri], opened
    assert gc.isenabled() and gc.get_freeze_count() == 0, "the collector is given back as it was"
    client = MlflowClient(result.tracking_uri)
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["sweep"] == "s1"
    plots = [a.path for a in client.list_artifacts(result.parent_run_id, "leaderboard")]
    for kind in ("-cost.png", "-learning-curves.png", "-distribution.png"):
        assert any(p.endswith(kind) for p in plots), f"no {kind} among {plots}"
    for cell in ("lstm", "gru"):
        runs = trial_runs(result.tracking_uri, "s1", cell)
        assert len(runs) == 3, "one nested run per trial"
        assert sorted(int(r.data.tags["optuna_trial"]) for r in runs) == [0, 1, 2]
        for run in runs:
            assert run.data.tags["mlflow.parentRunId"] == result.parent_run_id
            assert run.data.tags["status"] in ("completed", "pruned", "diverged", "failed")
            assert run.info.status == ("FAILED" if run.data.tags["status"] == "failed" else "FINISHED")
            params = run.data.params
            assert params["cell"] == cell and params["task"] == "adding" and params["space"] == "default"
            assert params["depth"] == "1" and 8 <= int(params["width"]) <= 16, "the space overrides apply"
            assert params["plugin"] == f"rnnbench.plugins.{cell}" and params["seed"] == "0"
            assert "lr" in params and "clip" in params and params["length"] == "16"
            assert run.data.tags["rnnbench_version"] and run.data.tags["task_data_version"] == "adding-1"
            if run.data.tags["status"] == "completed":
                for key in ("test_accuracy", "lrd_score", "lrd_horizon", "param_count", "train_seconds"):
                    assert key in run.data.metrics
                assert {a.path for a in client.list_artifacts(run.info.run_id)} == {
                    "lrd_curve.png",
                    "lrd_curve.csv",
                }
        trials = optuna_trials(result.folder, f"s1:{cell}")
        states = [t.state for t in trials]
        assert len(states) == 3 and all(state in FINISHED for state in states)
        for (
            run
        ) in runs:  # Optuna's intermediate values (optuna-dashboard's curves) and MLflow's, step for step
            steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "val_loss"))
            trial = next(t for t in trials if t.number == int(run.data.tags["optuna_trial"]))
            assert sorted(trial.intermediate_values) == steps, (trial.intermediate_values, steps)
        assert result.optuna_counts[cell] == 3
        assert sum(result.counts[cell].values()) == 3
        assert cell in result.best and result.best[cell]["test_accuracy"] is not None
        _assert_best_model_reproduces_its_test_accuracy(client, result.best[cell]["run_id"], tmp_path)
    # One trial at a time, all cells in one Tune run: Tune reused the first trial's worker process for
    # every later trial, of either cell (a trial whose worker died would have needed another).
    pids = {r.data.tags["pid"] for r in trial_runs(result.tracking_uri, "s1")}
    assert len(pids) == 1, f"the cells' trials ran in {len(pids)} worker processes: {pids}"
    # Once a cell is done, a trial keeps one checkpoint, its tested weights, or none (pruned: never resumed).
    finals = 0
    for trial_dir in (result.folder / "ray").glob("*/trial_entry_*"):
        kept = list(trial_dir.glob("checkpoint_*"))
        assert len(kept) <= 1 and all(is_final(k) for k in kept), trial_dir
        # MLflow holds the record: Tune writes no logs of its own per result (14 ms of the driver a trial).
        assert not {"result.json", "progress.csv", "params.json"} & {p.name for p in trial_dir.iterdir()}
        finals += len(kept)
    assert finals >= sum(result.counts[c]["completed"] for c in ("lstm", "gru"))
    final = seen[-1]["cells"]
    assert {cell: final[cell]["running"] for cell in final} == {"lstm": 0, "gru": 0}
    assert sum(final["lstm"][s] for s in ("completed", "pruned", "diverged", "failed")) == 3


def _assert_best_model_reproduces_its_test_accuracy(client, run_id: str, tmp_path: Path) -> None:
    from rnnbench.tracking.models import load_model, score

    run = client.get_run(run_id)
    model = load_model(run.data.tags["model_uri"], client.tracking_uri)
    assert model.recipe["cell"] == run.data.params["cell"] and model.recipe["width"] == int(
        run.data.params["width"]
    )
    loss, accuracy = score(model, cache_dir=str(tmp_path / "cache"))
    assert accuracy == run.data.metrics["test_accuracy"] and loss == pytest.approx(
        run.data.metrics["test_loss"]
    )


def test_existing_name_without_resume_is_refused(tmp_path, ray_session):
    folder = tmp_path / "sweeps" / "s1"
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text("{}")
    with pytest.raises(SweepError, match="rnnbench sweep --resume s1"):
        run_sweep(settings(tmp_path))


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"cells": ["lstm", "lstn"]}, "UnknownCellError", "unknown cell 'lstn'"),
        ({"task": "adds"}, "UnknownTaskError", "unknown task 'adds'"),
        ({"space": "wide"}, "UnknownSearchSpaceError", "valid search spaces: default, greff"),
        ({"cpus_per_trial": 64}, "SweepError", "cpus_per_trial 64 is more than any node"),
        ({"gpus_per_trial": 1}, "SweepError", "gpus_per_trial 1 cannot be given: the cluster has no GPU"),
        (
            {"space_overrides": {"widht": 8}},
            "SpaceOverrideError",
            "has no parameter 'widht'; its parameters: clip, clipping, depth, lr, width",
        ),
        (
            {"space_overrides": {"width": {"low": 64, "high": 8}}},
            "SpaceOverrideError",
            "key 'space_overrides.width'",
        ),
        ({"space_overrides": {"width": {"min": 8}}}, "SpaceOverrideError", "unknown field(s) min"),
        ({"trials": 0}, "SweepConfigError", "key 'trials': must be a positive integer, got 0"),
        (
            {"tracking_uri": "sqlite:////nonexistent/dir/m.db"},
            "TrackingError",
            "the folder /nonexistent/dir does not exist",
        ),
        ({"task_options": {**TINY_TASK, "length": 2}}, "TaskOptionError", "length 2 is too short"),
    ],
)
def test_bad_input_fails_before_any_trial(tmp_path, ray_session, overrides, error, message):
    with pytest.raises(Exception) as info:
        run_sweep(settings(tmp_path, **overrides))
    assert type(info.value).__name__ == error
    assert message in str(info.value)
    assert not (tmp_path / "sweeps" / "s1" / "optuna.journal").exists()
    if (tmp_path / "mlflow.db").exists():
        assert not trial_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "s1")


def test_unreachable_ray_address(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SweepError, match=f"Ray address 127.0.0.1:{port}: no Ray head answers there"):
        from rnnbench.sweep.cluster import check_address

        check_address(f"127.0.0.1:{port}")
    with pytest.raises(SweepError, match="must look like HOST:PORT"):
        check_address("not-an-address")


def test_joining_a_cluster_that_wants_a_token_without_one_is_a_clear_error(tmp_path, ray_address):
    """Ray's own error says only "Failed to connect"; Ray never sends this host's token to an address
    given explicitly, so the user has to opt in, and the message says how."""
    if os.environ.get("RAY_AUTH_MODE") != "token":
        pytest.skip("the test Ray started without token authentication (RAY_AUTH_MODE was set)")
    # One connection attempt instead of Ray's twenty, a second apart.
    env = {"RAY_AUTH_MODE": "disabled", "RAY_gcs_server_port_wait_time_s": "1"}
    process = cli(
        tmp_path, "sweep", "--cells", "rnn", "--trials", "1", "--address", ray_address, extra_env=env
    )
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2, err[-2000:]
    assert "Traceback" not in err, err[-3000:]
    assert f"Ray address {ray_address}: the cluster requires token authentication" in " ".join(err.split())
    assert "RAY_AUTH_MODE=token" in err


class RuntimeEnvProbe:
    def runtime_env(self) -> str:
        import ray

        return ray.get_runtime_context().get_runtime_env_string()


def test_trial_workers_start_without_tunes_runtime_env(tmp_path, ray_session, monkeypatch):
    """Tune gives every trainable's actor a runtime env (``PL_DISABLE_FORK``), which sets each new worker up
    through Ray's runtime-env agent and a second Python process (0.8 s more per worker): connect drops it."""
    import ray
    from ray.tune.execution.class_cache import _ActorClassCache

    from rnnbench.sweep.cluster import connect

    def env_of_a_tune_actor() -> str:
        actor = _ActorClassCache().get(RuntimeEnvProbe).remote()
        try:
            return ray.get(actor.runtime_env.remote(), timeout=120)
        finally:
            ray.kill(actor)

    from ray.tune.execution.class_cache import ENV_VARS_TO_PROPAGATE

    for name in ENV_VARS_TO_PROPAGATE:  # none passed on from the driver: the runtime env can be empty
        monkeypatch.delenv(name, raising=False)
    assert connect(settings(tmp_path)) is False, "the session's Ray is joined, not started"
    assert env_of_a_tune_actor() == "{}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "propagated")  # Tune still passes on what it must
    assert "propagated" in env_of_a_tune_actor()


def test_a_worker_loads_the_task_data_once_for_the_trials_it_runs_in_a_row(tmp_path, monkeypatch):
    """Tune hands a trial's worker to the next trial: the data are loaded again only when they differ."""
    from rnnbench.sweep import worker
    from rnnbench.tasks.base import Task
    from rnnbench.training import data

    loads = []
    load, load_columns = Task.load, Task.load_columns

    def counting(self, seed=0, cache_dir=None):
        loads.append((self.name, self.options()["length"], seed))
        return load(self, seed=seed, cache_dir=cache_dir)

    def counting_columns(self, seed=0, cache_dir=None):
        found = load_columns(self, seed=seed, cache_dir=cache_dir)
        if found is not None:  # read from the cache without datasets
            loads.append((self.name, self.options()["length"], seed))
        return found

    monkeypatch.setattr(Task, "load", counting)
    monkeypatch.setattr(Task, "load_columns", counting_columns)
    monkeypatch.setattr(data, "_loaded", {})
    options = {"length": 8, "train_size": 64, "validation_size": 32, "test_size": 32}

    def spec(**changes) -> worker.TrialSpec:
        fields = {"cell": "gru", "task": "adding", "epochs": 1, "seed": 0, "cpus_per_trial": 1,
                  "task_options": options, "cache_dir": str(tmp_path)}  # fmt: skip
        return worker.TrialSpec(**{**fields, **changes})

    first = data.task_and_data(worker.trial_config({"lr": 0.01, "width": 8}, spec()))
    again = data.task_and_data(worker.trial_config({"lr": 0.1, "width": 16}, spec(cell="lstm", seed=3)))
    assert again[0] is first[0] and again[1] is first[1], "another trial, cell or seed: the same data"
    assert loads == [("adding", 8, 0)]
    data.task_and_data(worker.trial_config({}, spec(train={"data_seed": 1})))
    data.task_and_data(worker.trial_config({}, spec(task_options={**options, "length": 12})))
    data.task_and_data(worker.trial_config({}, spec()))
    assert loads == [("adding", 8, 0), ("adding", 8, 1), ("adding", 12, 0), ("adding", 8, 0)]
    assert len(data._loaded) == 1, "one task's data at a time"


def test_the_data_identity_is_the_task_its_options_the_data_seed_and_the_cache(tmp_path):
    """Runs that share it share their data (a worker's kept task, a reseed's checks); nothing else enters."""
    from dataclasses import replace

    from rnnbench.training.config import TrainConfig
    from rnnbench.training.data import data_identity

    base = TrainConfig(cell="gru", task="adding", task_options={"length": 8, "train_size": 64}, seed=1,
                       cache_dir=str(tmp_path))  # fmt: skip
    same = [replace(base, cell="lstm"), replace(base, seed=1001), replace(base, lr=0.5), replace(base, width=64),
            replace(base, task_options={"train_size": 64, "length": 8})]  # fmt: skip
    assert {data_identity(c) for c in same} == {data_identity(base)}
    other = [replace(base, task="copy"), replace(base, task_options={"length": 9, "train_size": 64}),
             replace(base, data_seed=1), replace(base, cache_dir=str(tmp_path / "elsewhere"))]  # fmt: skip
    assert len({data_identity(c) for c in [base, *other]}) == 1 + len(other)


def test_a_load_that_fails_keeps_nothing_and_the_next_run_loads_again(tmp_path, monkeypatch):
    from dataclasses import replace

    from rnnbench.tasks.base import Task
    from rnnbench.training import data
    from rnnbench.training.config import TrainConfig

    def disk_gone(*args, **kwargs):
        raise OSError("disk gone")

    monkeypatch.setattr(data, "_loaded", {})
    config = TrainConfig(cell="gru", task="adding", task_options={"length": 8, "train_size": 64,
                         "validation_size": 32, "test_size": 32}, cache_dir=str(tmp_path))  # fmt: skip
    data.task_and_data(config)
    with monkeypatch.context() as broken:
        broken.setattr(Task, "load_columns", disk_gone)
        with pytest.raises(OSError, match="disk gone"):
            data.task_and_data(replace(config, data_seed=7))
    assert data._loaded == {}, "a failed load leaves no task behind, nor the one before"
    task, splits = data.task_and_data(replace(config, data_seed=7))
    assert task.name == "adding" and len(splits["train"]["length"]) == 64


def test_the_cache_folder_of_the_command_is_the_workers_one(tmp_path, monkeypatch):
    """Workers of a cluster the sweep joins inherit the environment of whoever started that cluster:
    $RNNBENCH_CACHE_DIR is read where the command runs and handed to each trial."""
    from rnnbench.sweep.plan import prepare

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RNNBENCH_CACHE_DIR", "cache-here")
    settings = SweepSettings(task="adding", cells=["rnn"], task_options=dict(TINY_TASK, train_size=16),
                             tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")  # fmt: skip
    assert prepare(settings).trial_spec("rnn").cache_dir == str(tmp_path / "cache-here")
    settings.cache_dir = str(tmp_path / "given")  # the setting wins over the variable
    assert prepare(settings).trial_spec("rnn").cache_dir == str(tmp_path / "given")
    monkeypatch.delenv("RNNBENCH_CACHE_DIR")
    settings.cache_dir = None  # neither: each node's own default cache
    assert prepare(settings).trial_spec("rnn").cache_dir is None


def test_the_tail_is_imported_once_in_the_background_while_trials_train():
    """In a fresh process, as the command is: one daemon thread, whatever the number of trials started,
    leaves every module of the tail loaded, and not MLflow's map of every installed package (0.8-1.0 s),
    which logging a model no longer needs (``rnnbench.tracking.models``)."""
    code = (
        "import sys, threading\n"
        "from rnnbench.sweep.warm import TAIL_MODULES, warm_the_tail\n"
        "assert not [m for m in TAIL_MODULES if m in sys.modules]\n"
        "warm_the_tail(); warm_the_tail()\n"
        "warm = [t for t in threading.enumerate() if t.name == 'rnnbench-warm']\n"
        "assert len(warm) == 1 and warm[0].daemon\n"
        "warm[0].join()\n"
        "from mlflow.utils import requirements_utils\n"
        "print([m for m in TAIL_MODULES if m not in sys.modules], requirements_utils._MODULES_TO_PACKAGES is None)\n"
    )
    assert _last_line_of_fresh_python(code) == "[] True"


@pytest.mark.parametrize("collecting", [True, False])
@pytest.mark.parametrize("fails", [False, True])
def test_a_sweeps_start_runs_without_the_collector_which_then_skips_what_the_start_made(collecting, fails):
    """The start's imports (half a million objects) are neither scanned by each full collection among them
    nor by every later one: the collector is off until the start is done, then blind to what it made; it
    is given back as it was when the sweep ends, or fails."""
    from rnnbench.util.collector import uncollected_start

    (gc.enable if collecting else gc.disable)()
    try:
        with contextlib.suppress(RuntimeError), uncollected_start() as started:
            assert not gc.isenabled() and gc.get_freeze_count() == 0
            made_at_start = [[] for _ in range(100)]
            started()
            assert gc.isenabled() == collecting and gc.get_freeze_count() >= len(made_at_start)
            if fails:
                raise RuntimeError("a trial's error")
        assert gc.isenabled() == collecting and gc.get_freeze_count() == 0
        gc.freeze()  # a process that froze its own objects keeps them frozen
        frozen = gc.get_freeze_count()
        with uncollected_start() as started:
            made_later = [[] for _ in range(100)]
            started()  # neither thawed (0) nor frozen again with the start's objects (100 more); a few freed
            assert frozen - 50 < gc.get_freeze_count() <= frozen < frozen + len(made_later)
        assert frozen - 50 < gc.get_freeze_count() <= frozen and gc.isenabled() == collecting
    finally:
        gc.unfreeze()
        gc.enable()


def test_a_workers_first_trial_imports_without_the_collector_and_freezes_it_once(monkeypatch):
    import threading

    from rnnbench.sweep import worker

    monkeypatch.setattr(worker, "_imported", threading.Event())
    try:
        with worker._first_imports():
            assert not gc.isenabled()
        assert gc.isenabled() and gc.get_freeze_count() > 0
        gc.unfreeze()
        with worker._first_imports():  # a later trial of the same process: nothing to do
            assert gc.isenabled()
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
        gc.enable()


def _last_line_of_fresh_python(code: str) -> str:
    """What ``code`` printed last, run in a fresh interpreter as a command would be (exit 0 checked)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split("\n")[-2]


def test_a_start_whose_gcs_died_is_given_up_at_once_and_one_still_starting_is_waited_for(monkeypatch):
    """A SIGTERM to the command's process group ends Ray's GCS and raylet as they start; ray.init then
    tried to reach the dead GCS for 15 s. The stop takes "not started" at once where the start's GCS or
    raylet has exited, and keeps waiting for the start's own answer while they live."""
    import threading
    from concurrent.futures import Future

    from rnnbench.sweep import cluster
    from rnnbench.sweep.cluster import RayStart

    class Process:
        def __init__(self, code):
            self.code = code

        def poll(self):
            return self.code

    def started(*kinds):
        return [(kind, type("Info", (), {"process": Process(code)})()) for kind, code in kinds]

    disconnected = []
    monkeypatch.setattr(cluster, "disconnect", disconnected.append)
    start = RayStart()
    start._starting = Future()  # a ray.init answering "started" only after ray.init's retries
    late = threading.Timer(15, lambda: start._starting.set_result(True))
    late.start()
    monkeypatch.setattr(cluster, "_head_processes", started(("gcs_server", -15), ("raylet", None)))
    start.stop(hand_on=False)
    late.cancel()
    assert disconnected == [False] and start._release.is_set(), "given up at once, nothing to shut down"
    start = RayStart()
    start._starting = Future()
    with pytest.raises(SweepError, match="lost its GCS server or raylet while starting"):
        start.wait()  # the driver's wait for Ray, once the checks are done

    start = RayStart()
    start._starting = Future()
    monkeypatch.setattr(
        cluster, "_head_processes", started(("gcs_server", None), ("raylet", None), ("dashboard_agent", 1))
    )
    waited = []

    def answer_later():
        time.sleep(0.5)
        waited.append(True)
        start._starting.set_result(False)

    threading.Thread(target=answer_later).start()
    start.stop(hand_on=False)
    assert waited == [True] and disconnected == [False, False], "a live head's start is waited for"


def test_ray_started_in_a_thread_beside_the_checks_outlives_it_and_stops_once():
    """In a fresh process, as the command is: Ray starts in a thread while the main thread works; its
    processes (started from that thread with a parent-death signal) stay up after the start, SIGTERM then
    stops the sweep as Ctrl-C does, and stopping twice shuts Ray down once and gives the environment back.
    A sweep's own Ray starts without its autoscaler monitor, API server and log monitor (``lean_head``);
    with ``RNNBENCH_LEAN_RAY=0`` it has all three, and the monitor is already ended when ``ray.shutdown`` starts (which
    kills the raylet and the GCS first, and then waited a second for the monitor, blocked on the GCS).
    The lean Ray runs ``lean_agent`` for the runtime-env agent, and for the dashboard agent where that would
    run minimal (writing the same "not served" ports). Either way none of the processes ``ray.init`` started
    is left, nor the raylet's agents."""
    code = (
        "import os, signal, threading, time, ray\n"
        "from rnnbench.sweep import cluster\n"
        "from rnnbench.sweep.cluster import RayStart, stop_as_on_ctrl_c\n"
        "from rnnbench.sweep.settings import SweepSettings\n"
        "from rnnbench.sweep.lean_agent import PORTS\n"
        "from ray._private import services\n"
        "from ray._private.utils import get_dashboard_dependency_error\n"
        "import psutil\n"
        "starts, start_process = [], services.start_ray_process\n"
        "stops, real = [], cluster.disconnect\n"
        "cluster.disconnect = lambda started: (stops.append(started), real(started))\n"
        "monitor_at_shutdown, real_shutdown = [], ray.shutdown\n"
        "def shutdown(**kwargs):\n"
        "    monitor_at_shutdown.append([p.poll() for p in processes.get('monitor', [])])\n"
        "    real_shutdown(**kwargs)\n"
        "ray.shutdown = shutdown\n"
        "os.environ.pop('RAY_prestart_worker_first_driver', None)\n"
        "def one_start():\n"
        "    global processes\n"
        "    start = RayStart()\n"
        "    start.begin(SweepSettings())\n"
        "    assert [t for t in threading.enumerate() if t.name.startswith('rnnbench-ray')]\n"
        "    assert start.wait() is True and signal.getsignal(signal.SIGTERM) is stop_as_on_ctrl_c\n"
        "    time.sleep(1)\n"
        "    assert ray.get(ray.remote(lambda: 7).remote(), timeout=60) == 7, 'Ray is still up'\n"
        "    node = ray._private.worker._global_node\n"
        "    processes = {kind: [i.process for i in infos] for kind, infos in node.all_processes.items()}\n"
        "    agents = psutil.Process(processes['raylet'][0].pid).children()\n"
        "    commands = [' '.join(agent.cmdline()) for agent in agents]\n"
        "    ports = [open(f'{node.get_session_dir_path()}/{name}_{node.node_id}').read() for name in PORTS]\n"
        "    start.stop(); start.stop()\n"
        "    left = [kind for kind, found in processes.items() for p in found if p.poll() is None]\n"
        "    assert not psutil.wait_procs(agents, timeout=30)[1], commands\n"
        "    stand_in = any('lean_agent.py' in c and '--minimal' in c for c in commands)\n"
        "    env_stand_in = any('lean_agent.py' in c and '--runtime-env-agent-port=' in c for c in commands)\n"
        "    # Ray's agents name their processes ray::DashboardAgent and ray::RuntimeEnvAgent\n"
        "    assert stand_in != any('DashboardAgent' in c for c in commands), commands\n"
        "    assert env_stand_in != any('RuntimeEnvAgent' in c for c in commands), commands\n"
        "    assert ports == ['-1'] * 3 or not stand_in, ports\n"
        "    starts.append((stand_in, env_stand_in))\n"
        "    assert {'raylet', 'gcs_server'} <= set(processes) and not left, (processes, left)\n"
        "    assert not ray.is_initialized() and 'RAY_prestart_worker_first_driver' not in os.environ\n"
        "    assert signal.getsignal(signal.SIGTERM) is not stop_as_on_ctrl_c\n"
        "    return set(processes)\n"
        "lean = one_start()\n"
        "assert not {'monitor', 'dashboard', 'log_monitor'} & lean, lean\n"
        "assert monitor_at_shutdown == [[]], monitor_at_shutdown\n"
        "os.environ['RNNBENCH_LEAN_RAY'] = '0'\n"
        "whole = one_start()\n"
        "assert {'monitor', 'dashboard', 'log_monitor'} <= whole, whole\n"
        "assert monitor_at_shutdown[1] == [-signal.SIGKILL], monitor_at_shutdown\n"
        "assert stops == [True, True], stops\n"
        "from ray._private.node import Node\n"
        "assert [getattr(Node, m).__name__ for m in cluster.LEFT_OUT] == list(cluster.LEFT_OUT), 'given back'\n"
        "assert services.start_ray_process is start_process, 'given back'\n"
        "minimal = get_dashboard_dependency_error() is not None\n"
        "assert starts == [(minimal, True), (False, False)], (starts, minimal)\n"
        "print('ok')\n"
    )
    assert _last_line_of_fresh_python(code) == "ok"


def test_a_ray_notice_is_silenced_by_one_filter_however_many_sweeps_a_process_runs(caplog):
    import logging

    from rnnbench.sweep.cluster import silence

    logger = logging.getLogger("rnnbench.test.silenced")
    for _ in range(3):
        silence("rnnbench.test.silenced", "noisy notice")
    assert len(logger.filters) == 1
    with caplog.at_level(logging.WARNING, logger="rnnbench.test.silenced"):
        logger.warning("a noisy notice from Ray")
        logger.warning("something else")
    assert [r.getMessage() for r in caplog.records] == ["something else"]


def test_ctrl_c_and_sigterm_are_held_while_the_store_and_ray_start():
    """Both arrive during the block and are handed back after it, not raised inside: raised while the
    store's thread imports, a KeyboardInterrupt can leave CPython's import lock held (a hang in CI)."""
    import signal as signals
    import threading

    from rnnbench.sweep.cluster import held_interrupts, stop_as_on_ctrl_c, terminated

    # Python's own handler, as in a fresh command (a sweep run earlier in this process leaves Tune's).
    outside = signals.signal(signals.SIGINT, signals.default_int_handler)
    try:
        with held_interrupts() as held:
            os.kill(os.getpid(), signals.SIGINT)
            time.sleep(0.05)  # the handler runs between bytecodes of this (main) thread
            stop_as_on_ctrl_c(signals.SIGTERM, None)
        assert held == [signals.SIGINT, signals.SIGINT] and terminated.is_set()
        terminated.clear()
        assert signals.getsignal(signals.SIGINT) is signals.default_int_handler
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signals.SIGINT)
            time.sleep(0.05)
        off_main = []
        thread = threading.Thread(target=lambda: off_main.append(held_interrupts().__enter__()))
        thread.start()
        thread.join()
        assert off_main == [[]] and signals.getsignal(signals.SIGINT) is signals.default_int_handler
    finally:
        signals.signal(signals.SIGINT, outside)


# --- through the command line, in its own process -------------------------------------------------


def cli(tmp_path: Path, *args: str, extra_env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("RNNBENCH_PLUGINS", "MLFLOW_TRACKING_URI")}
    env["RNNBENCH_CACHE_DIR"] = str(tmp_path / "cache")
    env.update(extra_env or {})
    script = Path(sys.executable).parent / "rnnbench"
    return subprocess.Popen([str(script), *args], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, **kwargs)  # fmt: skip


def test_sweep_file_and_flags(tmp_path, ray_address):
    (tmp_path / "sweep.toml").write_text(
        'task = "temporal_order"\ncells = ["rnn"]\ntrials = 2\nepochs = 2\nname = "fromfile"\n'
        "[task_options]\nlength = 16\ntrain_size = 128\nvalidation_size = 32\ntest_size = 64\n"
        "[space_overrides]\ndepth = 1\nwidth = { low = 8, high = 12 }\n[train]\nbatch_size = 32\n"
    )
    # One trial at a time (settings() says why): each concurrent trial is one more worker process to start.
    timings = tmp_path / "timings.jsonl"
    process = cli(tmp_path, "sweep", "sweep.toml", "--trials", "3", "--max-concurrent", "1", "--json", "--address",
                  ray_address, extra_env={TIMINGS: str(timings)})  # fmt: skip
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    summary = json.loads(out)  # stdout is JSON only
    # The driver logged the best model without importing torch: its worker wrote the model's files (where
    # the checks cannot fork, off Linux, they import torch in the driver).
    marks = [json.loads(line) for line in timings.read_text().splitlines()]
    driver = next(m["pid"] for m in marks if m["mark"] == "command imported")
    said = {(m["mark"], m["torch"]) for m in marks if m["pid"] == driver}
    if sys.platform.startswith("linux"):
        assert ("best models logged", False) in said and ("command done", False) in said, said
    assert summary["best"]["rnn"]["model_uri"].startswith("models:/m-")
    noise = [line for line in err.splitlines() if line.strip()]
    assert not noise, f"--json: nothing on stderr for a clean run, got {noise[:5]}"
    assert summary["name"] == "fromfile" and list(summary["counts"]) == ["rnn"]
    assert sum(summary["counts"]["rnn"].values()) == 3, "the --trials flag wins over the file"
    runs = trial_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "fromfile")
    assert len(runs) == 3 and all(r.data.params["task"] == "temporal_order" for r in runs)
    assert all(8 <= int(r.data.params["width"]) <= 12 for r in runs)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("trials = 'eight'\n", "sweep file sweep.toml, key 'trials': must be integer, got 'eight'"),
        ("trails = 8\n", "key 'trails': unknown key; valid keys: address, cache_dir, cells"),
        (
            "cells = 3\n",
            "key 'cells': cells must be 'all', 'odyssey', a comma-separated string or a list of names",
        ),
        ("task = \n", "sweep file sweep.toml is not valid TOML"),
        ("[train]\nbatchsize = 3\n", "key 'train.batchsize': unknown; valid keys: batch_size"),
        ("space = 3\n", "key 'space': must be string, got 3"),
        ("space_overrides = 3\n", "key 'space_overrides': must be a table ([space_overrides]), got int"),
        ("[space_overrides]\nwidth = { low = 64, high = 8 }\n", "key 'space_overrides.width'"),
        (
            "gpus_per_trial = 1.5\n",
            "key 'gpus_per_trial': must be a fraction up to 1, or a whole number of GPUs",
        ),
    ],
)
def test_malformed_sweep_file(tmp_path, content, message):
    (tmp_path / "sweep.toml").write_text(content)
    process = cli(tmp_path, "sweep", "sweep.toml")
    out, err = process.communicate(timeout=300)
    assert process.returncode == 2, out + err
    assert message in " ".join(err.split())
    assert "Traceback" not in err


def test_a_finished_sweep_grows_to_more_trials_keeping_the_first_ones(tmp_path, ray_session):
    """`rnnbench sweep --resume NAME --trials N`: each cell's study goes on to N trials with its history;
    the trials already run are untouched and the new ones draw new configurations; `rnnbench status` says
    what was done and what is left."""
    from rnnbench.sweep import resolve_settings
    from rnnbench.sweep.status import sweep_status

    s = settings(tmp_path, cells=["rnn", "gru"], trials=2, epochs=1, grace_period=1, sampler="random",
                 space_overrides={"depth": 1, "width": {"low": 4, "high": 64}})  # fmt: skip
    run_sweep(s)
    done = sweep_status("s1", s.sweeps_dir)
    assert done.finished == {"rnn": 2, "gru": 2} and done.runs_left == 0 and done.median_seconds > 0
    before = {(r.data.tags["cell"], r.info.run_id): r for r in trial_runs(s.tracking_uri, "s1")}
    grown = resolve_settings(None, {"trials": 4, "sweeps_dir": s.sweeps_dir}, resume="s1")
    assert grown.trials == 4 and grown.cells == ["rnn", "gru"]
    seen: list[dict] = []
    result = run_sweep(
        grown, resume=True, listener=lambda p: seen.append({c: v.best for c, v in p.cells.items()})
    )
    for cell in ("rnn", "gru"):
        runs = trial_runs(s.tracking_uri, "s1", cell)
        done = [r for r in runs if r.data.tags["status"] == "completed"]
        earlier = [r.data.metrics["best_val_loss"] for r in done if (cell, r.info.run_id) in before]
        # The live table of the grown sweep starts from the first trials' best (val_loss: the lowest).
        assert next(v[cell] for v in seen if v[cell] is not None) == min(earlier)
        assert seen[-1][cell] == min(r.data.metrics["best_val_loss"] for r in done)
        assert sorted(int(r.data.tags["optuna_trial"]) for r in runs) == [0, 1, 2, 3], "exactly 4 per cell"
        first = [r for r in runs if (cell, r.info.run_id) in before]
        assert len(first) == 2, "the first two trials are the same runs"
        for run in first:
            old = before[(cell, run.info.run_id)]
            assert (run.info.end_time, run.data.metrics, run.data.params) == (
                old.info.end_time, old.data.metrics, old.data.params)  # fmt: skip
        widths = [r.data.params["width"] + r.data.params["lr"] for r in runs]
        assert len(set(widths)) == 4, "the grown trials draw new configurations, not the first ones again"
    assert result.counts["rnn"]["completed"] + result.counts["rnn"]["pruned"] == 4
    status = sweep_status("s1", s.sweeps_dir)
    assert status.trials == 4 and status.finished == {"rnn": 4, "gru": 4} and status.seconds_left == 0
    assert status.lines()[0].startswith("sweep s1: trials rnn 4/4, gru 4/4")
    client = MlflowClient(s.tracking_uri)
    assert client.get_run(result.parent_run_id).data.tags["trials"] == "4"
    with pytest.raises(
        SweepConfigError, match=r"--trials 1: sweep 's1' has 4 trials per cell; .* grow, not shrink"
    ):
        resolve_settings(None, {"trials": 1, "sweeps_dir": s.sweeps_dir}, resume="s1")


def test_resume_of_unknown_sweep(tmp_path):
    process = cli(tmp_path, "sweep", "--resume", "nope")
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2 and "no sweep named 'nope'" in err


# Trials that last seconds on any machine (tests/plugins/paced.py): a test that signals or kills a sweep
# mid-run finds trials running when it acts, without sizing their work for the fastest host.
PACED = {"RNNBENCH_PLUGINS": str(TEST_PLUGINS / "paced.py")}
# The same cells without the waits (tests/plugins/unpaced.py), for the resume after the stop: its counts
# are the point, and its trials, paced, waited 4 s each on the test's Ray. (Its runs name unpaced.py as
# their plugin: a resume checks the cells' names, not the files that registered them.)
UNPACED = {"RNNBENCH_PLUGINS": str(TEST_PLUGINS / "unpaced.py")}


def wait_for_a_finished_trial(uri: str, sweep: str, timeout: float = 300) -> None:
    """Poll the store (which the sweep may still be creating) until one trial run has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(1)
        try:
            if any(r.info.status == "FINISHED" for r in trial_runs(uri, sweep)):
                return
        except Exception:  # the store is still being created
            continue


def test_ctrl_c_stops_cleanly_prints_the_resume_command_and_resumes(tmp_path, ray_address):
    import signal as signals

    # Without --json: the live table's last frame, off a terminal, then the resume command on its own line.
    args = ["sweep", "--cells", "paced-gru", "--trials", "4", "--epochs", "3", "--length", "12", "--name", "ctrlc",
            "-o", "train_size=64", "-o", "validation_size=32", "-o", "test_size=32"]  # fmt: skip
    # A Ctrl-C in a terminal: SIGINT with its default handling (a background shell job would ignore it).
    process = cli(
        tmp_path, *args, extra_env=PACED, preexec_fn=lambda: signals.signal(signals.SIGINT, signals.SIG_DFL)
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    wait_for_a_finished_trial(uri, "ctrlc")
    process.send_signal(signals.SIGINT)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 130, err[-2000:]
    assert "continue it with: rnnbench sweep --resume ctrlc" in err and "Tuner.restore" not in err
    assert re.search(r"(?m)^sweep 'ctrlc' interrupted; continue it with", err), err[-600:]
    assert "sweep ctrlc:" in err, "the live table was drawn"
    runs = trial_runs(uri, "ctrlc")
    assert runs and all(r.info.status in ("FINISHED", "FAILED", "KILLED") for r in runs), (
        "nothing left RUNNING"
    )
    # The stop is what runs on a Ray of the sweep's own; the resume joins the session's (its counts are the point).
    resumed = cli(
        tmp_path, "sweep", "--resume", "ctrlc", "--json", "--address", ray_address, extra_env=UNPACED
    )
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    runs = trial_runs(uri, "ctrlc")
    assert len(runs) == 4 and sorted(int(r.data.tags["optuna_trial"]) for r in runs) == list(range(4))
    assert all(r.info.status in ("FINISHED", "FAILED") for r in runs)


def test_a_paired_sweep_gives_every_cell_the_same_configurations(tmp_path, ray_session):
    """`paired = true` draws the configurations once per sweep and queues them in each cell's study: with
    TPE, which adapts to each cell's results after its start-up trial, the cells still train the same ones."""
    from rnnbench.analysis.leaderboard import build

    s = settings(tmp_path, cells=["rnn", "gru"], trials=3, epochs=1, grace_period=1, sampler="tpe",
                 startup_trials=1, paired=True, space_overrides={"depth": 1})  # fmt: skip
    run_sweep(s)
    by_cell = {
        cell: {r.data.tags["optuna_trial"]: (r.data.params["width"], r.data.params["lr"])
               for r in trial_runs(s.tracking_uri, "s1", cell)}
        for cell in ("rnn", "gru")
    }  # fmt: skip
    assert by_cell["rnn"] == by_cell["gru"] and len(set(by_cell["rnn"].values())) == 3
    client = MlflowClient(s.tracking_uri)
    parent = client.search_runs([client.get_experiment_by_name("rnnbench").experiment_id],
                                "tags.kind = 'sweep'")[0]  # fmt: skip
    assert parent.data.tags["paired"] == "true", "checked after the sweep, not assumed"
    board = build(s.tracking_uri, metric="test_accuracy", with_importance=False)
    compared = [e for e in board.entries if e.paired is not None]
    completed = min(e.counts["completed"] for e in board.entries)
    if completed >= 2:
        assert len(compared) == 1 and compared[0].paired.test == "Wilcoxon"
    grown = SweepSettings(**{**s.as_dict(), "trials": 5})
    run_sweep(grown, resume=True)
    widths = {cell: [r.data.params["width"] for r in sorted(trial_runs(s.tracking_uri, "s1", cell),
                                                            key=lambda r: int(r.data.tags["optuna_trial"]))]
              for cell in ("rnn", "gru")}  # fmt: skip
    assert widths["rnn"] == widths["gru"] and len(widths["rnn"]) == 5, "a grown paired sweep stays paired"


def test_a_relative_data_path_means_the_file_in_the_folder_the_command_ran_in(tmp_path, ray_address):
    """`-o path=data.csv` (the README's form) trains in every Ray worker, whose working folder is Ray's; the
    set-up still names the file as typed, not this machine's absolute path."""
    lines = ["sequence,label"] + [
        f'"{" ".join(str((k * j) % 7 / 7) for j in range(6))}",{k % 2}' for k in range(80)
    ]
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n")
    # One trial at a time: both run in one Ray worker (Ray's working folder), without a second worker's start.
    # With a reseed: the best trial's task is rebuilt from what its run recorded (hf's sizes of 0 once failed).
    process = cli(tmp_path, "sweep", "--task", "hf", "-o", "path=data.csv", "--cells", "rnn", "--trials", "2",
                  "--epochs", "1", "--name", "rel", "--json", "--max-concurrent", "1", "--address", ray_address,
                  "--reseed", "1")  # fmt: skip
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    runs = trial_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "rel", "rnn")
    assert [r.data.tags["status"] for r in runs] == ["completed", "completed"], [
        r.data.tags.get("error") for r in runs
    ]
    assert {r.data.params["task.path"] for r in runs} == {"data.csv"}
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (reseeded,) = client.search_runs([runs[0].info.experiment_id], "tags.kind = 'reseed'")
    assert reseeded.data.tags["status"] == "completed" and reseeded.data.params["task.path"] == "data.csv"


@pytest.mark.parametrize(("before", "during"), [(None, "false"), ("true", "true")])
def test_an_embedded_ray_prestarts_no_idle_workers_unless_told_and_gives_the_environment_back(
    monkeypatch, before, during
):
    """A sweep runs no Ray tasks, only actors (each a new process), so the workers Ray prestarts for a
    first driver only slowed its start; a user's own setting is kept, and Ray's shutdown restores all."""
    import ray

    from rnnbench.sweep import cluster

    key = "RAY_prestart_worker_first_driver"
    if before is None:
        monkeypatch.delenv(key, raising=False)
    else:
        monkeypatch.setenv(key, before)
    monkeypatch.setattr(ray, "shutdown", lambda: None)  # the test session's Ray stays up
    monkeypatch.setattr(cluster, "end_autoscaler_monitor", lambda: None)  # the test session's Ray stays up
    cluster._embedded_environment()
    assert os.environ.get(key) == during and os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"
    cluster.disconnect(True)
    assert os.environ.get(key) == before
