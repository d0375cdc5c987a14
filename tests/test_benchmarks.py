"""Smoke tests of the benchmarks package: the cells benchmark at tiny sizes, the report, the target arithmetic."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from benchmarks import report
from benchmarks.__main__ import main
from benchmarks.cells import (
    BASELINE,
    GATES,
    ODYSSEY_TARGETS,
    PEEPHOLE_TARGETS,
    gate_flops,
    odyssey_targets,
    parse_sizes,
)

SIZES = "3,5,2,4;2,4,3,6"


# One process builds the module's fixture (scripts/test: --dist loadgroup), not one per process.
pytestmark = pytest.mark.xdist_group("cells-report")


@pytest.fixture(scope="module")
def cells_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("bench")
    code = main(["--only", "cells", "--sizes", SIZES, "--repeats", "2", "--device", "cpu", "--out", str(out)])
    assert code == 0
    return json.loads((out / "report.json").read_text()), out


def test_report_describes_the_run(cells_report: tuple[dict, Path]) -> None:
    data, out = cells_report
    assert set(data) >= {"date", "command", "machine", "benchmarks", "targets"}
    assert data["command"].startswith("python -m benchmarks --only cells")
    machine = data["machine"]
    for key in ("cpu", "cores", "torch", "torch_default_threads", "benchmark_threads"):
        assert machine[key] is not None
    # figures move between CPU generations of one host kind: the report names the vector extensions
    assert isinstance(machine["vector_extensions"], list)
    if Path("/proc/cpuinfo").exists() and "avx2" in Path("/proc/cpuinfo").read_text():
        assert "avx2" in machine["vector_extensions"]
    assert machine["benchmark_threads"] == 1
    assert list(data["benchmarks"]) == ["cells"]
    text = (out / "report.md").read_text()
    assert data["command"] in text
    assert machine["torch"] in text
    assert (
        f"| CPU | {machine['cpu']} (family {machine['cpu_family']}, model {machine['cpu_model_number']}) |"
        in text
    )
    assert "| B x T x I x H | cell |" in text
    # which copy of the kernels ran, and which GEMM their float32 steps ran
    ran = next(n for n in data["benchmarks"]["cells"]["notes"] if n.startswith("compiled kernels ran: "))
    assert "lstm_family " in ran and "gru " in ran
    for kernel in ("lstm_family", "gru"):
        if f"{kernel} not built" not in ran:
            assert re.search(
                rf"{kernel} [^,]* with (oneDNN's brgemm|MKL's packed GEMM|the plain GEMM)", ran
            ), ran


def test_cells_ratios_are_times_over_the_baseline(cells_report: tuple[dict, Path]) -> None:
    import rnnbench

    result = cells_report[0]["benchmarks"]["cells"]
    sizes = [list(s) for s in parse_sizes(SIZES)]
    assert result["params"]["sizes"] == sizes
    measured = result["measurements"]
    # every registered cell and the baseline, at every size, each timed once per repeat
    assert {(tuple(m["size"]), m["cell"]) for m in measured} == {
        (tuple(s), c) for s in sizes for c in [BASELINE, *rnnbench.cell_names()]
    }
    for m in measured:
        assert len(m["times_s"]) == 2 and all(t > 0 for t in m["times_s"])
        assert m["best_s"] == min(m["times_s"])
        baseline = next(b for b in measured if b["size"] == m["size"] and b["cell"] == BASELINE)
        assert m["baseline_best_s"] == baseline["best_s"]
        assert m["ratio"] == pytest.approx(m["best_s"] / baseline["best_s"])
        if m["cell"] in GATES:
            flops = gate_flops(*m["size"], GATES[m["cell"]])
            assert m["gate_gflops"] == pytest.approx(flops / m["best_s"] / 1e9)
            assert m["sgemm_fraction"] == pytest.approx(m["gate_gflops"] / result["sgemm_gflops"])
    assert [m["ratio"] for m in measured if m["cell"] == BASELINE] == [1.0, 1.0]
    assert len(result["table"]["rows"]) == len(measured)


def test_cells_targets_follow_the_measurements(cells_report: tuple[dict, Path]) -> None:
    data = cells_report[0]
    result = data["benchmarks"]["cells"]
    peephole = [m["ratio"] for m in result["measurements"] if m["cell"] == "peephole"]
    assert [t["value"] for t in result["targets"]] == pytest.approx(peephole)
    assert [t["threshold"] for t in result["targets"]] == list(PEEPHOLE_TARGETS[: len(peephole)])
    for t in result["targets"]:
        assert t["op"] == "<="
        assert t["met"] == (t["value"] <= t["threshold"])
    assert [t["benchmark"] for t in data["targets"]] == ["cells"] * len(peephole)


def test_each_odyssey_variant_gets_its_target_at_the_two_sizes_the_issue_names() -> None:
    times = {BASELINE: [2.0, 1.0], "nig": [1.2, 1.25], "fgr": [1.8, 2.5], "lstm": [1.0]}
    per_size = [((16, 100, 64, 64), times), ((64, 100, 32, 128), times), ((64, 100, 512, 512), times)]
    found = odyssey_targets(per_size)
    assert [t["name"] for t in found] == [
        "nig / nn.LSTM time at B,T,I,H=16,100,64,64",
        "fgr / nn.LSTM time at B,T,I,H=16,100,64,64",
        "nig / nn.LSTM time at B,T,I,H=64,100,32,128",
        "fgr / nn.LSTM time at B,T,I,H=64,100,32,128",
    ]
    assert [t["value"] for t in found] == pytest.approx([1.2, 1.8, 1.2, 1.8])
    assert [t["met"] for t in found] == [True, False, True, False]
    assert ODYSSEY_TARGETS["fgr"] == 1.7 and {ODYSSEY_TARGETS[n] for n in ("nig", "np", "cifg")} == {1.3}


def test_cifg_is_held_to_peepholes_time() -> None:
    """CIFG has fewer weights than vanilla: its target is peephole's own time, not only nn.LSTM's."""
    size = (16, 100, 64, 64)
    found = odyssey_targets([(size, {BASELINE: [1.0], "peephole": [0.8], "cifg": [0.9]})])
    assert [(t["name"], t["met"]) for t in found] == [
        ("cifg / nn.LSTM time at B,T,I,H=16,100,64,64", True),
        ("cifg / peephole time at B,T,I,H=16,100,64,64", False),
    ]


def test_target_arithmetic() -> None:
    low = report.target("time", 1.5, "<=", 1.2, "x")
    assert low["met"] is False and low["margin"] == pytest.approx(-0.25)
    assert low["verdict"] == "missed by 25 %"
    high = report.target("speed-up", 1.7, ">=", 1.7, "x")
    assert high["met"] is True and high["margin"] == pytest.approx(0.0)
    assert report.target("speed-up", 3.4, ">=", 1.7)["margin"] == pytest.approx(1.0)
    never = report.target("seconds", math.inf, "<=", 10.0)
    assert never["met"] is False and never["verdict"] == "missed (never reached)"
    assert report.target("x", None, ">=", 1.0)["met"] is None
    with pytest.raises(ValueError):
        report.target("x", 1.0, "<", 1.0)


def test_sizes_are_checked() -> None:
    assert parse_sizes("16,100,64,64") == [(16, 100, 64, 64)]
    with pytest.raises(ValueError):
        parse_sizes("16,100,64")
    with pytest.raises(SystemExit):
        main(["--only", "nope"])


def test_a_reports_sweep_command_names_no_path_of_the_machine() -> None:
    from benchmarks.common import as_typed

    script = ["/home/me/.venv/bin/rnnbench", "sweep", "/tmp/rnnbench-bench-x/harness-0.toml", "--json"]
    assert as_typed(script) == ["rnnbench", "sweep", "harness-0.toml", "--json"]
    through_python = [
        "/usr/bin/python3",
        "-c",
        "from rnnbench.cli import main; main()",
        "sweep",
        "/tmp/a/b.toml",
    ]
    assert as_typed(through_python) == ["rnnbench", "sweep", "b.toml"]


@pytest.mark.slow
def test_ray_tunes_floor_starts_ray_as_a_sweep_does_and_times_its_empty_trial(tmp_path: Path) -> None:
    """The harness's floor runs for real: a fresh process starts Ray, enters one empty trial and stops Ray,
    each moment after the one before; the rows then compare the sweep's first trial with the best floor."""
    import time

    from benchmarks.harness import floor_rows, tune_floor

    started = time.time()
    floor = tune_floor(tmp_path / "floor.json", {})
    moments = [floor[key] for key in ("imported", "ray started", "trial entered", "ray stopped")]
    assert 0 < moments[0] < moments[1] < moments[2] < moments[3] < time.time() - started, floor
    slower = {key: value + 1.0 for key, value in floor.items()}
    rows = floor_rows([slower, floor], {"first trial": floor["trial entered"] + 2.5})
    assert rows[0][1] == floor["trial entered"] and rows[-1][1] == pytest.approx(2.5)
    assert sum(row[1] for row in rows[1:4]) == pytest.approx(floor["trial entered"])


