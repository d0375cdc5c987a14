"""The README documents every hook and every command, and its plugin example is the tested one."""

from __future__ import annotations

import re

import pytest
import typer

from rnnbench.cli import app
from rnnbench.plugin_manager import hook_names
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
