"""The MLflow store: its URI resolved and checked once, its client, a new sqlite store made from a template."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from rnnbench.errors import RnnbenchError, root_cause

STORE_TEMPLATE_ENV = "RNNBENCH_STORE_TEMPLATE"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, one process at a time sets a store up
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


DEFAULT_EXPERIMENT = "rnnbench"
TRACKING_ENV = "MLFLOW_TRACKING_URI"


class TrackingError(RnnbenchError):
    """The MLflow tracking store cannot be used (bad URI, unwritable location, server down)."""


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The URI given, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` in the working directory
    (made absolute, so that worker processes in other directories write to the same file)."""
    uri = uri or os.environ.get(TRACKING_ENV) or "sqlite:///mlflow.db"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str(sqlite_file(uri).resolve())
    return uri


def sqlite_file(uri: str) -> Path:
    """The database file of a ``sqlite:///PATH`` tracking URI."""
    return Path(uri.removeprefix("sqlite:///"))


def artifact_root(uri: str) -> str | None:
    """Artifacts beside a sqlite file (``mlartifacts/``), so the store is one folder to copy."""
    if uri.startswith("sqlite:///"):
        return (sqlite_file(uri).parent / "mlartifacts").resolve().as_uri()
    return None


def store_error(uri: str, exc: BaseException) -> TrackingError:
    """One line naming the store and the cause (a garbled sqlite file gives a page of SQLAlchemy text)."""
    return TrackingError(f"tracking URI {uri}: the store cannot be read ({root_cause(exc)[:300]})")


def check_tracking_uri(uri: str, write: bool = True) -> None:
    """Fail early, naming the URI, when the store cannot be written (or, ``write=False``, read) or reached."""
    parsed = urlparse(uri)
    if uri.startswith("sqlite:///"):
        folder = sqlite_file(uri).parent
        if not folder.is_dir():
            raise TrackingError(f"tracking URI {uri}: the folder {folder} does not exist")
        if not write:
            return
        # Try a real write: os.access says yes to root on a read-only or refusing filesystem.
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
            if sqlite_file(uri).exists():
                with open(sqlite_file(uri), "r+b"):
                    pass
        except OSError as exc:
            raise TrackingError(f"tracking URI {uri}: the store cannot be written there ({exc})") from None
    elif parsed.scheme in ("http", "https"):
        import urllib.request

        try:
            urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5).close()
        except OSError as exc:
            raise TrackingError(f"tracking URI {uri}: no MLflow server answers ({exc})") from None


@contextmanager
def setup_lock(uri: str) -> Iterator[None]:
    """An exclusive lock file beside a sqlite store (``mlflow.db.lock``); nothing for other stores."""
    if not uri.startswith("sqlite:///") or fcntl is None:
        yield
        return
    try:
        handle = open(f"{sqlite_file(uri)}.lock", "a")
    except OSError:  # a read-only folder: no process can be setting a store up there
        yield
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:  # a filesystem without locks (some NFS, FUSE): set up unlocked, as before
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_client(uri: str) -> MlflowClient:
    """An MlflowClient on ``uri`` with its store set up. MLflow creates a new store's tables on first
    use; any process doing so at the same time as another (a sweep, a leaderboard) would fail, so the
    first use happens under the lock beside a sqlite store."""
    from mlflow.tracking import MlflowClient

    with setup_lock(uri):
        if uri.startswith("sqlite:///") and not sqlite_file(uri).exists():
            _create_sqlite_store(sqlite_file(uri))
        client = MlflowClient(uri)
        client.search_experiments(max_results=1)
    return client


def _create_sqlite_store(path: Path) -> None:
    """Build a new store's schema in a staging file, then move it into place in one step.

    MLflow's schema migrations on sqlite are not atomic: a Ctrl-C among them left a half-migrated
    ``mlflow.db`` that no later run could open (``table _alembic_tmp_experiments already exists``).
    Interrupted here, only the staging file is left, and it is removed. The staging file starts as a copy
    of an empty store this MLflow version already migrated (:func:`store_template`), which MLflow then
    checks: replaying every migration took 3 of the 5.6 s a new store cost."""
    template = store_template()
    if template is not None and template.is_file():
        try:
            _stage_store(path, template)
            return
        except KeyboardInterrupt:
            raise
        except Exception:  # a template MLflow refuses (damaged, another schema): built afresh, and replaced
            template.unlink(missing_ok=True)
    _stage_store(path, None, keep_as=template)


