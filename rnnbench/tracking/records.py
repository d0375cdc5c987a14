"""Results as data: a store's sweep records as a Hugging Face ``datasets`` dataset (parquet), and the one
interface the leaderboard and the study read runs through, whether from MLflow or from such a file.

One row per run (a sweep's parent run, its trial runs, the reseed runs of its trials): its ids, kind,
sweep, cell, task, status and main metrics as columns, and its params, tags, final metrics, per-epoch
curves and LRD buckets as JSON text (a run's keys differ from task to task). A page built from the
export equals the page built from MLflow: the rows keep the store's (path-free) URI and experiment id.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from rnnbench.errors import RnnbenchError
from rnnbench.tracking.store import Store
from rnnbench.training.metrics import EPOCH_METRICS, STATUSES
from rnnbench.util.text import without_paths

COLUMNS = ("run_id", "experiment_id", "kind", "sweep", "cell", "task", "status", "reseed_of", "start_time",
           "end_time", "test_accuracy", "lrd_score", "best_val_accuracy", "best_val_loss", "params", "tags",
           "metrics", "curves", "lrd_curve", "store")  # fmt: skip


class RecordsError(RnnbenchError):
    """An export file cannot be read or written: the message names the file."""


def in_order(runs: Iterable[Any]) -> list[Any]:
    """Runs in the one order both sources give them (start time, then id): a page built from either is
    the same, ties included."""
    return sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id))


def _run(row: dict[str, Any]) -> Any:
    """An MLflow-run-shaped object (``.info``, ``.data``) from an exported row."""
    info = SimpleNamespace(run_id=row["run_id"], experiment_id=row["experiment_id"],
                           start_time=row["start_time"], end_time=row["end_time"])  # fmt: skip
    data = SimpleNamespace(params=json.loads(row["params"]), tags=json.loads(row["tags"]),
                           metrics=json.loads(row["metrics"]))  # fmt: skip
    return SimpleNamespace(info=info, data=data)


def sqlite_trial_runs(uri: str, experiment_id: str, **tags: str | None) -> list[Any] | None:
    """The trial runs MLflow's search would give (active, with an Optuna trial number and these tags),
    read from an sqlite store's tables in the same shape (``.info``, ``.data``); None where the store is
    not an sqlite file or its tables are not the ones read here, and the caller then asks MLflow.

    MLflow's search builds an ORM object for every param, tag and metric row: 19 of the leaderboard's
    30 s at 5,400 trial runs. tests/test_records.py checks both give the same runs."""
    import sqlite3

    path = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
    if path is None or not path.is_file():
        return None
    has_tag = "EXISTS (SELECT 1 FROM tags t WHERE t.run_uuid = r.run_uuid AND t.key = ? AND t.value {} ?)"
    clauses = ["r.experiment_id = ?", "r.lifecycle_stage = 'active'", has_tag.format("!=")]
    args: list[Any] = [int(experiment_id), "optuna_trial", ""]
    for key, value in tags.items():
        if value is not None:
            clauses.append(has_tag.format("="))
            args += [key, str(value)]
    where = " AND ".join(clauses)
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        infos = db.execute(
            f"SELECT r.run_uuid, r.start_time, r.end_time, r.status FROM runs r WHERE {where}", args
        )
        data: dict[str, tuple[dict[str, Any], ...]] = {}
        runs = []
        for run_id, start, end, status in infos.fetchall():
            data[run_id] = ({}, {}, {})
            info = SimpleNamespace(run_id=run_id, experiment_id=str(experiment_id), start_time=start,
                                   end_time=end, status=status)  # fmt: skip
            runs.append(SimpleNamespace(info=info, data=SimpleNamespace(params=data[run_id][0],
                                                                        tags=data[run_id][1],
                                                                        metrics=data[run_id][2])))  # fmt: skip
        for slot, table in enumerate(("params", "tags")):
            query = f"SELECT x.run_uuid, x.key, x.value FROM {table} x JOIN runs r ON r.run_uuid = x.run_uuid WHERE {where}"
            for run_id, key, value in db.execute(query, args):
                data[run_id][slot][key] = value
        query = (f"SELECT x.run_uuid, x.key, x.value, x.is_nan FROM latest_metrics x JOIN runs r "
                 f"ON r.run_uuid = x.run_uuid WHERE {where}")  # fmt: skip
        for run_id, key, value, is_nan in db.execute(query, args):
            data[run_id][2][key] = float("nan") if is_nan else float(value)
    except (sqlite3.Error, ValueError, TypeError):  # another schema: MLflow's own search reads it
        return None
    finally:
        db.close()
    return runs


@dataclass
class MlflowRuns(Store):
    """Runs read from an MLflow store: the store itself (``MlflowRuns.find``, or ``MlflowRuns.of`` a store
    already open), searched."""

    @classmethod
    def of(cls, store: Store) -> MlflowRuns:
        return cls(store.uri, store.client, store.experiment_id)

    def trial_runs(self, task: str | None = None, sweep: str | None = None) -> list[Any]:
        found = sqlite_trial_runs(self.uri, self.experiment_id, task=task, sweep=sweep)
        if found is None:
            from rnnbench.tracking.run_search import trial_runs

            found = trial_runs(self.client, self.experiment_id, task=task, sweep=sweep)
        return in_order(found)

    def reseed_runs(self, run_id: str) -> list[Any]:
        from rnnbench.tracking.run_search import reseed_runs

        return in_order(reseed_runs(self.client, self.experiment_id, run_id))

    def sweep_run(self, name: str) -> Any | None:
        from rnnbench.tracking.run_search import sweep_run

        return sweep_run(self.client, self.experiment_id, name)

    def history(self, run_id: str, metric: str) -> list[tuple[int, float]]:
        return sorted((m.step, m.value) for m in self.client.get_metric_history(run_id, metric))

    def lrd_curve(self, run_id: str) -> list[dict[str, float]]:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        with tempfile.TemporaryDirectory() as folder:
            try:
                path = self.client.download_artifacts(run_id, "lrd_curve.csv", folder)
            except Exception:  # a run without its curve (older, failed or fixed-length): no line
                return []
            with open(path) as handle:
                return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(handle)]


@dataclass
class ExportedRuns:
    """Runs read from exported rows (``rnnbench export``), with the same methods as :class:`MlflowRuns`."""

    rows: list[dict[str, Any]]
    uri: str = ""
    experiment_id: str = ""
    # By run id: each row rebuilt as a run (what the leaderboard reads), and the row itself (its curves).
    _run_of: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _row_of: dict[str, dict[str, Any]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._run_of = {r["run_id"]: _run(r) for r in self.rows}
        self._row_of = {r["run_id"]: r for r in self.rows}
        if self.rows:
            self.uri = self.uri or self.rows[0]["store"]
            self.experiment_id = self.experiment_id or self.rows[0]["experiment_id"]

    def _select(self, **wanted: str | None) -> list[Any]:
        return in_order(self._run_of[r["run_id"]] for r in self.rows
                        if all(value is None or r[key] == value for key, value in wanted.items()))  # fmt: skip

    def trial_runs(self, task: str | None = None, sweep: str | None = None) -> list[Any]:
        return self._select(kind="trial", task=task, sweep=sweep)

    def reseed_runs(self, run_id: str) -> list[Any]:
        return self._select(kind="reseed", reseed_of=run_id)

    def sweep_run(self, name: str) -> Any | None:
        found = self._select(kind="sweep", sweep=name)
        return found[0] if found else None

    def history(self, run_id: str, metric: str) -> list[tuple[int, float]]:
        curves = json.loads(self._row_of[run_id]["curves"] or "{}")
        return [(int(step), float(value)) for step, value in curves.get(metric, [])]

    def lrd_curve(self, run_id: str) -> list[dict[str, float]]:
        return json.loads(self._row_of[run_id]["lrd_curve"] or "[]")


def _kind(run: Any) -> str:
    tags = run.data.tags
    if tags.get("kind") in ("sweep", "reseed"):
        return tags["kind"]
    return "trial" if tags.get("optuna_trial", "") != "" else "other"


def _row(source: MlflowRuns, run: Any) -> dict[str, Any]:
    tags, metrics = run.data.tags, run.data.metrics
    kind = _kind(run)
    curves = {m: source.history(run.info.run_id, m) for m in EPOCH_METRICS} if kind != "sweep" else {}
    finished = kind != "sweep" and tags.get("status") in STATUSES
    return {
        "run_id": run.info.run_id, "experiment_id": source.experiment_id, "kind": kind,
        "sweep": tags.get("sweep", ""), "cell": tags.get("cell", ""), "task": tags.get("task", ""),
        "status": tags.get("status", ""), "reseed_of": tags.get("reseed_of", ""),
        "start_time": run.info.start_time, "end_time": run.info.end_time,
        "test_accuracy": metrics.get("test_accuracy"), "lrd_score": metrics.get("lrd_score"),
        "best_val_accuracy": metrics.get("best_val_accuracy"), "best_val_loss": metrics.get("best_val_loss"),
        # A data file that may be published names no path of this machine (a data file's, a script's).
        "params": without_paths(json.dumps(run.data.params, sort_keys=True)),
        "tags": without_paths(json.dumps(tags, sort_keys=True)),
        "metrics": json.dumps(metrics, sort_keys=True),
        "curves": json.dumps({k: v for k, v in curves.items() if v}),
        "lrd_curve": json.dumps(source.lrd_curve(run.info.run_id) if finished else []),
        "store": without_paths(source.uri),
    }  # fmt: skip


def rows_of(source: MlflowRuns, sweeps: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Every run of the named sweeps (all sweeps when None): parent, trials and their reseeds."""
    trials = (
        source.trial_runs() if sweeps is None else [r for s in sweeps for r in source.trial_runs(sweep=s)]
    )
    names = sorted({r.data.tags.get("sweep", "") for r in trials} | set(sweeps or ()))
    parents = [p for p in (source.sweep_run(n) for n in names if n) if p is not None]
    reseeds = [s for r in trials for s in source.reseed_runs(r.info.run_id)]
    runs = in_order(parents + trials + reseeds)
    return [_row(source, r) for r in runs]


