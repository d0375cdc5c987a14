"""``python -m rnnbench.util.bytecode``: write the bytecode of what rnnbench's processes import, once.

Where ``PYTHONDONTWRITEBYTECODE`` is set (hosts of this project's kind set it) and the install wrote no
``.pyc`` files, every process compiles each module it imports again: each sweep's driver, its forked
check, each trial's Ray worker, each of Ray's own agents. Compiling the whole environment at install
(``uv pip install --compile-bytecode``) cost 88 s of CPU for 18,877 files, of which a sweep and its
leaderboard import about 4,700. This writes the files of those instead: every module that rnnbench's
source names in an import (at any depth: the lazy imports inside functions too), what the scripts Ray
runs as its own processes import, and the folders whose files are loaded by path (Ray's runtime-env
agent, MLflow's database migrations). A module imported only through another's lazy import is written
by the first process that imports it where writing is allowed (``scripts/test`` allows it). A later run
with the same installed distributions and the same names only compiles rnnbench's changed files (a stamp in
the environment's folder holds their fingerprint): importing everything again took 9 s.
"""

from __future__ import annotations

import ast
import compileall
import hashlib
import importlib
import importlib.util
import logging
import site
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path

RNNBENCH = Path(__file__).resolve().parents[1]
STAMP = Path(sys.prefix) / ".rnnbench-bytecode"  # the fingerprint of what the last run wrote
# Files Ray runs as scripts (a script's own bytecode is never read, but what it imports is), relative to
# the package they ship in.
SCRIPTS = {
    "ray": (
        "_private/workers/default_worker.py",
        "_private/workers/setup_worker.py",
        "_private/runtime_env/agent/main.py",
    ),
}
# Folders compiled whole: modules loaded by path or by a bare name after a change of sys.path (the
# runtime-env agent's, MLflow's migrations), or many imported lazily from one place (MLflow's tracing).
FOLDERS = {
    # The runtime-env agent's folder (and the plugins Ray probes in every worker); psutil, in every Ray process.
    "ray": (
        "_private/runtime_env",
        "_private/thirdparty",
        "air/_internal/device_manager",
        "thirdparty_files",
    ),
    "mlflow": ("store/db_migrations", "tracing"),
}
# What the libraries import inside their own functions during a sweep, found by running one with writing
# allowed (docs/development.md, "Bytecode"): MLflow's sqlite store and its tracing, Tune's integrations
# it probes for, pydantic's v1 API and OpenTelemetry's metrics (imported by those).
EXTRA_NAMES = (
    "sqlalchemy.dialects.sqlite",
    "alembic.command",
    "alembic.config",
    "mlflow.store.tracking.sqlalchemy_workspace_store",
    "mlflow.store.tracking.file_store",
    "mlflow.utils.search_logged_model_utils",
    "ray.air.integrations.mlflow",
    "ray.air.integrations.wandb",
    "ray.air.integrations.comet",
    "ray.train.trainer",
    "ray.tune.logger.aim",
    "pydantic.v1",
    "opentelemetry.sdk.metrics",
)


def imported_names(source: Path) -> set[str]:
    """Every absolute module name a file imports, and ``package.name`` for each ``from package import name``
    (``name`` may be a submodule, which importing the package alone does not load)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"), str(source))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def package_folder(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def names_to_import() -> set[str]:
    """The third-party modules named by rnnbench's source and by the scripts Ray runs."""
    sources = list(RNNBENCH.rglob("*.py"))
    for package, scripts in SCRIPTS.items():
        folder = package_folder(package)
        if folder is not None:
            sources += [folder / script for script in scripts if (folder / script).is_file()]
    names = set(EXTRA_NAMES).union(*(imported_names(source) for source in sources))
    return {name for name in names if name.partition(".")[0] not in sys.stdlib_module_names | {"rnnbench"}}


def import_each(names: Iterable[str]) -> tuple[int, list[str]]:
    """Import each name, writing its bytecode and its imports'. A name that raises ImportError is passed over:
    one that is not a module (``from m import function``), an optional package not installed. Returns how many
    were imported and the names whose import raised anything else (SystemExit included: a module's exit
    would end this command)."""
    imported, failed = 0, []
    before = logging.root.manager.disable
    logging.disable(logging.WARNING)  # what a module logs as it loads (torch: "No CUDA runtime is found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name in sorted(names):
                try:
                    importlib.import_module(name)
                except ImportError:
                    continue
                except (Exception, SystemExit) as error:  # it fails again where it is used, and says so there
                    failed.append(f"{name} ({type(error).__name__}: {error})")
                    continue
                imported += 1
    finally:
        logging.disable(before)
    return imported, failed


def compile_folders() -> None:
    for package, folders in FOLDERS.items():
        root = package_folder(package)
        for folder in folders if root is not None else ():
            compileall.compile_dir(root / folder, quiet=2)


def fingerprint(names: Iterable[str]) -> str:
    """What the written bytecode depends on: Python's version, every installed distribution (its
    ``*.dist-info`` folder names the version) and the names imported."""
    folders = [Path(folder) for folder in [*site.getsitepackages(), site.getusersitepackages()]]
    installed = sorted(
        path.name for folder in folders if folder.is_dir() for path in folder.glob("*.dist-info")
    )
    text = "\n".join([sys.version, *installed, "", *sorted(names)])
    return hashlib.sha256(text.encode()).hexdigest()


def main() -> int:
    """Exit status 1 where one of rnnbench's own files does not compile (a syntax error), else 0."""
    sys.dont_write_bytecode = False  # the point of this command, whatever PYTHONDONTWRITEBYTECODE says
    names = names_to_import()
    stamp = fingerprint(names)
    if not (STAMP.is_file() and STAMP.read_text(encoding="utf-8").strip() == stamp):
        imported, failed = import_each(names)
        compile_folders()
        print(
            f"bytecode: {imported} modules that rnnbench's processes import, with their own imports, are compiled"
        )
        for line in failed:
            print(f"  not imported: {line}", file=sys.stderr)
        try:
            STAMP.write_text(stamp + "\n", encoding="utf-8")
        except OSError:  # a read-only environment: the next run writes nothing new either, only slower
            pass
    else:
        print("bytecode: up to date (the same distributions and imports as the last run)")
    return 0 if compileall.compile_dir(RNNBENCH, quiet=1) else 1


if __name__ == "__main__":
    sys.exit(main())
