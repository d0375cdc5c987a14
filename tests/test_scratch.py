"""A trial worker killed while Tune copies its checkpoint leaves the checkpoint in the host's temporary
folder; the next worker on the host removes it (``rnnbench.sweep.scratch``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from rnnbench.sweep.scratch import PREFIX, _host

# A worker's checkpoint on its way to Tune, then the worker killed before Tune is done with it.
KILLED_MID_REPORT = textwrap.dedent("""
    import os, signal, tempfile
    from pathlib import Path
    from rnnbench.sweep.scratch import scratch_root
    with tempfile.TemporaryDirectory(prefix="checkpoint-", dir=scratch_root()) as folder:
        (Path(folder) / "state.pt").write_bytes(b"weights" * 1000)
        os.kill(os.getpid(), signal.SIGKILL)
""")
NEXT_WORKER = "from rnnbench.sweep.scratch import scratch_root; print(scratch_root())"


def _python(code: str, tmp_path, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    return subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True, **kwargs
    )


def test_a_worker_killed_mid_report_leaves_its_checkpoint_and_the_next_worker_removes_it(tmp_path):
    killed = _python(KILLED_MID_REPORT, tmp_path)
    assert killed.wait(timeout=60) == -signal.SIGKILL
    left = tmp_path / f"{PREFIX}{_host()}-{killed.pid}"
    assert list(left.glob("checkpoint-*/state.pt")), (
        "the killed worker's checkpoint is left, named by its pid"
    )

    # Kept: a running worker's folder, another host's (a temporary folder shared by containers), anything else.
    running = _python("import sys; sys.stdin.read()", tmp_path, stdin=subprocess.PIPE)
    try:
        kept = [tmp_path / f"{PREFIX}{_host()}-{running.pid}", tmp_path / f"{PREFIX}elsewhere-{killed.pid}",
                tmp_path / f"{PREFIX}{_host()}-notapid", tmp_path / "rnnbench-checkpoint-abc123"]  # fmt: skip
        for folder in kept:
            (folder / "checkpoint-x").mkdir(parents=True)
        nxt = _python(NEXT_WORKER, tmp_path)
        out, _ = nxt.communicate(timeout=60)
        assert nxt.returncode == 0
        assert out.strip() == str(tmp_path / f"{PREFIX}{_host()}-{nxt.pid}"), "its own folder, under TMPDIR"
        assert not left.exists(), "the killed worker's folder is removed by the next worker"
        assert all((folder / "checkpoint-x").is_dir() for folder in kept)
    finally:
        running.communicate(timeout=60)
