"""``python -m rnnbench.cells.prebuild [CELL ...]``: build the built-in cells' compiled kernels now.

``scripts/bootstrap`` runs it beside the install, so that no sweep's first trial (and no test) waits on the
compiler: the LSTM family's kernel took 46 s of CPU to build on the 2-core AVX2 EPYC, the GRU's 26 s.
Built as on first use (``rnnbench.cells.kernels``): same cache, same lock. Exits 1, naming the kernel and
the reason, when one cannot be built; the cells then fall back as on first use.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rnnbench.cells.kernels import CompiledKernel


def kernels() -> dict[str, CompiledKernel]:
    """The built-in compiled kernels, by cell."""
    from rnnbench.cells import gru, lstm_family

    return {"lstm_family": lstm_family.KERNEL, "gru": gru.KERNEL}


def main(argv: list[str]) -> int:
    from rnnbench.cells.kernels import KernelChoiceError, KernelError

    known = kernels()
    unknown = [name for name in argv if name not in known]
    if unknown:
        print(f"unknown kernel {unknown[0]!r}; choose from: {', '.join(known)}", file=sys.stderr)
        return 2
    status = 0
    for name in argv or known:
        kernel = known[name]
        started = time.monotonic()
        try:
            kernel.load()
        except KernelError as exc:
            print(f"kernel {name}: not built: {exc}", file=sys.stderr)
            status = 1
            continue
        except KernelChoiceError as exc:  # a bad RNNBENCH_CPU_GEMM: the user's to mend, named in the message
            print(f"kernel {name}: {exc}", file=sys.stderr)
            return 2
        print(f"kernel {name}: ready in {kernel.build_dir()} ({time.monotonic() - started:.1f} s)")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
