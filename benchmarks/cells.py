"""(a) Cell throughput: forward+backward time of every registered cell against torch.nn.LSTM.

For each size (B, T, I, H) every registered cell is built with one layer and timed on one
forward+backward pass (a fixed output gradient, parameter gradients cleared between passes), as is a
bare ``torch.nn.LSTM(batch_first=True)``: the baseline. The models are interleaved (each repeat times
every model once, in a rotating order), after warm-up passes; the best of the repeats is kept.

The gate GEMMs of a pass cost ``3 * 2*B*T*G*H*(I+H)`` flops (forward, and backward counted as twice
the forward), G = 4 gates for the LSTM family, 3 for the GRU, 1 for the tanh RNN; achieved GFLOP/s is
compared with the machine's sgemm (``torch.mm`` of two square float32 matrices, same threads, measured
before and after the cells in the same run).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from benchmarks.report import target

NAME = "cells"
TITLE = "(a) Cell throughput: forward+backward against torch.nn.LSTM"
FULL_SIZES = [(16, 100, 64, 64), (64, 100, 32, 128), (64, 100, 512, 512)]
QUICK_SIZES = [(16, 25, 64, 64), (64, 25, 32, 128), (64, 25, 512, 512)]
GATES = {"lstm": 4, "peephole": 4, "gru": 3, "rnn": 1, "nn.LSTM": 4}
GATES.update({"nig": 3, "nfg": 3, "nog": 3, "cifg": 3, "niaf": 4, "noaf": 4, "np": 4, "fgr": 4})
# peephole / nn.LSTM time, by size index: <= 2.0x at the small size, <= 1.2x at the other two
PEEPHOLE_TARGETS = (2.0, 1.2, 1.2)
# Greff's variants / nn.LSTM time at the first two sizes: 1.3x; fgr (nine more H x H recurrent
# matrices, a second GEMM per step each way) 1.7x. And cifg (no forget-gate weights) at most peephole's.
ODYSSEY_TARGETS = {
    "nig": 1.3,
    "nfg": 1.3,
    "nog": 1.3,
    "niaf": 1.3,
    "noaf": 1.3,
    "np": 1.3,
    "cifg": 1.3,
    "fgr": 1.7,
}
ODYSSEY_SIZES = ((16, 100, 64, 64), (64, 100, 32, 128))
BASELINE = "nn.LSTM"
Size = tuple[int, int, int, int]  # B, T, I, H


class TorchLSTM(nn.Module):
    """The baseline: torch.nn.LSTM(batch_first=True), output sequence only."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lstm(x)[0]