def test_the_leaderboard_benchmarks_store_ends_its_sweep_as_a_sweep_does(tmp_path: Path) -> None:
    """(f) builds a synthetic store and ends its sweep through rnnbench's own sweep-end code: the call
    must follow that code's signature (it once fell behind it and the benchmark died before its first
    figure), and the importances it keeps must be there for ``rnnbench leaderboard`` to read."""
    import random

    from benchmarks.leaderboard import SWEEP, add_trials, finish_sweep, open_store
    from rnnbench.analysis.importance import CACHE_TAG

    cells = ("peephole", "cifg")
    client, uri, experiment, parent = open_store(tmp_path, cells)
    add_trials(client, experiment, parent, 0, 16, random.Random(0), cells)
    finish_sweep(uri)
    tags = client.get_run(parent).data.tags
    kept = [name for name in tags if name.startswith(CACHE_TAG)]
    assert kept and all(json.loads(tags[name]) for name in kept), sorted(tags)
    assert tags["sweep"] == SWEEP
    artifacts = [a.path for a in client.list_artifacts(parent)]
    assert artifacts, "the leaderboard's plots are attached to the sweep's run"


def test_the_gemm_benchmark_times_both_engines_at_each_step_shape_and_checks_the_one_in_use() -> None:
    from benchmarks import gemm
    from rnnbench.cells import lstm_family
    from tests.conftest import require_lstm_family_kernel

    require_lstm_family_kernel()
    threads = torch.get_num_threads()
    try:
        result = gemm.run(quick=True, repeats=1)
    finally:
        torch.set_num_threads(threads)
    assert result["params"]["engine_in_use"] == lstm_family.KERNEL.load().gemm_engine()
    assert [row[0] for row in result["table"]["rows"]] == [label for label, *_ in gemm.QUICK_SHAPES]
    for measured in result["measurements"]:
        assert measured["seconds"]["mkl"] > 0, measured
        if torch.backends.mkldnn.is_available():
            assert measured["seconds"]["onednn"] > 0, measured
    (checked,) = result["targets"]
    used = "onednn" if result["params"]["engine_in_use"].startswith("oneDNN") else "mkl"
    other = "mkl" if used == "onednn" else "onednn"
    timed = [m["seconds"] for m in result["measurements"] if m["seconds"][other]]
    if timed:  # the quick run's shapes are one size's: its ratio r is the worst both ways, r / (1 / r)
        ratio = sum(t[used] for t in timed) / sum(t[other] for t in timed)
        assert checked["value"] == pytest.approx(ratio**2)
    else:
        assert checked["value"] is None
    assert checked["threshold"] == 1.1


