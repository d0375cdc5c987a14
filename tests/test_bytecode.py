"""The bytecode that scripts/bootstrap writes: what rnnbench's processes import, found from the sources."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

from rnnbench.util import bytecode


def test_every_import_form_is_found_at_any_depth(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        textwrap.dedent("""
        import os, numpy.linalg
        from mlflow import pyfunc, MlflowClient
        from . import sibling
        def later():
            import scipy.stats as stats
            from ray.tune import *
    """)
    )
    assert bytecode.imported_names(source) == {
        "os", "numpy.linalg", "mlflow", "mlflow.pyfunc", "mlflow.MlflowClient", "scipy.stats", "ray.tune"
    }  # fmt: skip


def test_the_names_are_third_party_from_rnnbench_and_rays_scripts():
    names = bytecode.names_to_import()
    assert {"mlflow", "optuna", "torch", "ray"} <= names, "rnnbench's top-level and lazy imports"
    assert "mlflow.pyfunc" in names, "a lazy import inside a function (the sweep's tail)"
    assert "aiohttp" in names, "imported by Ray's runtime-env agent, a script Ray runs"
    assert not {n for n in names if n.partition(".")[0] in sys.stdlib_module_names | {"rnnbench"}}


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A throwaway package on sys.path, forgotten afterwards."""
    root = tmp_path / "warmpkg"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "good.py").write_text("VALUE = 1\n")
    (root / "broken.py").write_text("raise RuntimeError('broken on import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    yield root
    for name in [n for n in sys.modules if n == "warmpkg" or n.startswith("warmpkg.")]:
        del sys.modules[name]


def test_each_module_is_imported_with_its_bytecode_written_and_failures_named(package: Path):
    imported, failed = bytecode.import_each(
        ["warmpkg.good", "warmpkg.good.VALUE", "warmpkg.broken", "not_installed"]
    )
    assert imported == 1, "a name that is an attribute, or a package not installed, is passed over"
    assert [line.split(" ")[0] for line in failed] == ["warmpkg.broken"] and "broken on import" in failed[0]
    written = Path(importlib.util.cache_from_source(str(package / "good.py")))
    assert written.is_file(), "the module's .pyc is written"
