"""A trial worker killed while Tune copies its checkpoint leaves the checkpoint in the host's temporary
folder; the next worker removes what ended processes left, and nothing else (``rnnbench.sweep.scratch``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from rnnbench.sweep.scratch import LOCK, PREFIX

# A worker's checkpoint on its way to Tune, then the worker killed before Tune is done with it.
KILLED_MID_REPORT = textwrap.dedent("""
    import os, signal, tempfile
    from pathlib import Path
    from rnnbench.sweep.scratch import scratch_root
    with tempfile.TemporaryDirectory(prefix="checkpoint-", dir=scratch_root()) as folder:
        (Path(folder) / "state.pt").write_bytes(b"weights" * 1000)
        print(scratch_root(), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
""")
RUNNING = "from rnnbench.sweep.scratch import scratch_root; print(scratch_root(), flush=True); input()"
NEXT_WORKER = "from rnnbench.sweep.scratch import scratch_root; print(scratch_root())"
# Its folder removed under it (a cleaner of old temporary files): the next checkpoint still has one.
REMOVED_UNDER_IT = textwrap.dedent("""
    import shutil
    from rnnbench.sweep.scratch import scratch_root
    first = scratch_root()
    shutil.rmtree(first)
    second = scratch_root()
    print(first != second and second.is_dir())
""")


def _python(code: str, tmp_path, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    return subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True, **kwargs
    )


def test_a_worker_killed_mid_report_leaves_its_checkpoint_and_the_next_worker_removes_it(tmp_path):
    killed = _python(KILLED_MID_REPORT, tmp_path)
    left = tmp_path / killed.stdout.readline().strip()
    assert killed.wait(timeout=60) == -signal.SIGKILL
    assert left.parent == tmp_path and left.name.startswith(PREFIX)
    assert list(left.glob("checkpoint-*/state.pt")), "the killed worker's checkpoint is left behind"

    running = _python(RUNNING, tmp_path, stdin=subprocess.PIPE)
    try:
        alive = tmp_path / running.stdout.readline().strip()
        # Not a process's folder, or not one rnnbench can judge: names no pid can be, no lock file (its owner
        # may be making it), a link.
        odd = [
            tmp_path / f"{PREFIX}\u00b2",
            tmp_path / f"{PREFIX}99999999999",
            tmp_path / "rnnbench-checkpoint-abc",
        ]
        for folder in odd:
            (folder / "checkpoint-x").mkdir(parents=True)
        target = tmp_path / "elsewhere"
        (target / "checkpoint-x").mkdir(parents=True)
        (target / LOCK).touch()
        (tmp_path / f"{PREFIX}link").symlink_to(target)

        nxt = _python(NEXT_WORKER, tmp_path)
        out, _ = nxt.communicate(timeout=60)
        assert nxt.returncode == 0
        own = tmp_path / out.strip()
        assert own.parent == tmp_path and own.is_dir() and own not in (left, alive), "a folder of its own"
        assert not left.exists(), "the killed worker's folder is removed by the next worker"
        assert (alive / LOCK).is_file(), "a running worker's folder is kept"
        assert all((folder / "checkpoint-x").is_dir() for folder in [*odd, target])
        assert (tmp_path / f"{PREFIX}link").is_symlink()
    finally:
        running.communicate("\n", timeout=60)


def test_a_folder_removed_under_a_live_worker_is_made_again(tmp_path):
    process = _python(REMOVED_UNDER_IT, tmp_path)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0 and out.strip() == "True"
