"""MLflow records of training runs: params, per-epoch and final metrics, the LRD curve, status tags."""

from __future__ import annotations

import contextlib
import csv
import functools
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

from rnnbench.errors import RnnbenchError
from rnnbench.ui_views import KIND_TAG, mark_model_training

STORE_TEMPLATE_ENV = "RNNBENCH_STORE_TEMPLATE"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, one process at a time sets a store up
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from rnnbench.lrd import LRDResult
    from rnnbench.train_config import TrainConfig
    from rnnbench.training import EpochReport, TrainResult

F = TypeVar("F", bound="Callable[..., Any]")
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


def _artifact_root(uri: str) -> str | None:
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
def _setup_lock(uri: str) -> Iterator[None]:
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

    with _setup_lock(uri):
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


def root_cause(exc: BaseException) -> str:
    """The innermost error of a chain, on one line: ``OperationalError: database or disk is full``."""
    seen = {id(exc)}
    while True:
        inner = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        if inner is None or id(inner) in seen:
            break
        seen.add(id(inner))
        exc = inner
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _writes(method: F) -> F:
    """Turn a failed store write (a full disk, a server gone) into a TrackingError naming the store."""

    @functools.wraps(method)
    def wrapper(self: RunRecorder, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except RnnbenchError:
            raise
        except Exception as exc:
            run = f"run {self.run_id}" if self.run_id else "a new run"
            raise TrackingError(
                f"tracking URI {self.tracking_uri}: could not record {run} ({root_cause(exc)}); "
                "what was recorded before stays in the store"
            ) from exc

    return wrapper  # type: ignore[return-value]


class RunRecorder:
    """One MLflow run, written through the client API in batches (no global MLflow state)."""

    def __init__(self, tracking_uri: str | None = None, experiment: str = DEFAULT_EXPERIMENT) -> None:
        import logging

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # schema set-up chatter on a new store
        # It logs a failed write with its traceback before raising; rnnbench reports the error itself.
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)

        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        check_tracking_uri(self.tracking_uri)
        try:
            self.client = open_client(self.tracking_uri)
            # Two processes could create the experiment at once: one does while the other waits.
            with _setup_lock(self.tracking_uri):
                found = self.client.get_experiment_by_name(experiment)
                self.experiment_id = (
                    found.experiment_id
                    if found is not None
                    else self.client.create_experiment(
                        experiment, artifact_location=_artifact_root(self.tracking_uri)
                    )
                )
                if found is None or KIND_TAG not in found.tags:
                    mark_model_training(self.client, self.experiment_id)
        except Exception as exc:
            raise TrackingError(f"tracking URI {self.tracking_uri}: {type(exc).__name__}: {exc}") from exc
        self.run_id: str | None = None

    @_writes
    def start(
        self,
        run_name: str,
        params: dict[str, Any],
        tags: dict[str, str],
        parent_run_id: str | None = None,
        description: str | None = None,
    ) -> str:
        from mlflow.entities import Param

        all_tags = dict(tags)
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        if description:
            all_tags["mlflow.note.content"] = description
        run = self.client.create_run(self.experiment_id, tags=all_tags, run_name=run_name)
        self.run_id = run.info.run_id
        self.client.log_batch(
            self.run_id, params=[Param(k, _param_value(v)) for k, v in params.items() if v is not None]
        )
        return self.run_id

    @_writes
    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(
            self._id(), metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()]
        )

    def log_epoch(self, report: EpochReport) -> None:
        self.log_metrics(report.metrics(), step=report.epoch)

    @_writes
    def finish(self, result: TrainResult) -> None:
        from mlflow.entities import RunTag

        step = result.epochs_run
        self.log_metrics(result.final_metrics(), step=step)
        tags = {"status": result.status}
        if result.diverged_step is not None:
            tags["diverged_step"] = str(result.diverged_step)
        self.client.log_batch(self._id(), tags=[RunTag(k, v) for k, v in tags.items()])
        if result.lrd is not None:
            with tempfile.TemporaryDirectory() as folder:
                for path in write_lrd_artifacts(result.lrd, Path(folder), title=_title(result.config)):
                    self.client.log_artifact(self._id(), str(path))
        self.client.set_terminated(self._id(), "FINISHED")

    @_writes
    def fail(self, error: BaseException) -> None:
        from mlflow.entities import RunTag

        text = f"{type(error).__name__}: {error}"
        status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
        self.client.log_batch(
            self._id(),
            tags=[
                RunTag("status", "failed" if status == "FAILED" else "killed"),
                RunTag("error", text[:5000]),
            ],
        )
        self.client.set_terminated(self._id(), status)

    def _id(self) -> str:
        if self.run_id is None:
            raise RuntimeError("start() the run first")
        return self.run_id


