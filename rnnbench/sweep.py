"""Sweeps: per-cell Optuna studies (TPE, persistent) run as Ray Tune trials with ASHA, tracked in MLflow.

Each cell gets its own study and sampler, so cells are compared on equal budgets. Every trial is
one nested MLflow run under the sweep's parent run, written from the driver alone (a Tune
callback), so parallel trials never contend for an sqlite store. The sweep's folder
(``rnnbench-sweeps/NAME``) holds its settings and the Optuna journal: ``--resume NAME`` continues
to exactly the requested number of trials per cell.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnbench.errors import RnnbenchError
from rnnbench.sweep_config import SweepConfigError, SweepSettings, validate

STATE_FILE = "sweep.json"
JOURNAL_FILE = "optuna.journal"
STATUSES = ("completed", "pruned", "diverged", "failed")


class SweepError(RnnbenchError):
    """The sweep cannot start or continue: the message says why and what to do."""


class SweepInterrupted(RnnbenchError):
    """The sweep stopped before every trial ran; ``rnnbench sweep --resume NAME`` continues it."""

    def __init__(self, name: str, sweeps_dir: str) -> None:
        self.name = name
        flag = "" if sweeps_dir == SweepSettings.sweeps_dir else f" --sweeps-dir {sweeps_dir}"
        self.resume_command = f"rnnbench sweep --resume {name}{flag}"
        super().__init__(f"sweep {name!r} interrupted; continue it with: {self.resume_command}")


# --- progress -------------------------------------------------------------------------------------


@dataclass
class CellProgress:
    trials: int
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    running: int = 0
    best: float | None = None
    durations: list[float] = field(default_factory=list)

    @property
    def finished(self) -> int:
        return sum(self.counts.values())


@dataclass
class SweepProgress:
    """Live counts per cell, updated by the driver's Tune callback."""

    name: str
    metric: str
    mode: str
    cells: dict[str, CellProgress]
    concurrency: int = 1
    started: float = field(default_factory=time.monotonic)
    listeners: list[Callable[[SweepProgress], None]] = field(default_factory=list)

    def update(self) -> None:
        for listener in self.listeners:
            listener(self)

    def record_best(self, cell: str, value: float | None) -> None:
        if value is None:
            return
        progress = self.cells[cell]
        better = progress.best is None or (
            value < progress.best if self.mode == "min" else value > progress.best
        )
        if better:
            progress.best = value

    def eta_seconds(self) -> float | None:
        durations = [d for c in self.cells.values() for d in c.durations]
        if not durations:
            return None
        left = sum(max(c.trials - c.finished, 0) for c in self.cells.values())
        return left * (sum(durations) / len(durations)) / max(self.concurrency, 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "elapsed_seconds": round(time.monotonic() - self.started, 1),
            "eta_seconds": self.eta_seconds(),
            "cells": {
                cell: {**p.counts, "running": p.running, "trials": p.trials, f"best_{self.metric}": p.best}
                for cell, p in self.cells.items()
            },
        }

    def render(self) -> Any:
        from rich.table import Table

        elapsed = time.monotonic() - self.started
        eta = self.eta_seconds()
        title = f"sweep {self.name}: {elapsed:.0f} s elapsed" + (f", about {eta:.0f} s left" if eta else "")
        table = Table(title=title)
        for column in (
            "cell",
            "done",
            "running",
            "completed",
            "pruned",
            "diverged",
            "failed",
            f"best {self.metric}",
        ):
            table.add_column(column, justify="left" if column == "cell" else "right")
        for cell, p in self.cells.items():
            table.add_row(
                cell, f"{p.finished}/{p.trials}", str(p.running),
                *(str(p.counts[s]) for s in STATUSES),
                "-" if p.best is None else f"{p.best:.4g}",
            )  # fmt: skip
        return table


# --- the driver's Tune callback: MLflow records and progress ------------------------------------------