def write(rows: list[dict[str, Any]], path: Path) -> Path:
    """Write rows as one parquet file through ``datasets``."""
    import datasets

    if path.exists() and path.is_dir():
        raise RecordsError(f"export target {path} is a folder; give a file name ending in .parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    table = {k: [r[k] for r in rows] for k in COLUMNS}
    datasets.disable_progress_bars()  # a bar for one batch, on the command's error stream, says nothing
    datasets.Dataset.from_dict(table).to_parquet(str(path))
    return path


def read(paths: Iterable[Path]) -> ExportedRuns:
    """Exported rows from parquet files (a folder: every ``*.parquet`` in it, sorted)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(path.glob("*.parquet"))
        elif path.is_file():
            files.append(path)
        else:
            raise RecordsError(f"--from {path}: no such file or folder")
    if not files:
        raise RecordsError(f"--from: no .parquet file in {', '.join(str(p) for p in paths)}")
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for file in files:
        try:
            table = pq.read_table(file)
        except Exception as exc:
            raise RecordsError(
                f"--from {file}: not a readable parquet file ({type(exc).__name__}: {exc})"
            ) from None
        missing = [c for c in COLUMNS if c not in table.column_names]
        if missing:
            raise RecordsError(
                f"--from {file}: not an rnnbench export (missing columns: {', '.join(missing)})"
            )
        rows += table.to_pylist()
    return ExportedRuns(rows)