def _param_value(value: Any) -> str:
    return "none" if value is None else str(value)


def _title(config: TrainConfig) -> str:
    return f"{config.cell} on {config.task}: depth {config.depth}, width {config.width}"


def run_params(
    config: TrainConfig,
    task_options: dict[str, Any],
    plugin: str,
    plugin_version: str | None,
    input_encoding: str,
) -> dict[str, Any]:
    """The MLflow params of a training run: the configuration, the task's options, the plugin."""
    params = {k: v for k, v in config.params().items() if k not in ("task_options", "cache_dir")}
    params["clip"] = config.clip or "none"
    params.update({f"task.{k}": v for k, v in task_options.items()})
    if "length" in task_options:
        params["length"] = task_options["length"]
    params["plugin"] = plugin
    params["plugin_version"] = plugin_version or "unknown"
    params["input_encoding"] = input_encoding  # as resolved from the data (an hf option may say "auto")
    return params


def write_lrd_artifacts(lrd: LRDResult, folder: Path, title: str) -> list[Path]:
    """The LRD curve as a table (lrd_curve.csv) and a plot (lrd_curve.png)."""
    return [write_lrd_table(lrd, folder), write_lrd_plot(lrd, folder, title)]


def write_lrd_table(lrd: LRDResult, folder: Path) -> Path:
    table = folder / "lrd_curve.csv"
    rows = lrd.rows()
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return table


def write_lrd_plot(lrd: LRDResult, folder: Path, title: str) -> Path:
    """lrd_curve.png, drawn without pyplot's global state (safe from a background thread)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(figure)
    axis = figure.add_subplot()
    centres = [max(b.low, 1) for b in lrd.buckets]
    skill = [b.skill for b in lrd.buckets]
    # 95 % binomial intervals; rows of older runs have none (NaN): no bar.
    below = [max(b.skill - b.skill_low, 0.0) if b.skill_low == b.skill_low else 0.0 for b in lrd.buckets]
    above = [max(b.skill_high - b.skill, 0.0) if b.skill_high == b.skill_high else 0.0 for b in lrd.buckets]
    axis.errorbar(
        centres, skill, yerr=[below, above], marker="o", capsize=3, label="normalised skill (95 % CI)"
    )
    axis.plot(centres, [b.accuracy for b in lrd.buckets], marker=".", linestyle=":", label="accuracy")
    for centre, bucket in zip(centres, lrd.buckets, strict=True):
        axis.annotate(f"n={bucket.count}", (centre, bucket.skill), textcoords="offset points", xytext=(0, 8),
                      fontsize=7, ha="center")  # fmt: skip
    axis.axhline(0.9, color="grey", linewidth=0.8, linestyle="--", label="horizon threshold (0.9)")
    axis.set_xscale("log", base=2)
    axis.set_ylim(-0.02, 1.02)
    axis.set_xlabel("distance (steps, log2 buckets: lower edge)")
    axis.set_ylabel("normalised skill, accuracy")
    measured = (
        f"LRD score {lrd.score:.3f}, horizon {lrd.horizon}"
        if lrd.measured
        else "one distance bucket: no LRD measure"
    )
    axis.set_title(f"{title}\n{measured}", fontsize=9)
    axis.legend(fontsize=8)
    figure.tight_layout()
    plot = folder / "lrd_curve.png"
    figure.savefig(plot)
    return plot


def replace_table(client: Any, run_id: str, table: dict[str, list[Any]], artifact_file: str) -> None:
    """``client.log_table``'s artifact (a table the UI shows, ``load_table`` reads), but replaced rather than
    appended to: MLflow's own appends the rows to a table already there, so a leaderboard logged twice
    would list every cell twice."""
    import json

    import pandas as pd

    text = pd.DataFrame(table).to_json(orient="split", index=False, date_format="iso")
    client.log_text(run_id, text, artifact_file)
    logged = json.loads(client.get_run(run_id).data.tags.get("mlflow.loggedArtifacts", "[]"))
    entry = {"path": artifact_file, "type": "table"}
    if entry not in logged:
        client.set_tag(run_id, "mlflow.loggedArtifacts", json.dumps([*logged, entry]))