def _trial_error(trial: Any) -> str:
    try:
        error = trial.get_error()
        if error is not None:
            return f"{type(error).__name__}: {error}"[:5000]
    except Exception:  # reading an error must never break the sweep
        pass
    path = getattr(trial, "error_file", None)
    if path and Path(path).is_file():
        return Path(path).read_text()[-5000:]
    return "unknown error"


def _make_callback(**kwargs: Any) -> Any:
    from ray import tune

    class TrialRecorder(tune.Callback):
        """Writes one nested MLflow run per trial, from the driver only, and keeps the progress."""

        def __init__(self, client: Any, experiment_id: str, parent_run_id: str, sweep: str, cell: str,
                     task: str, search: Any, fixed_params: dict[str, Any], tags: dict[str, str],
                     progress: SweepProgress, resuming: bool) -> None:  # fmt: skip
            self.client, self.experiment_id, self.parent = client, experiment_id, parent_run_id
            self.sweep, self.cell, self.task, self.search = sweep, cell, task, search
            self.fixed_params, self.tags, self.progress = fixed_params, tags, progress
            self.resuming = resuming
            self.runs: dict[str, str] = {}
            self.started: dict[str, float] = {}
            self.attempts: dict[str, int] = {}
            self.finished: set[str] = set()
            self.plots: list[Any] = []
            self.plot_pool: Any = None
            self.errors: list[str] = []  # tracking writes that failed; the sweep stops on the first

        def __getstate__(self) -> dict[str, Any]:
            # Tune pickles its callbacks with the experiment; the client and the live display stay here.
            skip = ("client", "progress", "search", "plots", "plot_pool")
            return {k: v for k, v in self.__dict__.items() if k not in skip}

        def _guard(self, hook: str, trial: Any, body: Callable[[], None]) -> bool:
            """Run a tracking write; a failure must not break Tune's trial handling. The trial is then
            left untold to Optuna (it reruns on ``--resume``) and the sweep stops cleanly."""
            try:
                body()
                return True
            except Exception as exc:
                from rnnbench.tracking import root_cause

                self.errors.append(f"{hook} of trial {trial.trial_id}: {root_cause(exc)}")
                self.search.leave_untold(trial.trial_id)
                return False

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            if trial.trial_id in self.finished:  # rerun after its result was recorded: keep the record
                return
            self.progress.cells[self.cell].running += 1
            self.started[trial.trial_id] = time.monotonic()
            self.progress.update()
            self._guard("on_trial_start", trial, lambda: self._start(trial))

        def _start(self, trial: Any) -> None:
            from mlflow.entities import Param, RunTag

            if trial.trial_id in self.runs:  # a retry after a worker died: the same run, one more attempt
                self.attempts[trial.trial_id] = self.attempts.get(trial.trial_id, 1) + 1
                tags = [RunTag("attempts", str(self.attempts[trial.trial_id])), RunTag("status", "running")]
                self.client.log_batch(self.runs[trial.trial_id], tags=tags)
                return
            number = self.search.optuna_number(trial.trial_id)
            # Left by a killed or interrupted driver (only a resumed sweep has them): the trial reruns.
            for status in ("RUNNING", "KILLED") if self.resuming else ():
                for stale in _runs(self.client, self.experiment_id, self.sweep, self.cell, number, status):
                    self.client.delete_run(stale.info.run_id)
            tags = {
                **self.tags,
                "mlflow.parentRunId": self.parent,
                "sweep": self.sweep,
                "cell": self.cell,
                "task": self.task,
                "optuna_trial": str(number),
                "tune_trial_id": trial.trial_id,
                "status": "running",
                "attempts": "1",
                "mlflow.note.content": f"{self.cell} on {self.task}: trial {number} of sweep {self.sweep}",
            }
            run = self.client.create_run(self.experiment_id, tags=tags, run_name=f"{self.cell}-t{number}")
            self.runs[trial.trial_id] = run.info.run_id
            sampled = {k: ("none" if v is None else v) for k, v in trial.config.items()}
            params = {**self.fixed_params, **sampled}
            self.client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])

        def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            from mlflow.entities import RunTag

            # The worker died and Ray will run the trial again (FailureConfig): it is not running now.
            if trial.trial_id in self.finished:
                return
            self._not_running()
            run_id = self.runs.get(trial.trial_id)
            if run_id is not None:
                tags = [RunTag("status", "retrying"), RunTag("last_worker_error", _trial_error(trial))]
                self._guard("on_trial_recover", trial, lambda: self.client.log_batch(run_id, tags=tags))

        def on_trial_result(
            self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
        ) -> None:
            from mlflow.entities import Metric

            if trial.trial_id in self.finished:
                return
            if result.get("final"):
                # Recorded here, before Tune tells the searcher: a trial whose record fails stays untold.
                self._finish(trial, result["status"], result, error=result.get("error"))
                return
            run_id = self.runs.get(trial.trial_id)
            if run_id is None:
                if result.get("done"):
                    self._finish(trial, "pruned", result)
                return
            now = int(time.time() * 1000)
            step = int(result["epoch"])
            metrics = [
                Metric(k, float(result[k]), now, step)
                for k in ("train_loss", "val_loss", "val_accuracy", "epoch_seconds")
                if k in result
            ]
            if self._guard("on_trial_result", trial, lambda: self.client.log_batch(run_id, metrics=metrics)):
                if result.get(
                    "done"
                ):  # the scheduler stopped it: Tune sets done before it tells the searcher
                    self._finish(trial, "pruned", result)

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            # Completed and pruned trials were recorded from their last result; this catches the rest.
            if trial.trial_id in self.finished:
                return
            if self.errors:  # stopped because the store failed: neither pruned nor told; resume reruns it
                self.search.leave_untold(trial.trial_id)
                self._not_running()
                return
            self._finish(trial, "pruned", trial.last_result or {})

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            # Reached only when a worker died more often than FailureConfig allows.
            error = f"worker failed {self.attempts.get(trial.trial_id, 1)} time(s): {_trial_error(trial)}"
            if trial.trial_id not in self.finished:
                self._finish(trial, "failed", trial.last_result or {}, error=error)

        def _not_running(self) -> None:
            progress = self.progress.cells[self.cell]
            progress.running = max(progress.running - 1, 0)
            self.progress.update()

        def _finish(self, trial: Any, status: str, result: dict, error: str | None = None) -> None:
            self.finished.add(trial.trial_id)
            run_id = self.runs.get(trial.trial_id)
            if run_id is None:  # its run could not be created: the store is failing
                self.search.leave_untold(trial.trial_id)
                self._not_running()
                return
            written = self._guard(
                "recording the result", trial, lambda: self._write_final(trial, run_id, status, result, error)
            )
            if written:
                # Told now, not when Tune gets to it: a sweep stopped in between must not rerun it.
                self.search.record_written(trial.trial_id, None if status == "failed" and error else result)
                progress = self.progress.cells[self.cell]
                progress.counts[status] += 1
                progress.durations.append(
                    time.monotonic() - self.started.get(trial.trial_id, time.monotonic())
                )
                if status == "completed":
                    self.progress.record_best(self.cell, result.get(self.progress.metric))
            self._not_running()

        def _write_final(self, trial: Any, run_id: str, status: str, result: dict, error: str | None) -> None:
            import tempfile

            from mlflow.entities import Metric, RunTag

            from rnnbench.lrd import Bucket, LRDResult
            from rnnbench.tracking import write_lrd_table

            now = int(time.time() * 1000)
            tags = [RunTag("status", status)]
            for key in ("gpu_ids", "cuda_visible_devices", "node_ip", "node_id", "device"):
                if key in result:
                    tags.append(RunTag(key, str(result[key])))
            if error:
                tags.append(RunTag("error", error[-5000:]))
            distributions = self.search.distributions(trial.trial_id)
            if distributions:  # lets the leaderboard rebuild the study (fANOVA) from MLflow alone
                tags.append(RunTag("optuna_distributions", distributions))
            metrics = []
            if result.get("final"):
                step = int(result.get("epochs_run", 0))
                finals = ("best_val_loss", "best_val_accuracy", "test_loss", "test_accuracy", "baseline_loss",
                          "lrd_score", "lrd_horizon", "param_count", "train_seconds", "steps_per_second",
                          "epochs_run", "best_epoch", "diverged_step")  # fmt: skip
                metrics = [Metric(k, float(result[k]), now, step) for k in finals if k in result]
                if result.get("diverged_step") is not None:
                    tags.append(RunTag("diverged_step", str(int(result["diverged_step"]))))
            elif status == "pruned" and "epoch" in result:
                metrics = [Metric("pruned_at_epoch", float(result["epoch"]), now, int(result["epoch"]))]
            self.client.log_batch(run_id, metrics=metrics, tags=tags)
            rows = json.loads(result.get("lrd_curve") or "[]")
            if rows:
                lrd = LRDResult(
                    score=float(result["lrd_score"]),
                    horizon=int(result["lrd_horizon"]),
                    buckets=tuple(Bucket(**row) for row in rows),
                )
                with tempfile.TemporaryDirectory() as folder:
                    self.client.log_artifact(run_id, str(write_lrd_table(lrd, Path(folder))))
                title = f"{self.cell} on {self.task}, trial {self.search.optuna_number(trial.trial_id)}"
                # The plot takes longer than the whole record: drawn off Tune's event loop.
                self.plots.append(self._plotter().submit(self._plot, run_id, lrd, title))
            self.client.set_terminated(run_id, "FAILED" if status == "failed" else "FINISHED")

        def _plotter(self) -> Any:
            if self.plot_pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self.plot_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rnnbench-plots")
            return self.plot_pool

        def _plot(self, run_id: str, lrd: Any, title: str) -> None:
            import tempfile

            from rnnbench.tracking import write_lrd_plot

            with tempfile.TemporaryDirectory() as folder:
                self.client.log_artifact(run_id, str(write_lrd_plot(lrd, Path(folder), title)))

        def wait_for_plots(self) -> list[str]:
            """Wait for the LRD plots still being drawn; returns the failures (a plot is not a result)."""
            failures = []
            for future in self.plots:
                try:
                    future.result()
                except Exception as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
            self.plots.clear()
            if self.plot_pool is not None:
                self.plot_pool.shutdown(wait=True)
                self.plot_pool = None
            return failures

    return TrialRecorder(**kwargs)


