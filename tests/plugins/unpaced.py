"""Test plugin: the cells of ``paced.py``, under the same names, without the waits.

A test that stops or kills a sweep mid-run needs paced trials until it acts; the resume that follows is
about its counts (every trial once, none lost), not its timing, so its trials need not wait. The sweep
keeps no record of which file registered a cell, so a resume may name this file instead of ``paced.py``.
"""

import importlib.util
from pathlib import Path

import rnnbench

# A copy of paced.py of its own (not the module a paced sweep in this process loaded), its wait set to 0.
_spec = importlib.util.spec_from_file_location("rnnbench_test_unpaced", Path(__file__).with_name("paced.py"))
assert _spec is not None and _spec.loader is not None
paced = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(paced)
paced.PACE_S = 0.0


@rnnbench.hookimpl
def register_cells(register):
    paced.register_cells(register)
