"""What listens where: the embedded Ray of a sweep binds loopback only."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

LISTENERS = textwrap.dedent(
    """
    import json, time
    import psutil, ray
    from rnnbench.sweep.cluster import connect, disconnect
    from rnnbench.sweep.settings import SweepSettings

    started = connect(SweepSettings())  # no --address: the embedded Ray a default sweep starts
    ray.get(ray.remote(lambda: 1).remote())  # a worker process, as every trial has
    time.sleep(1)
    me = psutil.Process()
    rows = []
    for process in [me, *me.children(recursive=True)]:
        try:
            rows += [[process.name(), c.laddr.ip, c.laddr.port] for c in process.net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN]
        except psutil.NoSuchProcess:
            pass
    print(json.dumps(rows))
    disconnect(started)
    """
)
LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


def test_the_embedded_ray_listens_on_loopback_only(tmp_path):
    """Without the single-node setting Ray 2.60 listens on every interface (gcs_server, raylet, core
    workers on ``::``) and its runtime-env agent on the host's address."""
    done = subprocess.run([sys.executable, "-c", LISTENERS], capture_output=True, text=True, timeout=180,
                          cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    listeners = json.loads(done.stdout.strip().splitlines()[-1])
    names = {name for name, _, _ in listeners}
    assert {"gcs_server", "raylet"} <= names and any(n.startswith("ray::") for n in names), listeners
    exposed = [row for row in listeners if row[1] not in LOOPBACK]
    assert not exposed, f"Ray processes listening beyond loopback: {exposed}"
    assert "Token authentication is enabled" not in done.stderr
