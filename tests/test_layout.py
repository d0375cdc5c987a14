"""The code's shape that the README's layout section promises: short functions, one MLflow client maker."""

from __future__ import annotations

import ast

from tests.conftest import REPO

PACKAGE = REPO / "rnnbench"


def functions() -> list[tuple[str, int]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                where = f"{path.relative_to(REPO)}:{node.lineno} {node.name}"
                found.append((where, node.end_lineno - node.lineno + 1))
    return found


def test_no_function_is_longer_than_80_lines():
    long = [(where, n) for where, n in functions() if n > 80]
    assert not long, f"functions over 80 lines: {long}"


def test_commands_parse_call_and_render_in_about_60_lines():
    cli = [
        (where, n) for where, n in functions() if where.startswith("rnnbench/cli.py") and "_command" in where
    ]
    assert cli and all(n <= 60 for _, n in cli), cli


def test_mlflow_clients_are_made_in_tracking_only():
    makers = [
        str(path.relative_to(REPO)) for path in PACKAGE.rglob("*.py") if "MlflowClient(" in path.read_text()
    ]
    assert makers == ["rnnbench/tracking.py"]


def test_the_package_face_imports_no_plugin_and_nothing_imports_it_back():
    """Modules inside the package import what they use from its modules, never from ``rnnbench``
    itself (the plugins' ``hookimpl`` aside: plugins use the public API as any plugin does)."""
    upward = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "rnnbench":
                names = {alias.name for alias in node.names}
                if names - {"hookimpl", "hookspecs", "cli_options"}:
                    upward.append(
                        f"{path.relative_to(REPO)}: from rnnbench import {', '.join(sorted(names))}"
                    )
            if isinstance(node, ast.Import) and any(alias.name == "rnnbench" for alias in node.names):
                upward.append(f"{path.relative_to(REPO)}: import rnnbench")
    assert not upward, upward
