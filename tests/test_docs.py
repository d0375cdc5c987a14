"""The README documents every hook and every command, and its plugin example is the tested one."""

from __future__ import annotations

import re

import pytest
import typer

from rnnbench.cli import app
from rnnbench.core.plugin_manager import hook_names
from tests.conftest import REPO, TEST_PLUGINS

README = (REPO / "README.md").read_text()


@pytest.mark.parametrize("hook", hook_names())
def test_every_hook_is_documented(hook):
    assert re.search(rf"^### `{hook}\(register: \w+Registry\)`$", README, re.M), (
        f"{hook} has no README section"
    )


@pytest.mark.parametrize("command", sorted(typer.main.get_command(app).commands))
def test_every_command_is_documented(command):
    assert f"### `rnnbench {command}" in README, f"rnnbench {command} has no README section"


def test_readme_plugin_example_is_the_tested_plugin():
    block = re.search(r"<!-- plugin-example -->\n```python\n(.*?)```", README, re.S)
    assert block, "the README lost its plugin example"
    assert block.group(1) == (TEST_PLUGINS / "mgu.py").read_text()


def test_readme_variant_example_is_the_tested_plugin():
    block = re.search(r"<!-- variant-example -->\n```python\n(.*?)```", README, re.S)
    assert block, "the README lost its ninth-variant example"
    assert block.group(1) == (TEST_PLUGINS / "cifg_np.py").read_text()


def test_the_layout_section_names_every_module():
    section = README[README.index("### Code layout") :]
    package = REPO / "rnnbench"
    modules = [p for p in package.rglob("*.py") if "__pycache__" not in p.parts]
    missing = []
    for path in modules:
        relative = path.relative_to(REPO)
        if path.parent == package or path.parent.name == "sweep":
            named = f"`{relative}`" in section or f"`{path.name}`" in section
        else:  # modules of cells/, tasks/, plugins/, search_spaces/ are covered by their folder's line
            named = f"`{relative.parent}/`" in section
        if not named and path.name != "__init__.py":
            missing.append(str(relative))
    assert not missing, f"modules the README's layout section does not name: {missing}"


def test_every_python_block_of_the_readme_runs(tmp_path):
    """Each ```python block, as a reader would paste it, in a fresh Python: in a folder with a store holding
    a trained model (the Models snippet), the published data beside it (the export snippet), and the README's
    one-file plugin loaded (the cell snippets)."""
    import os
    import subprocess
    import sys

    from rnnbench.tracking.tracked_run import run_tracked
    from rnnbench.training.loop import TrainConfig

    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert len(blocks) >= 7
    config = TrainConfig(cell="gru", task="adding", width=8, epochs=1, batch_size=32, threads=1,
                         task_options={"length": 12, "train_size": 128, "validation_size": 64, "test_size": 64})  # fmt: skip
    run_tracked(config, f"sqlite:///{tmp_path / 'mlflow.db'}")
    (tmp_path / "leaderboard").symlink_to(REPO / "leaderboard")
    env = {**os.environ, "RNNBENCH_PLUGINS": str(TEST_PLUGINS / "mgu.py"), "HF_DATASETS_OFFLINE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    for k, block in enumerate(blocks):
        script = tmp_path / f"block{k}.py"
        script.write_text(block)
        done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        assert done.returncode == 0, f"README python block {k + 1} fails:\n{block}\n{done.stderr[-3000:]}"
