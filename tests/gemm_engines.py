"""Float32 passes of the compiled kernels on one GEMM engine, in a fresh process (the engine is fixed per
process): ``python -m tests.gemm_engines ENGINE THREADS OUT`` with ENGINE auto, mkl or onednn saves each
cell's output and gradients, and the engine the kernels named, to OUT with torch.save (tests/test_gemm_engine.py).

The shapes cross every block edge of kernel_math.h's oneDNN GEMM: 70 rows (blocks of 64), 600 inputs (k in
blocks of 512), gate widths 216 to 288 (blocks of 256) and 70 x 64 = 4,480 rows summed by the weight gradients
(chunks of 4,096).
"""

from __future__ import annotations

import os
import sys

import torch


def passes() -> dict[str, object]:
    from rnnbench.cells import gru, lstm_family
    from rnnbench.cells.lstm_family import PEEPHOLE, VARIANTS, LSTMFamilyLayer

    found: dict[str, object] = {
        "engines": {
            "lstm_family": lstm_family.KERNEL.load().gemm_engine(),
            "gru": gru.KERNEL.load().gemm_engine(),
        }
    }
    layers: dict[str, torch.nn.Module] = {}
    for name, variant in (("peephole", PEEPHOLE), ("fgr", VARIANTS["fgr"])):
        torch.manual_seed(0)
        layers[name] = LSTMFamilyLayer(600, 72, variant)
        with torch.no_grad():
            for parameter in layers[name].parameters():
                parameter.uniform_(-0.1, 0.1)
    torch.manual_seed(0)
    layers["gru"] = gru.FastGRU(600, 96, batch_first=True)
    for name, layer in layers.items():
        # One step of one sequence: the input projection's product has one row, where a bias broadcast to it
        # is already contiguous and must still be copied, not written into.
        before = [p.detach().clone() for p in layer.parameters()]
        layer(torch.randn(1, 1, 600))
        found[f"{name} parameters kept"] = all(
            torch.equal(a, b) for a, b in zip(before, layer.parameters(), strict=True)
        )
        torch.manual_seed(1)
        x = torch.randn(70, 64, 600, requires_grad=True)
        out = layer(x)
        y = out[0] if isinstance(out, tuple) else out
        grads = torch.autograd.grad((y * torch.randn_like(y)).sum(), [x, *layer.parameters()])
        found[name] = [y.detach(), *grads]
    return found


if __name__ == "__main__":
    engine, threads, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    os.environ["RNNBENCH_CPU_GEMM"] = engine
    os.environ["RNNBENCH_PEEPHOLE_KERNEL"] = os.environ["RNNBENCH_GRU_KERNEL"] = "cpp"
    torch.set_num_threads(threads)
    torch.save(passes(), out)
