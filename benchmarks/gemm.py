"""(g) The kernels' GEMM engines: one step's float32 GEMM on oneDNN's brgemm against MKL, at every step shape.

The compiled LSTM-family and GRU kernels run their float32 GEMMs on one engine per process
(``RNNBENCH_CPU_GEMM``; ``auto`` takes oneDNN on non-Intel CPUs with AVX-512, where MKL runs its AVX2 code,
and MKL elsewhere). Each shape below is one step's product, C (m x n) += A (m x k) . W (k x n), as the
kernels make it at the cells benchmark's sizes (forward: the batch times the gates' width from the hidden
size; backward: the reverse; FGR: its 3H x 3H matrix). Both engines are timed in the same process,
interleaved, through the kernel's own code (``step_gemm_seconds``: MKL with the weight packed once, as the
kernel does). One engine runs per process, and neither need be the faster at every size: on the Intel Xeon of
family 6, model 167 oneDNN is about 10 % faster at the smallest step shapes and MKL up to a half at the largest.
So the target asks that the engine in use be the one whose worst size loses least, within 10 %: at each size of
the cells benchmark, its step shapes' times summed, the engine in use's time over the other's; the largest of
those, over the largest of the other's over the engine in use's. Neither a bound at every shape (which no engine
met on that Xeon) nor a mean over the shapes (which counts a shape of 3 us as much as one of 1 ms, and so passed
either engine there, though the cells benchmark met every bound with MKL and missed two with oneDNN).
"""

from __future__ import annotations

from typing import Any

import torch

from benchmarks.report import target
from rnnbench.cells.kernels import gemm_choice

NAME = "gemm"
TITLE = "(g) GEMM engines: oneDNN's brgemm against MKL at the kernels' step shapes"
ENGINES = ("mkl", "onednn")
LABELS = {"mkl": "MKL", "onednn": "oneDNN"}
# (label, m, n, k): the per-step GEMMs at (16, 100, 64, 64), (64, 100, 32, 128) and (64, 100, 512, 512)
SHAPES = [
    ("B16 H64 forward", 16, 256, 64),
    ("B16 H64 backward", 16, 64, 256),
    ("B16 H64 fgr", 16, 192, 192),
    ("B64 H128 forward", 64, 512, 128),
    ("B64 H128 backward", 64, 128, 512),
    ("B64 H128 fgr", 64, 384, 384),
    ("B64 H512 forward", 64, 2048, 512),
    ("B64 H512 backward", 64, 512, 2048),
]
QUICK_SHAPES = SHAPES[:3]


def calls_for(m: int, n: int, k: int, flops: float) -> int:
    """Calls whose product does about `flops` floating-point operations: a timing of some milliseconds."""
    return max(10, int(flops / (2 * m * n * k)))


def time_shape(ops: Any, m: int, n: int, k: int, repeats: int, flops: float) -> dict[str, float | None]:
    """Best seconds per call of each engine at one shape, interleaved; None for an engine this torch lacks."""
    best: dict[str, float | None] = dict.fromkeys(ENGINES)
    for _ in range(repeats):
        for engine in ENGINES:
            try:
                took = float(ops.step_gemm_seconds(engine == "onednn", m, n, k, calls_for(m, n, k, flops)))
            except RuntimeError:  # a torch without a float32 brgemm: oneDNN cannot run here
                continue
            previous = best[engine]
            best[engine] = took if previous is None else min(previous, took)
    return best


def run(quick: bool = False, device: str = "cpu", repeats: int | None = None) -> dict[str, Any]:
    from rnnbench.cells import lstm_family

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return measure(lstm_family.KERNEL.load(), quick, repeats)
    finally:
        torch.set_num_threads(threads)


def measure(ops: Any, quick: bool, repeats: int | None) -> dict[str, Any]:
    """Both engines at every shape, and the target on the engine this process runs."""
    in_use = ops.gemm_engine()
    repeats = repeats or (2 if quick else 5)
    flops = 2e8 if quick else 1e9
    used = "onednn" if in_use.startswith("oneDNN") else "mkl"
    rows, measurements = [], []
    for label, m, n, k in QUICK_SHAPES if quick else SHAPES:
        best = time_shape(ops, m, n, k, repeats, flops)
        gflops = {e: (2 * m * n * k / t / 1e9 if t else None) for e, t in best.items()}
        measurements.append({"shape": label, "m": m, "n": n, "k": k, "seconds": best, "gflops": gflops})
        rows.append(
            [label, f"{m} x {k} . {k} x {n}"]
            + [f"{best[e] * 1e6:.2f}" if best[e] else "n/a" for e in ENGINES]
            + [f"{gflops[e]:.0f}" if gflops[e] else "n/a" for e in ENGINES]
            + [f"{best['mkl'] / best['onednn']:.2f}x" if best["mkl"] and best["onednn"] else "n/a"]
        )
    compared = in_use_against_other(measurements, used)
    return {
        "name": NAME,
        "title": TITLE,
        "description": "One step's float32 GEMM per engine, microseconds per call and GFLOP/s, one thread.",
        "params": {"repeats": repeats, "flops_per_timing": flops, "engine_in_use": in_use},
        "measurements": measurements,
        "table": {
            "columns": [
                "step",
                "product",
                "MKL us",
                "oneDNN us",
                "MKL GFLOP/s",
                "oneDNN GFLOP/s",
                "oneDNN speed-up",
            ],
            "rows": rows,
        },
        "targets": [
            target(
                "the engine in use's loss at its worst size / the other engine's at its own (step shapes summed)",
                compared["worst"],
                "<=",
                1.1,
                "x",
            )
        ],
        "notes": [
            f"this process's engine: {in_use} (RNNBENCH_CPU_GEMM={gemm_choice()})",
            compared["note"],
            f"best of {repeats} interleaved timings per engine, each of calls doing about {flops:.0e} flops",
        ],
    }


def in_use_against_other(measurements: list[dict[str, Any]], used: str) -> dict[str, Any]:
    """At each size ("B16 H64 forward" is of the size "B16 H64"), its step shapes' times summed, the engine in
    use's time over the other's; ``worst``: the largest of those over the largest of their inverses (None where
    the other engine ran nowhere), below 1 where the engine in use loses less at its worst size than the
    other would at its own; and a note with every size's ratio and the range over single shapes."""
    other = next(e for e in ENGINES if e != used)
    both = [m for m in measurements if m["seconds"][used] and m["seconds"][other]]
    if not both:
        return {
            "worst": None,
            "note": f"{LABELS[other]} did not run here: nothing to compare the engine in use with",
        }
    sums: dict[str, list[float]] = {}
    for m in both:
        totals = sums.setdefault(m["shape"].rsplit(" ", 1)[0], [0.0, 0.0])
        totals[0] += m["seconds"][used]
        totals[1] += m["seconds"][other]
    by_size = {size: mine / theirs for size, (mine, theirs) in sums.items()}
    shapes = {m["shape"]: m["seconds"][used] / m["seconds"][other] for m in both}
    worst_shape = max(shapes, key=shapes.__getitem__)
    return {"worst": max(by_size.values()) / max(1 / ratio for ratio in by_size.values()),
            "note": f"the engine in use / {LABELS[other]}, each size's step shapes summed: "
                    + ", ".join(f"{size} {ratio:.2f}x" for size, ratio in by_size.items())
                    + f"; single shapes {min(shapes.values()):.2f}x to {shapes[worst_shape]:.2f}x ({worst_shape})"}  # fmt: skip
