"""The compiled kernels' float32 GEMMs on either engine, oneDNN's brgemm or MKL (kernel_math.h): the same
results to rounding, oneDNN's bits independent of the thread count, the engine named, a bad choice refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnnbench.cells.kernels import GEMM_ENV, KernelChoiceError, gemm_choice
from tests.conftest import require_lstm_family_kernel

ROOT = Path(__file__).resolve().parent.parent
NAMES = {"onednn": "oneDNN's brgemm", "mkl": "MKL's packed GEMM"}


def run_passes(tmp_path: Path, *runs: tuple[str, int]) -> list[dict]:
    """Each (engine, threads) in a fresh process, all at once; their saved passes in order."""
    outs = [tmp_path / f"{engine}-{threads}.pt" for engine, threads in runs]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.gemm_engines", engine, str(threads), str(out)], cwd=ROOT
        )
        for (engine, threads), out in zip(runs, outs, strict=True)
    ]
    assert [p.wait(timeout=300) for p in processes] == [0] * len(runs)
    return [torch.load(out) for out in outs]


def engines_here() -> list[str]:
    require_lstm_family_kernel()
    found = [
        e
        for e, ok in (
            ("onednn", torch.backends.mkldnn.is_available()),
            ("mkl", torch.backends.mkl.is_available()),
        )
        if ok
    ]
    if len(found) < 2:
        pytest.skip(f"this torch has only {found or 'neither engine'}")
    return found


def test_both_engines_give_the_same_outputs_and_gradients_to_rounding(tmp_path):
    engines_here()
    onednn, onednn_two, mkl = run_passes(tmp_path, ("onednn", 1), ("onednn", 2), ("mkl", 1))
    assert set(onednn["engines"].values()) == {NAMES["onednn"]}
    assert set(mkl["engines"].values()) == {NAMES["mkl"]}
    for passes in (onednn, mkl):
        assert all(passes[f"{cell} parameters kept"] for cell in ("peephole", "fgr", "gru")), passes[
            "engines"
        ]
    for cell in ("peephole", "fgr", "gru"):
        for index, (a, b) in enumerate(zip(onednn[cell], mkl[cell], strict=True)):
            scale = b.abs().max().item()
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * scale, msg=f"{cell}: tensor {index}")
        # Each block of C is one thread's with all of k in a fixed order: the same bits on two threads. (At these
        # batches each step's pointwise work, the per-thread peephole sums included, runs on one thread; larger
        # ones would split it, and the peephole gradient's sum order with it, whatever the engine.)
        assert all(torch.equal(a, b) for a, b in zip(onednn[cell], onednn_two[cell], strict=True)), cell


def test_auto_takes_onednn_where_mkl_leaves_avx512_unused(tmp_path):
    engines_here()
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = set(
        next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    )
    avx512 = {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"} <= flags
    intel = "GenuineIntel" in cpuinfo
    from rnnbench.cells.lstm_family import KERNEL

    cloned = not KERNEL.vector_clone().startswith(
        "single build"
    )  # a GCC build for x86-64 Linux checks the CPU
    (passes,) = run_passes(tmp_path, ("auto", 1))
    engines = passes["engines"]
    expected = NAMES["onednn"] if avx512 and not intel and cloned else NAMES["mkl"]
    assert set(engines.values()) == {expected}, (engines, "intel" if intel else "not intel", avx512)


def test_a_bad_engine_choice_is_refused_with_the_choices(monkeypatch):
    monkeypatch.setenv(GEMM_ENV, " oneDNN ")
    assert gemm_choice() == "onednn"
    for bad in ("fast", "one dnn", "m\u212al"):  # the last lower-cases to "mkl" in Python, not in C++
        monkeypatch.setenv(GEMM_ENV, bad)
        with pytest.raises(KernelChoiceError, match=r"RNNBENCH_CPU_GEMM='.*'.*auto, mkl, onednn"):
            gemm_choice()


def test_a_bad_engine_choice_stops_the_cell_instead_of_falling_back():
    """On the `auto` kernel path a kernel that cannot load falls back to PyTorch with a warning; a bad engine
    choice is the user's error and must not be swallowed that way."""
    require_lstm_family_kernel()
    code = ("import torch\nfrom rnnbench.cells.lstm_family import PEEPHOLE, LSTMFamilyLayer\n"
            "LSTMFamilyLayer(3, 4, PEEPHOLE)(torch.randn(2, 5, 3))\n")  # fmt: skip
    env = {**os.environ, GEMM_ENV: "fast"}
    env.pop("RNNBENCH_PEEPHOLE_KERNEL", None)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode != 0
    assert "KernelChoiceError: RNNBENCH_CPU_GEMM='fast' is not a valid choice" in done.stderr, done.stderr[
        -2000:
    ]
    assert "falls back" not in done.stderr


def test_the_bootstrap_build_names_a_bad_engine_choice_without_a_traceback():
    env = {**os.environ, GEMM_ENV: "fast"}
    done = subprocess.run([sys.executable, "-m", "rnnbench.cells.prebuild"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 2
    assert "RNNBENCH_CPU_GEMM='fast' is not a valid choice; use one of: auto, mkl, onednn" in done.stderr
    assert "Traceback" not in done.stderr