def _make_stopper(recorder: Any) -> Any:
    from ray import tune

    class StopOnTrackingError(tune.Stopper):
        """Ends the sweep once the recorder could not write a record (a full disk, a store gone)."""

        def __call__(self, trial_id: str, result: dict) -> bool:
            return False

        def stop_all(self) -> bool:
            return bool(recorder.errors)

    return StopOnTrackingError()


def _runs(client: Any, experiment_id: str, sweep: str, cell: str | None = None, number: int | None = None,
          status: str | None = None) -> list[Any]:  # fmt: skip
    query = [f"tags.sweep = '{sweep}'", "tags.optuna_trial != ''"]
    if cell is not None:
        query.append(f"tags.cell = '{cell}'")
    if number is not None:
        query.append(f"tags.optuna_trial = '{number}'")
    if status is not None:
        query.append(f"attributes.status = '{status}'")
    return list(client.search_runs([experiment_id], " and ".join(query), max_results=50_000))


# --- set-up checks ------------------------------------------------------------------------------------


def check_address(address: str) -> None:
    """Fail fast, naming the address, when no Ray head answers there (ray.init would wait)."""
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise SweepError(f"Ray address {address!r} must look like HOST:PORT (or ray://HOST:PORT)")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            return
    except OSError as exc:
        raise SweepError(
            f"Ray address {address}: no Ray head answers there ({exc}); start one with `ray start --head`"
        ) from None