def _stage_store(path: Path, template: Path | None, keep_as: Path | None = None) -> None:
    from mlflow.tracking import MlflowClient

    # A fresh name each time: MLflow caches a store (and that its tables exist) per URI.
    staging = path.with_name(f".{path.name}.creating-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        if template is not None:
            shutil.copyfile(template, staging)
            # MLflow puts its Default experiment's artifacts under the creating process's folder.
            with contextlib.closing(sqlite3.connect(staging)) as db, db:
                db.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                           (f"{Path.cwd() / 'mlruns'}/0",))  # fmt: skip
        client = MlflowClient(f"sqlite:///{staging}")
        client.search_experiments(max_results=1)  # builds the schema, or checks the template's
        _dispose(client)
        if keep_as is not None:
            with contextlib.suppress(OSError):  # a read-only cache: every new store migrates, as before
                keep_as.parent.mkdir(parents=True, exist_ok=True)
                copy = keep_as.with_name(f".{keep_as.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}")
                shutil.copyfile(staging, copy)
                os.replace(copy, keep_as)
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)


def store_template() -> Path | None:
    """Where an empty store of this MLflow version is kept: ``$XDG_CACHE_HOME/rnnbench`` (or
    ``~/.cache/rnnbench``); ``RNNBENCH_STORE_TEMPLATE=0`` turns it off (every new store migrates)."""
    if os.environ.get(STORE_TEMPLATE_ENV, "1") == "0":
        return None
    import mlflow

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rnnbench"
    return base / f"empty-mlflow-{mlflow.__version__}.db"


def _dispose(client: MlflowClient) -> None:
    """Close a client's sqlite connections (MLflow caches its store per URI)."""
    engine = getattr(getattr(client._tracking_client, "store", None), "engine", None)
    if engine is not None:
        engine.dispose()


@dataclass
class Store:
    """One MLflow store as a command uses it: its URI resolved, one client, one experiment. Opened once per
    command and handed down (the run recorder, the trial recorder, the models, the leaderboard at a sweep's
    end), so that a command checks its store and sets up a client once."""

    uri: str
    client: MlflowClient
    experiment_id: str

    @classmethod
    def open(cls, uri: str | None, experiment: str = DEFAULT_EXPERIMENT, checked: bool = False) -> Store:
        """The store to write to, its experiment created if new (``checked``: the caller has already
        checked that the URI can be written, as a sweep's plan does before any work)."""
        from rnnbench.tracking.ui_views import KIND_TAG, mark_model_training

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # schema set-up chatter on a new store
        # It logs a failed write with its traceback before raising; rnnbench reports the error itself.
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
        resolved = resolve_tracking_uri(uri)
        if not checked:
            check_tracking_uri(resolved)
        try:
            client = open_client(resolved)
            # Two processes could create the experiment at once: one does while the other waits.
            with setup_lock(resolved):
                found = client.get_experiment_by_name(experiment)
                experiment_id = (
                    found.experiment_id if found is not None
                    else client.create_experiment(experiment, artifact_location=artifact_root(resolved))
                )  # fmt: skip
                if found is None or KIND_TAG not in found.tags:
                    mark_model_training(client, experiment_id)
        except Exception as exc:
            raise TrackingError(f"tracking URI {resolved}: {type(exc).__name__}: {exc}") from exc
        return cls(resolved, client, experiment_id)

    @classmethod
    def find(cls, uri: str | None, experiment: str) -> Store | None:
        """The store to read, or None when it has no such experiment (no sqlite file: no experiment)."""
        resolved = resolve_tracking_uri(uri)
        if resolved.startswith("sqlite:///") and not sqlite_file(resolved).is_file():
            return None
        check_tracking_uri(resolved, write=False)
        try:
            client = open_client(resolved)
            found = client.get_experiment_by_name(experiment)
        except Exception as exc:
            raise store_error(resolved, exc) from None
        return None if found is None else cls(resolved, client, found.experiment_id)
