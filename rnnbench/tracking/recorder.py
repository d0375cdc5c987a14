"""MLflow records of training runs: params, per-epoch and final metrics, the LRD curve, status tags."""

from __future__ import annotations

import csv
import functools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rnnbench.errors import RnnbenchError, root_cause
from rnnbench.tracking.lrd_plot import write_lrd_plot
from rnnbench.tracking.store import DEFAULT_EXPERIMENT, Store, TrackingError

if TYPE_CHECKING:
    from rnnbench.training.config import TrainConfig
    from rnnbench.training.loop import EpochReport, TrainResult
    from rnnbench.training.lrd import LRDResult

F = TypeVar("F", bound="Callable[..., Any]")


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

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str = DEFAULT_EXPERIMENT,
        store: Store | None = None,
    ) -> None:
        self.store = store if store is not None else Store.open(tracking_uri, experiment)
        self.tracking_uri, self.client = self.store.uri, self.store.client
        self.experiment_id = self.store.experiment_id
        self.run_id: str | None = None

    @_writes
    def start(
        self,
        run_name: str,
        params: dict[str, Any],
        tags: dict[str, str],
        parent_run_id: str | None = None,
        description: str | None = None,
        start_time: float | None = None,
    ) -> str:
        """Create the run (``start_time``: when it started, in seconds since the epoch, where that was
        before now: a run trained elsewhere and recorded once done)."""
        from mlflow.entities import Param

        all_tags = dict(tags)
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        if description:
            all_tags["mlflow.note.content"] = description
        started = None if start_time is None else int(start_time * 1000)
        run = self.client.create_run(self.experiment_id, start_time=started, tags=all_tags, run_name=run_name)
        self.run_id = run.info.run_id
        self.client.log_batch(
            self.run_id, params=[Param(k, _param_value(v)) for k, v in params.items() if v is not None]
        )
        return self.run_id

    @_writes
    def log_metrics(self, metrics: dict[str, float], step: int, at: float | None = None) -> None:
        """Log ``metrics`` at ``step``, timed now or ``at`` (seconds since the epoch)."""
        from mlflow.entities import Metric

        when = int((time.time() if at is None else at) * 1000)
        self.client.log_batch(
            self._id(), metrics=[Metric(k, float(v), when, step) for k, v in metrics.items()]
        )

    def log_epoch(self, report: EpochReport, at: float | None = None) -> None:
        self.log_metrics(report.metrics(), step=report.epoch, at=at)

    @_writes
    def finish(self, result: TrainResult, end_time: float | None = None) -> None:
        """Record the result and end the run, now or at ``end_time`` (seconds since the epoch)."""
        from mlflow.entities import RunTag

        step = result.epochs_run
        self.log_metrics(result.final_metrics(), step=step, at=end_time)
        tags = {"status": result.status}
        if result.diverged_step is not None:
            tags["diverged_step"] = str(result.diverged_step)
        self.client.log_batch(self._id(), tags=[RunTag(k, v) for k, v in tags.items()])
        if result.lrd is not None:
            with tempfile.TemporaryDirectory() as folder:
                for path in write_lrd_artifacts(result.lrd, Path(folder), title=_title(result.config)):
                    self.client.log_artifact(self._id(), str(path))
        ended = None if end_time is None else int(end_time * 1000)
        self.client.set_terminated(self._id(), "FINISHED", end_time=ended)

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
    """The LRD curve as a table (lrd_curve.csv) and, where it is an LRD measure (more than one distance
    bucket), a plot (lrd_curve.png): one bucket would be one point."""
    table = write_lrd_table(lrd, folder)
    return [table, write_lrd_plot(lrd, folder, title)] if lrd.measured else [table]


def write_lrd_table(lrd: LRDResult, folder: Path) -> Path:
    table = folder / "lrd_curve.csv"
    rows = lrd.rows()
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return table


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