def check_resources(settings: SweepSettings) -> float:
    """The GPUs per trial to use; fails before any trial when no node can give a trial its share."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    max_cpu = max((n.get("CPU", 0) for n in nodes), default=0)
    max_gpu = max((n.get("GPU", 0) for n in nodes), default=0)
    total_gpu = sum(n.get("GPU", 0) for n in nodes)
    gpus = settings.gpus_per_trial if settings.gpus_per_trial is not None else (1.0 if total_gpu else 0.0)
    if settings.cpus_per_trial > max_cpu:
        raise SweepError(
            f"cpus_per_trial {settings.cpus_per_trial} is more than any node of the Ray cluster has "
            f"(largest: {max_cpu:g} CPUs)"
        )
    if gpus > max_gpu:
        have = f"the largest node has {max_gpu:g}" if max_gpu else "the cluster has no GPU"
        raise SweepError(f"gpus_per_trial {gpus:g} cannot be given: {have}; use --gpus-per-trial 0 for CPUs")
    return float(gpus)


def _connect(settings: SweepSettings) -> bool:
    """Start Ray locally or join ``address``; returns True when this call started the session."""
    import ray

    if ray.is_initialized():
        return False
    if settings.address:
        check_address(settings.address)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # On Ctrl-C Tune suggests Tuner.restore(...); rnnbench prints its own resume command instead.
    logging.getLogger("ray.tune.tune").addFilter(lambda record: "Tuner.restore" not in record.getMessage())
    ray.init(
        # "local" starts a new Ray here; without it ray.init joins any cluster already running on the host.
        address=settings.address or "local",
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
        configure_logging=True,
    )
    return True


# --- the sweep ---------------------------------------------------------------------------------------


@dataclass
class SweepResult:
    name: str
    folder: Path
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    best: dict[str, dict[str, Any]]
    counts: dict[str, dict[str, int]]
    optuna_counts: dict[str, int]


def sweep_folder(settings: SweepSettings) -> Path:
    assert settings.name
    return Path(settings.sweeps_dir) / settings.name


def load_state(name: str, sweeps_dir: str) -> dict[str, Any]:
    path = Path(sweeps_dir) / name / STATE_FILE
    if not path.is_file():
        known = sorted(p.name for p in Path(sweeps_dir).glob("*") if (p / STATE_FILE).is_file())
        raise SweepError(
            f"no sweep named {name!r} in {sweeps_dir}/ to resume; sweeps there: {', '.join(known) or '(none)'}"
        )
    return json.loads(path.read_text())


def prepare(settings: SweepSettings) -> tuple[Any, Any, dict[str, Any]]:
    """Check everything that needs no cluster: plugins, task options and data, space overrides, store.

    Returns the space spec, the task and the fixed training values.
    """
    import rnnbench
    from rnnbench.plugins import plugin_infos
    from rnnbench.search_spaces.overrides import check_overrides
    from rnnbench.tracking import check_tracking_uri, resolve_tracking_uri

    validate(settings)
    for cell in settings.cells:
        rnnbench.get_cell(cell)
    space = rnnbench.get_search_space(settings.space)
    check_overrides(space, settings.space_overrides, "sweep settings")
    options = dict(settings.task_options)
    if settings.length is not None:
        options["length"] = settings.length
    task = rnnbench.get_task(settings.task).build(**options)
    task.load(seed=int(settings.train.get("data_seed", 0)), cache_dir=settings.cache_dir)  # cache for workers
    for cell in settings.cells:  # a broken cell fails here, naming its plugin, before any trial time
        rnnbench.get_cell(cell).preflight(task.input_size)
    from rnnbench.training import TrainConfig

    probe = TrainConfig(cell=settings.cells[0], task=settings.task, **settings.train)
    try:
        probe.validate()
    except RnnbenchError as exc:
        raise SweepConfigError(f"sweep settings, table 'train': {exc}") from None
    settings.tracking_uri = resolve_tracking_uri(settings.tracking_uri)
    check_tracking_uri(settings.tracking_uri)
    infos = {info.name: info for info in plugin_infos()}
    fixed = {
        "task": settings.task,
        "epochs": settings.epochs,
        "seed": settings.seed,
        "cpus_per_trial": settings.cpus_per_trial,
        "task_options": options,
        "cache_dir": str(Path(settings.cache_dir).resolve()) if settings.cache_dir else None,
        "train": dict(settings.train),
        "plugin_paths": [i.location for i in infos.values() if i.source == "file"],
        "plugins": {c: rnnbench.get_cell(c).plugin for c in settings.cells},
        "versions": {c: infos[rnnbench.get_cell(c).plugin].version for c in settings.cells},
    }
    return space, task, fixed


def run_sweep(
    settings: SweepSettings,
    resume: bool = False,
    listener: Callable[[SweepProgress], None] | None = None,
) -> SweepResult:
    """Run (or resume) a sweep to exactly ``trials`` finished trials per cell."""
    import optuna
    import ray
    from mlflow.tracking import MlflowClient
    from ray import tune

    import rnnbench
    from rnnbench.search_spaces.overrides import apply_overrides
    from rnnbench.sweep_search import FINISHED, SweepSearch, journal_storage
    from rnnbench.tracking import RunRecorder, TrackingError

    if settings.name is None:
        settings.name = f"{settings.task}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder = sweep_folder(settings)
    if (folder / STATE_FILE).is_file() and not resume:
        raise SweepError(
            f"a sweep named {settings.name!r} exists in {folder}; continue it with "
            f"`rnnbench sweep --resume {settings.name}` or choose another --name"
        )
    space, task, fixed = prepare(settings)
    state = load_state(settings.name, settings.sweeps_dir) if resume else {}
    recorder = RunRecorder(settings.tracking_uri, settings.experiment)
    client: MlflowClient = recorder.client
    started_ray = _connect(settings)
    try:
        gpus = check_resources(settings)
        folder.mkdir(parents=True, exist_ok=True)
        if resume:
            parent_run_id = state["parent_run_id"]
            client.update_run(parent_run_id, status="RUNNING")
        else:
            parent_run_id = recorder.start(
                settings.name,
                {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in settings.as_dict().items()}
                | {"gpus_per_trial": gpus},
                {"sweep": settings.name, "kind": "sweep", "task": settings.task, "space": settings.space,
                 "rnnbench_version": rnnbench.__version__, "task_data_version": task.data_version},
                description=f"rnnbench sweep of {', '.join(settings.cells)} on {settings.task}",
            )  # fmt: skip
        state = {"name": settings.name, "settings": settings.as_dict(), "parent_run_id": parent_run_id,
                 "experiment_id": recorder.experiment_id, "gpus_per_trial": gpus}  # fmt: skip
        (folder / STATE_FILE).write_text(json.dumps(state, indent=2, default=str))

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = journal_storage(str((folder / JOURNAL_FILE).resolve()))
        cpus_total = ray.cluster_resources().get("CPU", 1)
        concurrency = settings.max_concurrent or max(1, int(cpus_total // settings.cpus_per_trial))
        progress = SweepProgress(
            settings.name, settings.metric, settings.mode,
            {c: CellProgress(settings.trials) for c in settings.cells}, concurrency=concurrency,
        )  # fmt: skip
        if listener is not None:
            progress.listeners.append(listener)
        for cell in settings.cells:
            study_name = f"{settings.name}:{cell}"
            finished = _finished_trials(storage, study_name, FINISHED)
            _seed_progress(progress.cells[cell], client, recorder.experiment_id, settings.name, cell)
            remaining = settings.trials - len(finished)
            progress.update()
            if remaining <= 0:
                continue
            search = SweepSearch(
                space=apply_overrides(space, settings.space_overrides),
                metric=settings.metric,
                mode=settings.mode,
                sampler=_sampler(settings),
                study_name=study_name,
                storage=storage,
            )
            scheduler = _scheduler(settings)
            cell_fixed = {**fixed, "cell": cell}
            fixed_params = {
                "cell": cell, "task": settings.task, "space": settings.space, "seed": settings.seed,
                "metric": settings.metric,
                "epochs": settings.epochs, "length": fixed["task_options"].get("length"), "plugin": fixed["plugins"][cell],
                "plugin_version": fixed["versions"][cell] or "unknown", "cpus_per_trial": settings.cpus_per_trial,
                "gpus_per_trial": gpus, **{f"task.{k}": v for k, v in fixed["task_options"].items()},
                **fixed["train"],
            }  # fmt: skip
            callback = _make_callback(
                client=client, experiment_id=recorder.experiment_id, parent_run_id=parent_run_id,
                sweep=settings.name, cell=cell, task=settings.task, search=search,
                fixed_params={k: v for k, v in fixed_params.items() if v is not None},
                tags={"rnnbench_version": rnnbench.__version__, "task_data_version": task.data_version},
                progress=progress, resuming=resume,
            )  # fmt: skip
            trainable = tune.with_resources(
                tune.with_parameters(_trial_entry, fixed=cell_fixed),
                {"cpu": settings.cpus_per_trial, "gpu": gpus},
            )
            attempt = len(list((folder / "ray").glob(f"{cell}-*"))) if (folder / "ray").is_dir() else 0
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    metric=settings.metric, mode=settings.mode, search_alg=search, scheduler=scheduler,
                    num_samples=remaining, max_concurrent_trials=concurrency, reuse_actors=True,
                ),
                run_config=tune.RunConfig(
                    name=f"{cell}-{attempt}", storage_path=str((folder / "ray").resolve()), callbacks=[callback],
                    verbose=0, failure_config=tune.FailureConfig(max_failures=settings.max_failures),
                    stop=_make_stopper(callback),
                ),
            )  # fmt: skip
            try:
                tuner.fit()
            finally:
                for failure in callback.wait_for_plots():
                    logging.getLogger("rnnbench").warning("warning: an LRD plot was not saved: %s", failure)
            if callback.errors:
                with contextlib.suppress(Exception):  # the store may refuse this write too
                    _mark_interrupted(client, recorder.experiment_id, settings.name, parent_run_id)
                resume_command = SweepInterrupted(settings.name, settings.sweeps_dir).resume_command
                raise TrackingError(
                    f"sweep {settings.name!r} stopped: the tracking store {settings.tracking_uri} could not be "
                    f"written ({callback.errors[0]}). Finished trials are kept in {folder / JOURNAL_FILE}; "
                    f"fix the store, then continue with: {resume_command}"
                )
            if len(_finished_trials(storage, study_name, FINISHED)) < settings.trials:
                _mark_interrupted(client, recorder.experiment_id, settings.name, parent_run_id)
                raise SweepInterrupted(settings.name, settings.sweeps_dir)
        best, counts = summarize(client, recorder.experiment_id, settings)
        _log_summary(client, parent_run_id, best)
        client.set_terminated(parent_run_id, "FINISHED")
        optuna_counts = {
            c: len(_finished_trials(storage, f"{settings.name}:{c}", FINISHED)) for c in settings.cells
        }
        return SweepResult(settings.name, folder, settings.tracking_uri, recorder.experiment_id, parent_run_id,
                           best, counts, optuna_counts)  # fmt: skip
    except KeyboardInterrupt:
        _mark_interrupted(client, recorder.experiment_id, settings.name, locals().get("parent_run_id"))
        raise SweepInterrupted(settings.name, settings.sweeps_dir) from None
    finally:
        if started_ray:
            ray.shutdown()


def _mark_interrupted(client: Any, experiment_id: str, sweep: str, parent_run_id: str | None) -> None:
    """Trial runs cut short by Ctrl-C are KILLED (``--resume`` replaces them); so is the sweep's run."""
    from mlflow.entities import RunTag

    for run in _runs(client, experiment_id, sweep, status="RUNNING"):
        client.log_batch(run.info.run_id, tags=[RunTag("status", "interrupted")])
        client.set_terminated(run.info.run_id, "KILLED")
    if parent_run_id:
        client.set_terminated(parent_run_id, "KILLED")