def gate_flops(batch: int, steps: int, input_size: int, hidden: int, gates: int) -> float:
    """Flops of the gate GEMMs of one forward+backward pass (backward = 2x forward)."""
    return 3.0 * 2 * batch * steps * gates * hidden * (input_size + hidden)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sgemm_gflops(device: torch.device, n: int = 1024, repeats: int = 5) -> float:
    """Best-of-``repeats`` GFLOP/s of an n x n float32 matrix product."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    out = torch.empty(n, n, device=device)
    torch.mm(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best / 1e9


def time_pass(model: nn.Module, x: torch.Tensor, grad: torch.Tensor, device: torch.device) -> float:
    """Seconds for one forward+backward pass."""
    model.zero_grad(set_to_none=True)
    _sync(device)
    start = time.perf_counter()
    y = model(x)
    y.backward(grad)
    _sync(device)
    return time.perf_counter() - start


def build_models(
    names: list[str], size: tuple[int, int, int, int], device: torch.device
) -> dict[str, nn.Module]:
    import rnnbench

    _, _, input_size, hidden = size
    models: dict[str, nn.Module] = {BASELINE: TorchLSTM(input_size, hidden)}
    for name in names:
        models[name] = rnnbench.get_cell(name).build(
            input_size=input_size, hidden_size=hidden, num_layers=1, dropout=0.0
        )
    return {k: m.to(device).train() for k, m in models.items()}


def measure_size(
    names: list[str], size: tuple[int, int, int, int], device: torch.device, repeats: int, warmup: int
) -> dict[str, list[float]]:
    """Per-model pass times at one size, interleaved: every repeat times every model once."""
    batch, steps, input_size, hidden = size
    torch.manual_seed(0)
    models = build_models(names, size, device)
    x = torch.randn(batch, steps, input_size, device=device)
    grad = torch.randn(batch, steps, hidden, device=device)
    order = list(models)
    for _ in range(warmup):
        for name in order:
            time_pass(models[name], x, grad, device)
    times: dict[str, list[float]] = {name: [] for name in order}
    for rep in range(repeats):
        shift = rep % len(order)
        for name in order[shift:] + order[:shift]:
            times[name].append(time_pass(models[name], x, grad, device))
    return times


def odyssey_targets(
    per_size: list[tuple[tuple[int, int, int, int], dict[str, list[float]]]],
) -> list[dict[str, Any]]:
    """One target per Odyssey variant at each size it is defined at (the full run's first two sizes)."""
    found = []
    for size, times in per_size:
        if tuple(size) not in ODYSSEY_SIZES:
            continue
        best_base = min(times[BASELINE])
        for name, limit in ODYSSEY_TARGETS.items():
            if name in times:
                found.append(
                    target(
                        f"{name} / nn.LSTM time at B,T,I,H={','.join(map(str, size))}",
                        min(times[name]) / best_base,
                        "<=",
                        limit,
                        "x",
                    )
                )
        if "cifg" in times and "peephole" in times:
            found.append(
                target(
                    f"cifg / peephole time at B,T,I,H={','.join(map(str, size))}",
                    min(times["cifg"]) / min(times["peephole"]),
                    "<=",
                    1.0,
                    "x",
                )
            )
    return found


def kernel_clones() -> dict[str, str]:
    """Which copy of each compiled kernel's pointwise loops ran (AVX-512, AVX2, baseline), by kernel, and
    which GEMM its float32 steps ran (oneDNN's brgemm, MKL's packed GEMM or the plain one)."""
    from rnnbench.cells import gru, lstm_family

    found = {}
    for kernel in (lstm_family.KERNEL, gru.KERNEL):
        try:
            found[kernel.cell] = kernel.vector_clone()
        except Exception as exc:  # a kernel that cannot be built here: its cells ran the PyTorch path
            found[kernel.cell] = f"not built ({type(exc).__name__})"
            continue
        found[kernel.cell] += f" with {kernel.load().gemm_engine()}"
    return found


def parse_sizes(text: str) -> list[tuple[int, int, int, int]]:
    """``B,T,I,H;B,T,I,H`` -> a list of sizes."""
    sizes = []
    for part in text.split(";"):
        values = tuple(int(v) for v in part.split(","))
        if len(values) != 4 or min(values) < 1:
            raise ValueError(f"a size is four positive integers B,T,I,H; got {part!r}")
        sizes.append(values)
    return sizes  # type: ignore[return-value]


def measure_sizes(
    names: list[str], sizes: list[Size], dev: torch.device, threads: int, repeats: int, warmup: int
) -> tuple[list[float], list[tuple[Size, dict[str, list[float]]]]]:
    """sgemm GFLOP/s before and after, and the pass times at every size, on ``threads`` torch threads."""
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:  # restored even when a model fails, so that the caller's torch keeps its thread count
        sgemm = [sgemm_gflops(dev)]
        per_size = []
        for size in sizes:
            times = measure_size(names, size, dev, repeats, warmup)
            per_size.append((size, times))
        sgemm.append(sgemm_gflops(dev))
    finally:
        torch.set_num_threads(previous_threads)
    return sgemm, per_size


def measurement_entry(
    size: Size, name: str, values: list[float], best_base: float, peak: float
) -> dict[str, Any]:
    """One model at one size: its times, best and median, ratio to the baseline, gate GFLOP/s."""
    best = min(values)
    gates = GATES.get(name)
    flops = gate_flops(*size, gates) if gates else None
    gflops = flops / best / 1e9 if flops else None
    return {
        "size": list(size),
        "cell": name,
        "times_s": values,
        "best_s": best,
        "median_s": sorted(values)[len(values) // 2],
        "baseline_best_s": best_base,
        "ratio": best / best_base,
        "gates": gates,
        "gate_gflops": gflops,
        "sgemm_fraction": gflops / peak if gflops else None,
    }


def measurements_and_rows(
    per_size: list[tuple[Size, dict[str, list[float]]]], peak: float
) -> tuple[list[dict[str, Any]], list[list[Any]]]:
    """Every model's measurement entry and table row, size by size."""
    rows, measurements = [], []
    for size, times in per_size:
        best_base = min(times[BASELINE])
        for name, values in times.items():
            entry = measurement_entry(size, name, values, best_base, peak)
            gflops = entry["gate_gflops"]
            measurements.append(entry)
            rows.append(
                [
                    "x".join(map(str, size)),
                    name,
                    entry["best_s"] * 1e3,
                    entry["ratio"],
                    gflops,
                    None if gflops is None else 100 * gflops / peak,
                ]
            )
    return measurements, rows


def peephole_targets(per_size: list[tuple[Size, dict[str, list[float]]]]) -> list[dict[str, Any]]:
    """The peephole / nn.LSTM time target at each size that has one (by index: PEEPHOLE_TARGETS)."""
    targets = []
    for index, (size, times) in enumerate(per_size):
        if "peephole" in times and index < len(PEEPHOLE_TARGETS):
            targets.append(
                target(
                    f"peephole / nn.LSTM time at B,T,I,H={','.join(map(str, size))}",
                    min(times["peephole"]) / min(times[BASELINE]),
                    "<=",
                    PEEPHOLE_TARGETS[index],
                    "x",
                )
            )
    return targets


def build_notes(
    device: str,
    threads: int,
    sgemm: list[float],
    repeats: int,
    warmup: int,
    clones: dict[str, str],
    quick: bool,
    measurements: list[dict[str, Any]],
) -> list[str]:
    """The sgemm reference, the repeats, the kernels that ran, and the GRU's and RNN's expected ratios."""
    peak = max(sgemm)
    notes = [
        f"sgemm {peak:.1f} GFLOP/s ({device}, {threads} thread(s), 1024x1024 float32, best of "
        f"{len(sgemm)} measurements: {', '.join(f'{s:.1f}' for s in sgemm)})",
        f"best of {repeats} interleaved repeats after {warmup} warm-up pass(es) per model; one layer",
    ]
    if clones:
        notes.append("compiled kernels ran: " + ", ".join(f"{k} {v}" for k, v in clones.items()))
    if quick:
        notes.append("--quick: T shortened; the targets are defined at T=100, so read them as indicative")
    for name in ("gru", "rnn"):
        ratios = [m["ratio"] for m in measurements if m["cell"] == name]
        if ratios:
            ideal = GATES[name] / 4
            notes.append(
                f"{name} / nn.LSTM: {', '.join(f'{r:.2f}' for r in ratios)} (its gate GEMMs are {ideal:.2f}x the LSTM's)"
            )
    return notes


def run(
    quick: bool = False,
    device: str = "cpu",
    threads: int = 1,
    repeats: int | None = None,
    sizes: list[tuple[int, int, int, int]] | None = None,
    warmup: int | None = None,
    cells: list[str] | None = None,
) -> dict[str, Any]:
    import rnnbench

    dev = torch.device(device)
    sizes = sizes or (QUICK_SIZES if quick else FULL_SIZES)
    repeats = repeats or (3 if quick else 5)
    warmup = warmup if warmup is not None else (1 if quick else 2)
    names = cells or rnnbench.cell_names()
    sgemm, per_size = measure_sizes(names, sizes, dev, threads, repeats, warmup)
    peak = max(sgemm)
    measurements, rows = measurements_and_rows(per_size, peak)
    targets = peephole_targets(per_size) + odyssey_targets(per_size)
    clones = kernel_clones() if device == "cpu" else {}
    return {
        "name": NAME,
        "title": TITLE,
        "description": (
            f"Forward+backward of one layer at each (B, T, I, H); ratio = time / torch.nn.LSTM's time; "
            f"GFLOP/s of the gate GEMMs and their share of sgemm ({device}, {threads} thread(s))."
        ),
        "params": {
            "sizes": [list(s) for s in sizes],
            "repeats": repeats,
            "warmup": warmup,
            "threads": threads,
            "device": device,
            "cells": names,
        },
        "sgemm_gflops": peak,
        "kernel_clones": clones,
        "sgemm_measurements": sgemm,
        "measurements": measurements,
        "table": {
            "columns": ["B x T x I x H", "cell", "best ms", "ratio vs nn.LSTM", "gate GFLOP/s", "% of sgemm"],
            "rows": rows,
        },
        "targets": targets,
        "notes": build_notes(device, threads, sgemm, repeats, warmup, clones, quick, measurements),
    }
