"""A trial worker killed while Tune copies its checkpoint leaves the checkpoint in the host's temporary
folder; the next worker removes what ended processes left, and nothing else (``rnnbench.sweep.scratch``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from rnnbench.sweep.scratch import LOCK, PREFIX, kernel_id

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
# Its folder removed under it (a cleaner of old temporary files): the next checkpoint still has one, and
# the first folder's lock is let go, not leaked.
REMOVED_UNDER_IT = textwrap.dedent("""
    import os, shutil
    from rnnbench.sweep.scratch import scratch_root
    first = scratch_root()
    descriptors = len(os.listdir("/proc/self/fd"))
    shutil.rmtree(first)
    second = scratch_root()
    print(first != second and second.is_dir(), len(os.listdir("/proc/self/fd")) == descriptors)
""")


def _python(code: str, tmp_path, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    return subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True, **kwargs
    )


def test_a_worker_killed_mid_report_leaves_its_checkpoint_and_the_next_worker_removes_it(tmp_path):
    mine = f"{PREFIX}{kernel_id()}-"
    running = _python(RUNNING, tmp_path, stdin=subprocess.PIPE)  # started first: its own clean-up is done
    try:
        alive = tmp_path / running.stdout.readline().strip()
        killed = _python(KILLED_MID_REPORT, tmp_path)
        left = tmp_path / killed.stdout.readline().strip()
        assert killed.wait(timeout=60) == -signal.SIGKILL
        assert left.parent == tmp_path and left.name.startswith(mine) and (left / LOCK).is_file()
        assert list(left.glob("checkpoint-*/state.pt")), "the killed worker's checkpoint is left behind"

        # Left alone: a folder with no lock file (its owner may be making it), one of another kernel (a
        # temporary folder on a network filesystem), a link, anything else.
        kept = [tmp_path / f"{mine}making", tmp_path / f"{PREFIX}0123456789ab-other", tmp_path / "elsewhere",
                tmp_path / "rnnbench-checkpoint-abc"]  # fmt: skip
        for folder in kept:
            (folder / "checkpoint-x").mkdir(parents=True)
        for folder in kept[1:3]:
            (folder / LOCK).touch()
        (tmp_path / f"{mine}link").symlink_to(kept[2])

        nxt = _python(NEXT_WORKER, tmp_path)
        out, _ = nxt.communicate(timeout=60)
        assert nxt.returncode == 0
        own = tmp_path / out.strip()
        assert own.parent == tmp_path and own.is_dir() and own not in (left, alive), "a folder of its own"
        assert not left.exists(), "the killed worker's folder is removed by the next worker"
        assert (alive / LOCK).is_file(), "a running worker's folder is kept"
        assert all((folder / "checkpoint-x").is_dir() for folder in kept)
        assert (tmp_path / f"{mine}link").is_symlink()
    finally:
        running.communicate("\n", timeout=60)


def test_a_folder_removed_under_a_live_worker_is_made_again(tmp_path):
    process = _python(REMOVED_UNDER_IT, tmp_path)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0 and out.split() == ["True", "True"]