def _sampler(settings: SweepSettings) -> Any:
    import optuna

    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=settings.seed)
    return optuna.samplers.TPESampler(seed=settings.seed, n_startup_trials=settings.tpe_startup_trials)


def _scheduler(settings: SweepSettings) -> Any:
    """ASHA on the epoch reports, with rungs only before the last epoch: a trial that trained all its
    epochs is never stopped before its final (test) report. No rung at all (no pruning) when
    ``grace_period >= epochs``."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

    if settings.grace_period >= settings.epochs:
        return FIFOScheduler()

    class EpochASHA(ASHAScheduler):
        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            if result.get("final") or result.get("training_iteration", 0) >= settings.epochs:
                return TrialScheduler.CONTINUE
            return super().on_trial_result(tune_controller, trial, result)

    return EpochASHA(
        time_attr="training_iteration",
        max_t=settings.epochs,
        grace_period=settings.grace_period,
        reduction_factor=settings.reduction_factor,
    )


def _trial_entry(config: dict[str, Any], fixed: dict[str, Any]) -> None:
    from rnnbench.plugins import load_plugins
    from rnnbench.trainable import run_trial

    load_plugins(fixed.get("plugin_paths", []))
    run_trial(config, fixed)


def _finished_trials(storage: Any, study_name: str, states: tuple) -> list[Any]:
    import optuna

    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:  # not created yet
        return []
    return [t for t in study.get_trials(deepcopy=False) if t.state in states]


def _seed_progress(progress: CellProgress, client: Any, experiment_id: str, sweep: str, cell: str) -> None:
    """Counts of trials a previous (interrupted) run of this sweep finished."""
    for run in _runs(client, experiment_id, sweep, cell):
        status = run.data.tags.get("status")
        if status in progress.counts:
            progress.counts[status] += 1


def summarize(
    client: Any, experiment_id: str, settings: SweepSettings
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, int]]]:
    """Best completed trial per cell (chosen on validation, reported on test), and status counts, from MLflow."""
    best: dict[str, dict[str, Any]] = {}
    counts: dict[str, dict[str, int]] = {}
    key = "best_val_loss" if settings.mode == "min" else "best_val_accuracy"
    for cell in settings.cells:
        runs = _runs(client, experiment_id, settings.name or "", cell)
        counts[cell] = {s: sum(1 for r in runs if r.data.tags.get("status") == s) for s in STATUSES}
        done = [r for r in runs if r.data.tags.get("status") == "completed" and key in r.data.metrics]
        if not done:
            continue
        pick = (min if settings.mode == "min" else max)(done, key=lambda r: r.data.metrics[key])
        m, p = pick.data.metrics, pick.data.params
        best[cell] = {
            "run_id": pick.info.run_id,
            "optuna_trial": int(pick.data.tags.get("optuna_trial", -1)),
            key: m[key],
            "test_accuracy": m.get("test_accuracy"),
            "lrd_score": m.get("lrd_score"),
            "lrd_horizon": m.get("lrd_horizon"),
            "param_count": m.get("param_count"),
            "config": {
                k: p.get(k) for k in ("depth", "width", "clip", "lr", "momentum", "input_noise") if k in p
            },
        }
    return best, counts


def _log_summary(client: Any, parent_run_id: str, best: dict[str, dict[str, Any]]) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [
        Metric(f"best_{cell}_{k}", float(v), now, 0)
        for cell, row in best.items()
        for k, v in row.items()
        if k in ("test_accuracy", "lrd_score", "lrd_horizon") and v is not None
    ]
    if metrics:
        client.log_batch(parent_run_id, metrics=metrics)
