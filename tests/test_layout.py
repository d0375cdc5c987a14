"""The code's shape that the architecture page promises: layers imported one way, no circle, short
functions, one MLflow client maker."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "rnnbench"
BENCHMARKS = REPO / "benchmarks"

# The layers, top first: a module may import from its own package and from any layer below its own,
# never from a layer above or from another package of its own layer. Declared here once; the
# architecture page (docs/architecture.md) draws the same list, checked below.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli",),
    ("serve",),
    ("sweep",),
    ("report",),
    ("analysis",),
    ("tracking", "saved_model"),
    ("training",),
    ("tasks", "plugins", "search_spaces", "testing"),
    ("cells", "core"),
    ("errors", "version", "util"),
)
LEVEL = {package: depth for depth, packages in enumerate(LAYERS) for package in packages}
# The package face (``rnnbench``) re-exports the public API from core and below; its one lazy import
# above that is ``rnnbench.load_model``, the public way to load a logged model.
FACE_LAZY = {"rnnbench.tracking.models"}


def module_name(path: Path, root: Path = REPO) -> str:
    return ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")


def imports(path: Path, modules: set[str]) -> list[tuple[str, int]]:
    """Every rnnbench module ``path`` imports, at top level or inside a function, with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "rnnbench":
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.append((full if full in modules else node.module, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "rnnbench"]
    return found


def package_of(module: str) -> str | None:
    """The layer package of ``rnnbench.X.y`` (``X``); None for the package face itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def graph(root: Path) -> dict[str, list[tuple[str, int]]]:
    """Each module of ``root/rnnbench`` and the rnnbench modules it imports."""
    paths = sorted((root / "rnnbench").rglob("*.py"))
    modules = {module_name(p, root) for p in paths}
    return {module_name(p, root): imports(p, modules) for p in paths}


def climbing(root: Path) -> list[str]:
    """Imports that climb the layers or cross between packages of one layer."""
    found = []
    for me, imported in graph(root).items():
        mine = package_of(me)
        for module, line in imported:
            theirs = package_of(module)
            where = f"{me}:{line} imports {module}"
            if mine is None:  # the package face
                if theirs is not None and LEVEL[theirs] < LEVEL["core"] and module not in FACE_LAZY:
                    found.append(where)
            elif theirs is not None and theirs != mine and LEVEL[theirs] <= LEVEL[mine]:
                found.append(where)
    return found


def circles(root: Path) -> list[list[str]]:
    edges = {me: sorted({m for m, _ in imported}) for me, imported in graph(root).items()}
    found: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for nxt in edges[module]:
            if nxt == module or nxt not in edges:
                continue
            if state.get(nxt) == 1:
                found.append([*trail[trail.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[module] = 2

    for module in edges:
        if module not in state:
            visit(module, [module])
    return found


def test_every_package_and_top_module_has_a_layer():
    tops = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or p.is_dir()}
    tops -= {"__init__", "__pycache__"}
    assert tops <= set(LEVEL), f"in no layer: {sorted(tops - set(LEVEL))}; add them to LAYERS"


def test_no_import_climbs_the_layers():
    found = climbing(REPO)
    assert not found, "imports that climb the layers (or cross within one):\n" + "\n".join(found)


def test_no_circle_between_modules():
    found = circles(REPO)
    assert not found, "import circles: " + "; ".join(" -> ".join(c) for c in found)


def test_the_checks_see_a_lazy_climbing_import_and_a_circle(tmp_path):
    """Imports inside functions count: a training module that imports the CLI when called climbs, and two
    modules of one package that import each other close a circle."""
    for name, text in {
        "__init__.py": "", "training/__init__.py": "", "cli/__init__.py": "", "errors.py": "",
        "training/fake.py": "def f():\n    from rnnbench.cli import app\n    return app\n",
        "training/a.py": "from rnnbench.training import b\n",
        "training/b.py": "from rnnbench.errors import X\n\n\ndef g():\n    import rnnbench.training.a\n",
    }.items():  # fmt: skip
        (tmp_path / "rnnbench" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "rnnbench" / name).write_text(text)
    assert climbing(tmp_path) == ["rnnbench.training.fake:2 imports rnnbench.cli"]
    assert circles(tmp_path) == [["rnnbench.training.a", "rnnbench.training.b", "rnnbench.training.a"]]


def test_the_architecture_page_draws_the_declared_layers():
    page = (REPO / "docs" / "architecture.md").read_text()
    drawn = re.search(r"<!-- layers -->\n```text\n(.*?)```", page, re.S)
    assert drawn, "docs/architecture.md lost its layer drawing"
    rows = [re.findall(r"\b[a-z_]+\b", line.split("#")[0]) for line in drawn.group(1).splitlines()]
    assert [tuple(r) for r in rows if r] == list(LAYERS)


def functions(*folders: Path) -> list[tuple[str, int]]:
    found = []
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    where = f"{path.relative_to(REPO)}:{node.lineno} {node.name}"
                    found.append((where, node.end_lineno - node.lineno + 1))
    return found


def test_no_function_is_longer_than_60_lines():
    long = [(where, n) for where, n in functions(PACKAGE, BENCHMARKS) if n > 60]
    assert not long, f"functions over 60 lines: {long}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "cli").glob("*.py")), ids=lambda p: p.name)
def test_the_command_line_gathers_no_locals_and_declares_options_once(path):
    text = path.read_text()
    assert "locals()" not in text
    if path.name not in ("options.py", "__init__.py"):  # the app's own --plugin and --version live with it
        assert "typer.Option(" not in text and "typer.Argument(" not in text, "declare it in cli/options.py"


def test_mlflow_clients_are_made_in_the_store_only():
    makers = [
        str(path.relative_to(REPO)) for path in PACKAGE.rglob("*.py") if "MlflowClient(" in path.read_text()
    ]
    assert makers == ["rnnbench/tracking/store.py"]


def test_the_package_face_imports_no_plugin_and_nothing_imports_it_back():
    """Modules inside the package import what they use from its modules, never from ``rnnbench``
    itself (the plugins' ``hookimpl`` aside: plugins use the public API as any plugin does)."""
    upward = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "rnnbench":
                names = {alias.name for alias in node.names}
                if names - {"hookimpl"}:
                    upward.append(
                        f"{path.relative_to(REPO)}: from rnnbench import {', '.join(sorted(names))}"
                    )
            if isinstance(node, ast.Import) and any(alias.name == "rnnbench" for alias in node.names):
                upward.append(f"{path.relative_to(REPO)}: import rnnbench")
    assert not upward, upward


def test_no_module_takes_another_modules_private_names():
    taken = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rnnbench"):
                private = [
                    a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")
                ]
                taken += [f"{path.relative_to(REPO)}: {node.module}.{name}" for name in private]
    assert not taken, f"private names imported across modules (make them public or move them): {taken}"
