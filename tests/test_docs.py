"""The manual (docs/, built with mkdocs-material) and its front page (README.md) are held to the code:
every hook and every command documented, the command reference generated and current, the plugin
examples the tested ones, every module on the architecture page, every Python block runnable."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest
import typer

from rnnbench.cli import app
from rnnbench.core.plugin_manager import hook_names
from tests.conftest import REPO, TEST_PLUGINS

DOCS = REPO / "docs"
README = (REPO / "README.md").read_text()
PAGES = {path.name: path.read_text() for path in sorted(DOCS.glob("*.md"))}
COMMANDS = sorted(typer.main.get_command(app).commands)
REGENERATE = ".venv/bin/python scripts/cli_reference.py"


def cli_reference():
    """scripts/cli_reference.py, the generator of docs/cli.md, as a module."""
    spec = importlib.util.spec_from_file_location("cli_reference", REPO / "scripts" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("hook", hook_names())
def test_every_hook_is_documented(hook):
    assert re.search(rf"^### `{hook}\(register: \w+Registry\)`$", PAGES["plugins.md"], re.M), (
        f"{hook} has no section in docs/plugins.md"
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_its_section_in_the_command_reference(command):
    assert re.search(rf"^## rnnbench {command}$", PAGES["cli.md"], re.M), (
        f"rnnbench {command} has no section in docs/cli.md: run {REGENERATE}"
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_is_described_on_a_page_of_the_manual(command):
    pages = [name for name, text in PAGES.items() if name != "cli.md" and f"## `rnnbench {command}`" in text]
    assert pages, f"rnnbench {command} has no '## `rnnbench {command}`' section on any page of docs/"


def test_the_command_reference_is_what_the_command_line_declares_now():
    assert PAGES["cli.md"] == cli_reference().render(), (
        f"docs/cli.md is stale (a command's help or options changed): regenerate it with {REGENERATE}"
    )


def test_the_command_reference_says_it_is_generated_and_by_what():
    first = PAGES["cli.md"].splitlines()[0]
    assert "Generated" in first and "scripts/cli_reference.py" in first


def test_the_plugin_example_is_the_tested_plugin():
    block = re.search(r"<!-- plugin-example -->\n```python\n(.*?)```", PAGES["plugins.md"], re.S)
    assert block, "docs/plugins.md lost its plugin example"
    assert block.group(1) == (TEST_PLUGINS / "mgu.py").read_text()


def test_the_variant_example_is_the_tested_plugin():
    block = re.search(r"<!-- variant-example -->\n```python\n(.*?)```", PAGES["plugins.md"], re.S)
    assert block, "docs/plugins.md lost its ninth-variant example"
    assert block.group(1) == (TEST_PLUGINS / "cifg_np.py").read_text()


def module_table() -> str:
    page = PAGES["architecture.md"]
    table = page[page.index("## Modules") :]
    return table[: table.index("\n## ", 1)]


# Folders whose modules the architecture page covers by the folder's line.
BY_FOLDER = {"cells", "tasks", "plugins", "search_spaces"}


def test_the_architecture_page_names_every_module():
    table = module_table()
    missing = []
    for path in sorted((REPO / "rnnbench").rglob("*.py")):
        relative = path.relative_to(REPO)
        if path.name == "__init__.py" or "__pycache__" in relative.parts:
            continue
        if len(relative.parts) > 2 and relative.parts[1] in BY_FOLDER:
            named = f"`rnnbench/{relative.parts[1]}/`" in table
        else:
            named = f"`{relative.as_posix()}`" in table
        if not named:
            missing.append(relative.as_posix())
    assert not missing, f"modules the module table of docs/architecture.md does not name: {missing}"


def test_the_architecture_page_names_no_module_that_is_gone():
    named = re.findall(r"`(rnnbench/[\w/]+(?:\.py|/))`", module_table())
    gone = [name for name in named if not (REPO / name).exists()]
    assert not gone, f"docs/architecture.md names modules that do not exist: {gone}"


def test_every_python_block_of_the_manual_runs(tmp_path):
    """Each ```python block of the README and of docs/, as a reader would paste it, in a fresh Python: in a
    folder with a store holding a trained model (the Models snippet), the published data beside it (the
    export snippet), and the manual's one-file plugin loaded (the cell snippets)."""
    from rnnbench.tracking.tracked_run import run_tracked
    from rnnbench.training.loop import TrainConfig

    sources = {"README.md": README, **{f"docs/{name}": text for name, text in PAGES.items()}}
    blocks = [(source, block) for source, text in sources.items()
              for block in re.findall(r"```python\n(.*?)```", text, re.S)]  # fmt: skip
    assert len(blocks) >= 7
    config = TrainConfig(cell="gru", task="adding", width=8, epochs=1, batch_size=32, threads=1,
                         task_options={"length": 12, "train_size": 128, "validation_size": 64, "test_size": 64})  # fmt: skip
    run_tracked(config, f"sqlite:///{tmp_path / 'mlflow.db'}")
    (tmp_path / "leaderboard").symlink_to(REPO / "leaderboard")
    env = {**os.environ, "RNNBENCH_PLUGINS": str(TEST_PLUGINS / "mgu.py"), "HF_DATASETS_OFFLINE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    for k, (source, block) in enumerate(blocks):
        script = tmp_path / f"block{k}.py"
        script.write_text(block)
        done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        assert done.returncode == 0, f"a python block of {source} fails:\n{block}\n{done.stderr[-3000:]}"


def test_every_relative_link_of_the_readme_resolves():
    links = re.findall(r"\]\(([^)\s]+)\)", README)
    relative = [link.split("#")[0] for link in links if not re.match(r"[a-z]+:|#", link)]
    assert relative, "the README links to no page of the manual"
    broken = [link for link in relative if not (REPO / link).exists()]
    assert not broken, f"README.md links to files that do not exist: {broken}"


def test_the_readme_is_a_front_page_that_links_every_page_of_the_manual():
    assert len(README.splitlines()) <= 160, "README.md is the manual's front page: move the detail to docs/"
    unlinked = [name for name in PAGES if f"(docs/{name})" not in README]
    assert not unlinked, f"README.md does not link these pages of docs/: {unlinked}"


@pytest.mark.parametrize("command", [
    "scripts/bootstrap && .venv/bin/rnnbench sweep examples/quickstart.toml && .venv/bin/rnnbench leaderboard",
    "scripts/bootstrap && scripts/test",
])  # fmt: skip
def test_the_readme_and_getting_started_keep_the_quick_start_commands(command):
    for name, text in {"README.md": README, "docs/getting-started.md": PAGES["getting-started.md"]}.items():
        assert f"```bash\n{command}\n```" in text, f"{name} lost the quick-start command {command!r}"


def test_ci_runs_the_readmes_test_command():
    steps = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line and line[0] != "#"]
    assert steps[-1] == "scripts/test" and "scripts/bootstrap" in steps, steps


def test_every_page_of_the_manual_is_in_the_navigation():
    config = (REPO / "mkdocs.yml").read_text()
    missing = [name for name in PAGES if not re.search(rf":\s*{re.escape(name)}\s*$", config, re.M)]
    assert not missing, f"mkdocs.yml's nav does not list: {missing}"


def test_the_manual_builds_with_mkdocs_in_strict_mode(tmp_path):
    """Every link and anchor between the pages resolves, every page is in the navigation."""
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.skip("mkdocs and mkdocs-material are not installed (pip install -e '.[docs]')")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").exists()
