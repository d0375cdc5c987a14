"""The bytecode that scripts/bootstrap writes: what rnnbench's processes import, found from the sources."""

from __future__ import annotations

import importlib.util
import logging
import sys
import textwrap
from pathlib import Path

import pytest

from rnnbench.util import bytecode


def pyc(source: Path) -> Path:
    return Path(importlib.util.cache_from_source(str(source)))


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
    assert "ray._private.async_compat" in names, "imported by Ray's worker script"
    # rnnbench's source imports both; the standard library's bytecode ships with Python, rnnbench's is compiled.
    assert "os" not in names and "rnnbench.errors" not in names


def test_every_named_module_folder_and_script_exists_in_the_installed_libraries():
    """A library's upgrade that moves one of them would otherwise only stop its bytecode being written."""
    missing = [name for name in bytecode.EXTRA_NAMES if importlib.util.find_spec(name) is None]
    for package, folders in bytecode.FOLDERS.items():
        root = bytecode.package_folder(package)
        missing += [
            f"{package}/{folder}" for folder in folders if root is None or not (root / folder).is_dir()
        ]
    for package, scripts in bytecode.SCRIPTS.items():
        root = bytecode.package_folder(package)
        missing += [
            f"{package}/{script}" for script in scripts if root is None or not (root / script).is_file()
        ]
    assert not missing


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A throwaway package on sys.path, forgotten afterwards."""
    root = tmp_path / "warmpkg"
    (root / "loaded_by_path").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "good.py").write_text("VALUE = 1\n")
    (root / "broken.py").write_text("raise RuntimeError('broken on import')\n")
    (root / "exits.py").write_text("raise SystemExit(0)\n")
    (root / "loaded_by_path" / "step.py").write_text("STEP = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    yield root
    for name in [n for n in sys.modules if n == "warmpkg" or n.startswith("warmpkg.")]:
        del sys.modules[name]


def test_each_module_is_imported_with_its_bytecode_written_and_failures_named(package: Path):
    before = logging.root.manager.disable
    names = ["warmpkg.broken", "warmpkg.exits", "warmpkg.good", "warmpkg.good.VALUE", "not_installed"]
    imported, failed = bytecode.import_each(names)
    assert imported == 1, "a name that is an attribute, or a package not installed, is passed over"
    assert [line.split(" ")[0] for line in failed] == ["warmpkg.broken", "warmpkg.exits"], "a SystemExit too"
    assert "broken on import" in failed[0]
    assert pyc(package / "good.py").is_file(), "the module's .pyc is written"
    assert logging.root.manager.disable == before, "logging is as it was"


def test_the_command_writes_the_folders_and_rnnbench_and_fails_on_a_syntax_error(
    package, tmp_path, monkeypatch
):
    own = tmp_path / "own"
    own.mkdir()
    (own / "fine.py").write_text("X = 1\n")
    monkeypatch.setattr(bytecode, "RNNBENCH", own)
    monkeypatch.setattr(bytecode, "STAMP", tmp_path / "stamp")
    monkeypatch.setattr(bytecode, "FOLDERS", {"warmpkg": ("loaded_by_path",)})
    monkeypatch.setattr(bytecode, "names_to_import", lambda: {"warmpkg.good"})
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # as PYTHONDONTWRITEBYTECODE sets it
    assert bytecode.main() == 0
    assert pyc(package / "good.py").is_file() and pyc(package / "loaded_by_path" / "step.py").is_file()
    assert pyc(own / "fine.py").is_file()
    (own / "typo.py").write_text("def f(:\n")
    assert bytecode.main() == 1, "a syntax error in rnnbench's own files is a failure"


def test_a_second_run_imports_again_only_when_the_distributions_or_the_names_change(
    package, tmp_path, monkeypatch
):
    names = {"warmpkg.good"}
    monkeypatch.setattr(bytecode, "RNNBENCH", tmp_path / "own")
    monkeypatch.setattr(bytecode, "STAMP", tmp_path / "stamp")
    monkeypatch.setattr(bytecode, "FOLDERS", {})
    monkeypatch.setattr(bytecode, "names_to_import", lambda: set(names))
    assert bytecode.main() == 0 and pyc(package / "good.py").is_file()
    pyc(package / "good.py").unlink()
    del sys.modules["warmpkg.good"]
    assert bytecode.main() == 0
    assert not pyc(package / "good.py").exists(), "the same distributions and names: nothing imported again"
    names.add("warmpkg.loaded_by_path.step")
    assert bytecode.main() == 0
    assert pyc(package / "good.py").is_file(), "another name: everything imported again"
    assert bytecode.fingerprint(names) != bytecode.fingerprint({"warmpkg.good"})
