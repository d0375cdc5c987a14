"""Beyond one machine: a local two-node Ray cluster with logical GPUs, and a real MLflow server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from benchmarks.ui_start import free_port
from rnnbench.sweep import run_sweep
from rnnbench.sweep.settings import SweepSettings
from rnnbench.tracking.store import TrackingError
from tests.conftest import REPO, TINY_TASK

pytestmark = pytest.mark.slow

CLUSTER_SCRIPT = textwrap.dedent(
    """
    import json, logging, sys
    import ray
    from ray.cluster_utils import Cluster
    from rnnbench.sweep import run_sweep
    from rnnbench.sweep.cluster import lean_head
    from rnnbench.sweep.settings import SweepSettings

    folder, task = sys.argv[1], json.loads(sys.argv[2])
    # Without the processes a sweep's own Ray leaves out (lean_head: seconds of CPU on 2 cores).
    # One CPU a node: the CPU sweep's two concurrent trials must take one node each, and each sweep starts
    # two trial workers (a new process each, seconds of CPU), reused for its four trials.
    with lean_head():
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        cluster.add_node(num_cpus=1, num_gpus=2)  # logical GPUs: Ray schedules them, CUDA need not exist
    cluster.wait_for_nodes()
    out = {}
    try:
        for name, gpus, cpus in (("cpu-sweep", 0.0, 1.0), ("gpu-sweep", 0.5, 0.5)):
            settings = SweepSettings(
                task="adding", cells=["gru"], trials=4, epochs=2, task_options=task, name=name,
                address=cluster.address, gpus_per_trial=gpus, cpus_per_trial=cpus,
                tracking_uri=f"sqlite:///{folder}/mlflow.db", sweeps_dir=f"{folder}/sweeps",
                cache_dir=f"{folder}/cache", train={"batch_size": 32},
            )
            result = run_sweep(settings)
            out[name] = {"parent": result.parent_run_id, "counts": result.counts, "nodes": len(ray.nodes())
                         if ray.is_initialized() else None}
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
    print("RESULT " + json.dumps(out))
    """
)


def test_sweep_on_two_node_cluster_with_fractional_logical_gpus(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RNNBENCH_PLUGINS"}
    process = subprocess.run(
        [sys.executable, "-c", CLUSTER_SCRIPT, str(tmp_path), json.dumps(TINY_TASK)],
        capture_output=True, text=True, timeout=600, cwd=REPO, env=env,
    )  # fmt: skip
    assert process.returncode == 0, process.stderr[-3000:]
    line = next(line for line in process.stdout.splitlines() if line.startswith("RESULT "))
    out = json.loads(line.removeprefix("RESULT "))
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("rnnbench").experiment_id

    def runs(sweep):
        return client.search_runs([experiment], f"tags.sweep = '{sweep}' and tags.optuna_trial != ''")

    cpu_runs = runs("cpu-sweep")
    assert len(cpu_runs) == 4 and sum(out["cpu-sweep"]["counts"]["gru"].values()) == 4
    assert len({r.data.tags["node_id"] for r in cpu_runs}) == 2, "trials ran on both nodes"
    pids = sorted({r.data.tags["pid"] for r in cpu_runs})
    assert len(pids) == 2, f"two trial workers, each reused by later trials: {pids}"
    assert all(r.data.tags["gpu_ids"] == "" for r in cpu_runs)

    gpu_runs = runs("gpu-sweep")
    assert len(gpu_runs) == 4
    for run in gpu_runs:
        assert run.data.params["gpus_per_trial"] == "0.5"
        assert run.data.tags["gpu_ids"] in ("0", "1"), "each trial got one logical GPU id"
        assert run.data.tags["cuda_visible_devices"] == run.data.tags["gpu_ids"], "and sees only that device"
    assert len({r.data.tags["node_id"] for r in gpu_runs}) == 1, "only the node with GPUs runs GPU trials"
    pids = sorted({r.data.tags["pid"] for r in gpu_runs})
    assert len(pids) == 2, f"two trial workers (a CPU each, half a GPU each): {pids}"


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real ``mlflow server`` on 127.0.0.1 with its own sqlite store and artifact folder."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    process = subprocess.Popen(
        [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{folder / 'server.db'}", "--artifacts-destination", str(folder / "art")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        # Without MLflow's job runner (eight processes of huey consumers, for GenAI jobs no sweep makes):
        # they took about 35 s of CPU in the suite for nothing this test uses (`rnnbench ui` turns it off too).
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2).close()
            break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("mlflow server did not start within 90 s")
    yield url
    os.killpg(process.pid, 15)
    process.wait(timeout=30)


def test_sweep_logs_to_a_real_mlflow_server(tmp_path, ray_session, mlflow_server):
    settings = SweepSettings(
        task="adding", cells=["rnn"], trials=2, epochs=2, task_options=dict(TINY_TASK), name="remote",
        tracking_uri=mlflow_server, sweeps_dir=str(tmp_path / "sweeps"), cache_dir=str(tmp_path / "cache"),
        train={"batch_size": 32},
    )  # fmt: skip
    result = run_sweep(settings)
    client = MlflowClient(mlflow_server)
    runs = client.search_runs([result.experiment_id], "tags.sweep = 'remote' and tags.optuna_trial != ''")
    assert len(runs) == 2 and result.tracking_uri == mlflow_server
    completed = [r for r in runs if r.data.tags["status"] == "completed"]
    for run in completed:
        assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"lrd_curve.png", "lrd_curve.csv"}
    assert client.get_run(result.parent_run_id).info.status == "FINISHED"


def test_unreachable_tracking_server_fails_before_any_trial(tmp_path, ray_session):
    url = f"http://127.0.0.1:{free_port()}"
    settings = SweepSettings(
        task="adding", cells=["rnn"], trials=1, epochs=1, task_options=dict(TINY_TASK), name="nowhere",
        tracking_uri=url, sweeps_dir=str(tmp_path / "sweeps"), cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    with pytest.raises(TrackingError, match=f"tracking URI {url}: no MLflow server answers"):
        run_sweep(settings)
    assert not (tmp_path / "sweeps" / "nowhere").exists()
