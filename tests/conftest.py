"""Shared fixtures: test plugins registered and unregistered around a test, and a CLI runner."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

# Tests never reach the Hugging Face hub.
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
# One thread for torch's and BLAS's parallel loops in each test process and the processes it starts, unless
# asked otherwise: scripts/test runs two test processes on two cores, so a second thread only contends.
# Trials set their own (their CPU share), as in any sweep. Measured in docs/development.md.
os.environ.setdefault("OMP_NUM_THREADS", "1")

TEST_PLUGINS = Path(__file__).parent / "plugins"
REPO = Path(__file__).parent.parent


@pytest.hookimpl(trylast=True)  # after pytest-xdist's own hook, which names each item's group
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Modules with the most ``slow`` tests run first, each module's tests kept together and in order.

    pytest-xdist hands out tests in this order: when a minute-long fault test came last, one process
    ran it while the other sat idle (one of two CPUs unused over the last two minutes of one run).
    Long tests first and quick ones last lets both processes finish together."""
    if config.getoption("loadgroup", False):
        lost = [i.nodeid for i in items if i.get_closest_marker("xdist_group") and "@" not in i.nodeid]
        if lost:  # each process would build the group's module fixture again (seconds each), silently
            warnings.warn(
                f"pytest-xdist did not group {lost[0]} (and {len(lost) - 1} more) under --dist loadgroup "
                f"on pytest {pytest.__version__}: see pytest-xdist#1386 and the pin in pyproject.toml",
                pytest.PytestWarning,
                stacklevel=1,
            )
    slow_modules_first(items)


def slow_modules_first(items: list[pytest.Item]) -> None:
    """Sort ``items`` in place: modules by their count of ``slow`` tests, most first; a module's tests
    stay together and in their order, and so do modules with equal counts."""

    def module(item: pytest.Item) -> str:
        return item.nodeid.split("::")[0]

    slow = Counter(module(item) for item in items if item.get_closest_marker("slow") is not None)
    items.sort(key=lambda item: -slow[module(item)])  # a stable sort


@pytest.fixture(autouse=True)
def tracking_uri_left_alone() -> Iterator[None]:
    """Fail the test that leaves $MLFLOW_TRACKING_URI changed (``mlflow.set_tracking_uri`` sets it): every
    later command this process starts would write to that store (once: the repository's mlflow.db)."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    after = os.environ.get("MLFLOW_TRACKING_URI")
    if after != before:
        if before is None:
            del os.environ["MLFLOW_TRACKING_URI"]
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before
        pytest.fail(f"the test left MLFLOW_TRACKING_URI={after!r} (it was {before!r})")


def import_test_plugin(name: str) -> ModuleType:
    """Import tests/plugins/<name>.py as a module named ``rnnbench_test_<name>``."""
    spec = importlib.util.spec_from_file_location(f"rnnbench_test_{name}", TEST_PLUGINS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def use_plugin() -> Iterator[Callable[[object, str], None]]:
    """Register plugin objects for one test; they are unregistered when it ends, even on failure."""
    from rnnbench.core.plugin_manager import _infos, load_plugins, register_plugin, unregister_plugin

    load_plugins()
    added: list[str] = []

    def register(plugin: object, name: str) -> None:
        register_plugin(plugin, name=name)
        added.append(name)

    yield register
    for name in reversed(added):
        if name in _infos:
            unregister_plugin(name)


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the installed ``rnnbench`` console script in a fresh process (plugins load from scratch)."""

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        full_env = {k: v for k, v in os.environ.items() if k != "RNNBENCH_PLUGINS"}
        full_env.update(env or {})
        script = Path(sys.executable).parent / "rnnbench"
        return subprocess.run(
            [str(script), *args],
            capture_output=True,
            text=True,
            env=full_env,
            cwd=tmp_path,
            timeout=300,
        )

    return run


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One local Ray for every in-process sweep test (ray.init costs seconds)."""
    import logging

    import ray

    from rnnbench.sweep.cluster import EMBEDDED_DEFAULTS, lean_head

    # "local": a Ray of its own, never a cluster another test (or another pytest worker) started on this host;
    # as a sweep's own Ray, without the processes lean_head leaves out and without idle workers prestarted for
    # tasks (trials are actors, each in a new process): seconds of CPU on 2 cores. Its processes read the
    # environment as they start.
    saved = {key: os.environ.get(key) for key in EMBEDDED_DEFAULTS}
    os.environ.update({k: v for k, v in EMBEDDED_DEFAULTS.items() if saved[k] is None})
    try:
        with lean_head():
            ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
                     log_to_driver=False)  # fmt: skip
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def ray_address(ray_session) -> str:
    """The address of that Ray, for sweeps in their own process to join (``--address``): each then skips
    Ray's start and shutdown. Tests about starting Ray, its shutdown or its faults keep a Ray of their own.

    The subprocess inherits ``RAY_AUTH_MODE=token`` from this process (Ray set it when it started the
    cluster with token authentication) and reads the token from where Ray saved it."""
    import ray

    return ray.get_runtime_context().gcs_address


TINY_TASK = {"length": 16, "train_size": 256, "validation_size": 64, "test_size": 128}


def require_lstm_family_kernel() -> None:
    """Skip when the LSTM-family kernel (peephole and the Odyssey variants) is neither cached nor
    buildable here; a failing build is a real failure."""
    from rnnbench.cells import lstm_family

    built = (lstm_family.kernel_build_dir() / "rnnbench-build-done").exists()
    missing = lstm_family.kernel_missing_tools()
    if not built and missing:
        pytest.skip(f"the compiled LSTM-family kernel cannot be built here: {missing}")
    lstm_family.load_kernel()


@pytest.fixture(params=["cpp", "python"])
def kernel_path(request, monkeypatch):
    """Run an LSTM-family test once on the compiled CPU kernel and once on the pure-PyTorch path."""
    from rnnbench.cells.lstm_family import KERNEL_ENV

    if request.param == "cpp":
        require_lstm_family_kernel()
    monkeypatch.setenv(KERNEL_ENV, request.param)
    return request.param
