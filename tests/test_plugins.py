"""The plugin system: every hook exercised, one-file plugins, entry points, and each load error."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import rnnbench
from rnnbench.core import hookspecs
from rnnbench.core.plugin_manager import (
    DEFAULT_PLUGINS,
    _infos,
    hook_names,
    load_plugin_file,
    plugin_infos,
    registries,
    unregister_plugin,
)
from rnnbench.errors import DuplicateNameError, InvalidRegistrationError, PluginLoadError
from tests.conftest import REPO, TEST_PLUGINS, import_test_plugin

HOOK_TEST_PLUGINS = {
    "register_cells": "mgu",
    "register_tasks": "toy_task",
    "register_search_spaces": "toy_space",
}


def test_every_hook_has_a_test_plugin():
    assert sorted(HOOK_TEST_PLUGINS) == hook_names()
    for hook, module in HOOK_TEST_PLUGINS.items():
        assert hasattr(import_test_plugin(module), hook), f"{module}.py does not implement {hook}"


def test_every_hookspec_takes_a_typed_register_argument():
    for hook in hook_names():
        annotations = getattr(hookspecs, hook).__annotations__
        assert list(annotations) == ["register", "return"], hook
        assert annotations["register"].endswith("Registry")


def test_builtins_are_ordinary_plugins():
    infos = {info.name: info for info in plugin_infos()}
    for module in DEFAULT_PLUGINS:
        assert infos[module].source == "built-in"
        assert infos[module].version == rnnbench.__version__
    registered = {name for m in DEFAULT_PLUGINS for name in infos[m].registered.get("cell", [])}
    odyssey = {"nig", "nfg", "nog", "niaf", "noaf", "np", "cifg", "fgr"}
    assert registered == {"lstm", "gru", "rnn", "peephole", *odyssey}
    assert set(infos["rnnbench.plugins.odyssey"].registered["cell"]) == odyssey
    for cell in registries().cells:
        assert cell.plugin in DEFAULT_PLUGINS


def test_register_cells_hook(use_plugin):
    use_plugin(import_test_plugin("mgu"), "test-mgu")
    spec = rnnbench.get_cell("mgu")
    assert (spec.plugin, spec.description, spec.reference) == (
        "test-mgu",
        "Minimal gated unit",
        "Zhou et al. 2016",
    )
    import torch

    assert spec.build(4, 6, 2, 0.0)(torch.randn(3, 5, 4)).shape == (3, 5, 6)
    assert {i.name: i.registered for i in plugin_infos()}["test-mgu"] == {"cell": ["mgu"]}


def test_register_tasks_hook(use_plugin):
    use_plugin(import_test_plugin("toy_task"), "test-task")
    assert "parity" in rnnbench.task_names()
    assert rnnbench.get_task("parity").build(length=5) == {"name": "parity", "length": 5}


def test_register_search_spaces_hook(use_plugin):
    import optuna

    use_plugin(import_test_plugin("toy_space"), "test-space")
    space = rnnbench.get_search_space("tiny")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    config = space.suggest(study.ask())
    assert 1 <= config["depth"] <= 2 and 8 <= config["width"] <= 16


def test_unregistered_plugin_is_gone(use_plugin):
    use_plugin(import_test_plugin("mgu"), "test-mgu")
    assert "mgu" in rnnbench.cell_names()
    unregister_plugin("test-mgu")
    assert "mgu" not in rnnbench.cell_names()


# --- load errors, each naming the plugin -------------------------------------------------------


@pytest.fixture
def plugin_file(tmp_path):
    """Write a one-file plugin and load it; whatever it registered is removed afterwards."""
    loaded: list[str] = []

    def write_and_load(name: str, source: str):
        path = tmp_path / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        loaded.append(str(path.resolve()))
        return load_plugin_file(path)

    yield write_and_load
    for key in loaded:
        if key in _infos:
            unregister_plugin(key)


def test_plugin_that_fails_to_import(plugin_file):
    with pytest.raises(PluginLoadError) as info:
        plugin_file("broken", "import rnnbench\nimport no_such_module_xyz\n")
    message = str(info.value)
    assert "broken.py" in message and "failed to import" in message
    assert "ModuleNotFoundError" in message and "no_such_module_xyz" in message
    assert not any(key.endswith("broken.py") for key in _infos)


def test_plugin_with_syntax_error(plugin_file):
    with pytest.raises(PluginLoadError, match=r"syntaxerr\.py.*failed to import: SyntaxError"):
        plugin_file("syntaxerr", "def register_cells(:\n")


def test_plugin_whose_hook_raises(plugin_file):
    plugin_file(
        "raiser",
        """
        import rnnbench

        @rnnbench.hookimpl
        def register_cells(register):
            raise RuntimeError("GPU driver missing")
        """,
    )
    with pytest.raises(PluginLoadError) as info:
        registries()
    message = str(info.value)
    assert "raiser.py" in message and "register_cells" in message
    assert "RuntimeError: GPU driver missing" in message


def test_plugin_registering_a_builtin_name(plugin_file):
    plugin_file(
        "dupe",
        """
        import rnnbench

        def build(input_size, hidden_size, num_layers, dropout):
            raise AssertionError

        @rnnbench.hookimpl
        def register_cells(register):
            register("lstm", build, description="another lstm", reference="none")
        """,
    )
    with pytest.raises(DuplicateNameError) as info:
        registries()
    assert "'rnnbench.plugins.lstm'" in info.value.first
    assert "dupe.py" in info.value.second
    assert "cell 'lstm' is registered twice" in str(info.value)


def test_plugin_with_malformed_registration(plugin_file):
    plugin_file(
        "nometa",
        """
        import rnnbench

        def build(input_size, hidden_size, num_layers, dropout):
            raise AssertionError

        @rnnbench.hookimpl
        def register_cells(register):
            register("nometa", build, description="", reference="x")
        """,
    )
    with pytest.raises(InvalidRegistrationError, match=r"nometa\.py.*'nometa' without a description"):
        registries()


def test_plugin_with_misspelled_hook(plugin_file):
    with pytest.raises(PluginLoadError) as info:
        plugin_file(
            "typo",
            """
            import rnnbench

            @rnnbench.hookimpl
            def register_cell(register):
                pass
            """,
        )
    message = str(info.value)
    assert "typo.py" in message and "register_cell" in message
    assert "Valid hooks: register_cells, register_search_spaces, register_tasks" in message


def test_plugin_with_wrong_hook_argument(plugin_file):
    with pytest.raises(PluginLoadError, match=r"wrongarg\.py.*invalid hook"):
        plugin_file(
            "wrongarg",
            """
            import rnnbench

            @rnnbench.hookimpl
            def register_cells(registry):
                pass
            """,
        )


def test_plugin_without_hooks(plugin_file):
    with pytest.raises(PluginLoadError, match=r"nohooks\.py.*implements no rnnbench hook"):
        plugin_file("nohooks", "def register_cells(register):\n    pass\n")


def test_missing_and_non_python_plugin_files(tmp_path):
    with pytest.raises(PluginLoadError, match=r"missing\.py .*does not exist"):
        load_plugin_file(tmp_path / "missing.py")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(PluginLoadError, match=r"notes\.txt .*not a \.py file"):
        load_plugin_file(tmp_path / "notes.txt")


def test_loading_the_same_file_twice_is_a_no_op(plugin_file):
    source = (TEST_PLUGINS / "toy_space.py").read_text()
    first = plugin_file("space_once", source)
    assert load_plugin_file(Path(first.location)) is first
    assert rnnbench.search_space_names().count("tiny") == 1


# --- one-file plugins and entry points in fresh processes ---------------------------------------


def test_one_file_plugin_with_plugin_option(run_cli):
    result = run_cli("--plugin", str(TEST_PLUGINS / "mgu.py"), "plugins", "--json")
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    mgu = plugins[str(TEST_PLUGINS / "mgu.py")]
    assert (mgu["source"], mgu["version"], mgu["registered"]) == ("file", "0.1.0", {"cell": ["mgu"]})


def test_repeated_plugin_option_and_environment_variable_combine(run_cli):
    env = {"RNNBENCH_PLUGINS": str(TEST_PLUGINS / "toy_task.py")}
    result = run_cli(
        "--plugin", str(TEST_PLUGINS / "mgu.py"), "--plugin", str(TEST_PLUGINS / "toy_space.py"),
        "plugins", "--json", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    registered = {kind: names for p in json.loads(result.stdout) for kind, names in p["registered"].items()
                  if p["source"] == "file"}  # fmt: skip
    assert registered == {"cell": ["mgu"], "task": ["parity"], "search space": ["tiny"]}


def test_environment_variable_plugins_pass_check_cell(run_cli):
    env = {
        "RNNBENCH_PLUGINS": os.pathsep.join([str(TEST_PLUGINS / "mgu.py"), str(TEST_PLUGINS / "toy_task.py")])
    }
    result = run_cli("check-cell", "mgu", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cell 'mgu' passed" in result.stdout


def test_plugin_paths_reach_child_processes():
    """--plugin paths are exported in RNNBENCH_PLUGINS so that worker processes load the same set."""
    code = (
        "import os, subprocess, sys\n"
        "from rnnbench.core.plugin_manager import load_plugins\n"
        f"load_plugins([{str(TEST_PLUGINS / 'mgu.py')!r}])\n"
        "child = 'import rnnbench; print(\",\".join(rnnbench.cell_names()))'\n"
        "print(subprocess.run([sys.executable, '-c', child], capture_output=True, text=True).stdout)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RNNBENCH_PLUGINS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    odyssey = "nig,nfg,nog,niaf,noaf,np,cifg,fgr"
    assert out.stdout.strip() == f"lstm,gru,rnn,peephole,{odyssey},mgu", out.stderr


def test_bad_plugin_file_gives_clear_cli_error(run_cli, tmp_path):
    bad = tmp_path / "broken_cell.py"
    bad.write_text("raise ImportError('needs cuda toolkit 99')\n")
    result = run_cli("--plugin", str(bad), "cells")
    assert result.returncode == 2
    assert "broken_cell.py" in result.stderr and "needs cuda toolkit 99" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def installed_entry_point_plugin(tmp_path_factory) -> Path:
    """Build and install a real distribution exposing an ``rnnbench`` entry point into a target folder."""
    root = tmp_path_factory.mktemp("entry-point")
    package = root / "rnnbench-mgu"
    package.mkdir()
    shutil.copy(TEST_PLUGINS / "mgu.py", package / "rnnbench_mgu.py")
    # The package example of docs/plugins.md, verbatim: what a plugin author copies must install and load.
    page = (REPO / "docs" / "plugins.md").read_text()
    block = re.search(r"<!-- package-example -->\n```toml\n(.*?)```", page, re.S)
    assert block, "docs/plugins.md lost its package example"
    (package / "pyproject.toml").write_text(block.group(1))
    site = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(package)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return site


def test_entry_point_plugin_is_discovered(run_cli, installed_entry_point_plugin):
    env = {"PYTHONPATH": str(installed_entry_point_plugin)}
    result = run_cli("plugins", "--json", env=env)
    assert result.returncode == 0, result.stderr
    mgu = {p["name"]: p for p in json.loads(result.stdout)}["mgu"]
    assert mgu["source"] == "entry point" and mgu["version"] == "0.3.1"
    assert "rnnbench-mgu" in mgu["location"] and mgu["registered"] == {"cell": ["mgu"]}
    check = run_cli("check-cell", "mgu", env=env)
    assert check.returncode == 0, check.stdout + check.stderr


def test_installed_plugin_that_fails_to_import_is_disabled_and_the_rest_keep_working(run_cli, tmp_path):
    dist_info = tmp_path / "site" / "rnnbench_broken-2.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: rnnbench-broken\nVersion: 2.0\n")
    (dist_info / "entry_points.txt").write_text("[rnnbench]\nbroken = rnnbench_broken_missing\n")
    env = {"PYTHONPATH": str(tmp_path / "site")}
    result = run_cli("plugins", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert "plugin 'broken'" in result.stderr and "rnnbench-broken 2.0" in result.stderr
    assert "ModuleNotFoundError" in result.stderr and "it is disabled" in result.stderr
    listed = {p["name"]: p for p in json.loads(result.stdout)}
    assert "rnnbench.plugins.lstm" in listed and "ModuleNotFoundError" in listed["broken"]["disabled"]
    unknown = run_cli("check-cell", "broken-cell", env=env)
    assert unknown.returncode == 2
    assert (
        "unknown cell 'broken-cell'" in unknown.stderr
        and "Disabled plugins: plugin 'broken'" in unknown.stderr
    )
    assert run_cli("check-cell", "gru", env=env).returncode == 0, "the built-ins keep working"


def test_installed_plugin_that_clashes_with_a_builtin_is_disabled(run_cli, tmp_path):
    site = tmp_path / "site"
    dist_info = site / "rnnbench_clash-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: rnnbench-clash\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[rnnbench]\nclash = rnnbench_clash\n")
    (site / "rnnbench_clash.py").write_text(
        "import torch\nimport rnnbench\n\n\n@rnnbench.hookimpl\ndef register_cells(register):\n"
        "    build = lambda input_size, hidden_size, num_layers, dropout: torch.nn.GRU(input_size, hidden_size)\n"
        "    register('extra', build, description='x', reference='x')\n"
        "    register('lstm', build, description='x', reference='x')\n"
    )
    result = run_cli("cells", "--json", env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    assert "cell 'lstm' is registered twice" in result.stderr and "clash" in result.stderr
    cells = {c["name"]: c["plugin"] for c in json.loads(result.stdout)}
    assert cells["lstm"] == "rnnbench.plugins.lstm", "the built-in keeps its name"
    assert "extra" not in cells, "nothing of the clashing plugin is half-registered"
