"""The README documents every hook and every command, and its plugin example is the tested one."""

from __future__ import annotations

import re

import pytest
import typer

from rnnbench.cli import app
from rnnbench.plugins import hook_names
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