def test_the_gemm_target_takes_the_engine_whose_worst_size_loses_least() -> None:
    """Neither engine need be the faster at every size (the Xeon of family 6, model 167: oneDNN faster at the
    smallest, MKL at the largest by more): the engine in use must lose less at its worst size than the other
    at its own. Per size, a shape of 1 ms counts 300 times one of 3 us; a mean over the shapes passed either
    engine there."""
    from benchmarks.gemm import in_use_against_other

    def shape(label: str, mkl: float, onednn: float | None) -> dict:
        return {"shape": label, "seconds": {"mkl": mkl, "onednn": onednn}}

    # This host's figures, in microseconds: MKL slower at every small shape, much faster at the large ones.
    measured = [shape("B16 H64 forward", 3.65, 3.27), shape("B16 H64 backward", 3.42, 3.10),
                shape("B64 H512 forward", 789.0, 1156.0), shape("B64 H512 backward", 810.0, 950.0)]  # fmt: skip
    small, large = (3.65 + 3.42) / (3.27 + 3.10), (1156 + 950) / (789 + 810)  # each size's loser's loss
    mkl = in_use_against_other(measured, "mkl")
    assert mkl["worst"] == pytest.approx(small / large) and mkl["worst"] < 0.85, "MKL loses less at its worst"
    assert "B16 H64 1.11x, B64 H512 0.76x" in mkl["note"]
    assert "single shapes 0.68x to 1.12x (B16 H64 forward)" in mkl["note"]
    onednn = in_use_against_other(measured, "onednn")
    assert onednn["worst"] == pytest.approx(large / small) and onednn["worst"] > 1.1
    everywhere = [shape("B16 H64 forward", 1.2, 1.0), shape("B64 H512 forward", 1.06, 1.0)]
    slower = in_use_against_other(everywhere, "mkl")["worst"]
    assert slower == pytest.approx(1.2 * 1.06) and slower > 1.1, "slower at every size: missed"
    assert in_use_against_other(everywhere, "onednn")["worst"] == pytest.approx(1 / (1.2 * 1.06))
    alone = in_use_against_other([shape("B16 H64 forward", 1.0, None)], "mkl")
    assert alone["worst"] is None and "oneDNN did not run here" in alone["note"]
