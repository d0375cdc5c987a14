"""Python's cyclic garbage collector kept off a process's start-up imports (a sweep's driver, a trial worker).

torch, MLflow, datasets and Ray put about half a million objects in memory that live as long as the process.
Python 3.11 runs a full collection each time the oldest generation grows by a quarter: each one among the
imports scanned everything imported so far, and each later one scanned it all again. In the one-trial sweep's
driver, full collections took 3.9 s of CPU (10 of them, 0.70 s the one before Ray's shutdown); with the
collector off during the start and then frozen over what it imported, 0.21 s (3; 0.06 s), counted with
``gc.callbacks``. The little garbage the start leaves is frozen with it.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def uncollected_start(thaw: bool = True) -> Iterator[Callable[[], None]]:
    """The collector off until the function yielded is called (the start is done): it then freezes what is in
    memory and turns the collector back on if it was. On leaving, the collector is as it was (on or off) and,
    with ``thaw``, what was frozen here is thawed; a process that had frozen objects itself keeps them frozen.
    Left without the call (the start failed), what is in memory is frozen all the same."""
    collecting = gc.isenabled()
    freezing = gc.get_freeze_count() == 0  # else the caller's frozen objects are not ours to thaw
    done = False

    def started() -> None:
        nonlocal done
        if freezing and not done:
            gc.freeze()
        done = True
        if collecting:
            gc.enable()

    try:
        gc.disable()
        yield started
    finally:
        if not done:
            started()
        if freezing and thaw:
            gc.unfreeze()
        (gc.enable if collecting else gc.disable)()
