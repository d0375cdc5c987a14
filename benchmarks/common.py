"""Helpers the benchmarks share: running ``rnnbench sweep`` as a user would, and reading its MLflow record."""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def median(values: list[float]) -> float:
    return statistics.median(values)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def sweep_file_text(settings: dict[str, Any]) -> str:
    """A sweep file: scalars first, then the [task_options], [train] and [space_overrides] tables."""
    scalars = [f"{k} = {toml_value(v)}" for k, v in settings.items() if not isinstance(v, dict)]
    tables = [
        f"\n[{k}]\n" + "\n".join(f"{kk} = {toml_value(vv)}" for kk, vv in v.items())
        for k, v in settings.items()
        if isinstance(v, dict)
    ]
    return "\n".join(scalars) + "\n" + "\n".join(tables) + "\n"


def rnnbench_command() -> list[str]:
    """The installed console script beside this interpreter, else the same entry point through -c."""
    script = Path(sys.executable).parent / "rnnbench"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from rnnbench.cli import main; main()"]


def as_typed(command: list[str]) -> list[str]:
    """A command as a user types it, for a committed report: ``rnnbench``, and files by their names alone
    (the script's and the temporary folder's paths belong to the machine that ran it)."""
    rest = command[3:] if command[1:2] == ["-c"] else command[1:]
    return ["rnnbench", *(Path(a).name if os.path.isabs(a) else a for a in rest)]


@dataclass
class TrialRecord:
    run_id: str
    number: int
    start: float  # seconds since the epoch (MLflow's start_time, written when Tune starts the trial)
    end: float | None
    status: str | None
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)

    @property
    def span(self) -> float | None:
        return None if self.end is None else self.end - self.start


@dataclass
class SweepRecord:
    """One ``rnnbench sweep`` command: its wall-clock and what MLflow holds about its trials."""

    name: str
    command: list[str]
    started: float  # time.time() just before the command was launched
    ended: float
    returncode: int
    output: str
    parent_start: float | None
    trials: list[TrialRecord]

    @property
    def wall(self) -> float:
        return self.ended - self.started

    @property
    def first_trial_start(self) -> float | None:
        return min((t.start for t in self.trials), default=None)

    @property
    def last_trial_end(self) -> float | None:
        ends = [t.end for t in self.trials if t.end is not None]
        return max(ends, default=None)

    @property
    def startup(self) -> float | None:
        first = self.first_trial_start
        return None if first is None else first - self.started

    @property
    def window(self) -> float | None:
        """First trial start to last trial end."""
        first, last = self.first_trial_start, self.last_trial_end
        return None if first is None or last is None else last - first

    def gaps(self) -> list[float]:
        """Between one trial's end and the next trial's start (sequential sweeps)."""
        ordered = sorted(self.trials, key=lambda t: t.start)
        return [b.start - a.end for a, b in itertools.pairwise(ordered) if a.end is not None]


def run_cli_sweep(
    workdir: Path,
    name: str,
    settings: dict[str, Any],
    env: dict[str, str] | None = None,
    timeout: float = 1800,
) -> SweepRecord:
    """Write ``settings`` as a sweep file and run ``rnnbench sweep FILE --json`` in a fresh process.

    The MLflow store (sqlite), the sweep state and the data cache are inside ``workdir``.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    uri = tracking_uri(workdir)
    path = workdir / f"{name}.toml"
    path.write_text(
        sweep_file_text(
            {
                **settings,
                "name": name,
                "sweeps_dir": str(workdir / "sweeps"),
                "tracking_uri": uri,
                "cache_dir": str(workdir / "cache"),
            }
        )
    )
    command = [*rnnbench_command(), "sweep", str(path), "--json"]
    full_env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", **(env or {})}
    started = time.time()
    proc = subprocess.run(
        command, cwd=workdir, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )
    ended = time.time()
    output = (proc.stdout + "\n" + proc.stderr)[-4000:]
    if proc.returncode != 0:
        raise RuntimeError(f"rnnbench sweep {name} failed (exit {proc.returncode}):\n{output}")
    parent_start, trials = read_sweep(uri, name)
    return SweepRecord(name, command, started, ended, proc.returncode, output, parent_start, trials)


def tracking_uri(workdir: Path) -> str:
    return f"sqlite:///{(workdir / 'mlflow.db').resolve()}"


def read_sweep(
    uri: str, name: str, histories: tuple[str, ...] = ()
) -> tuple[float | None, list[TrialRecord]]:
    """The sweep's parent run start and its trial runs (with the final metrics and, for each metric in
    ``histories``, its per-epoch history as ``{metric}@history``: a list of (time, value))."""
    import logging

    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, f"tags.sweep = '{name}'", max_results=10_000)
    parent_start = None
    trials = []
    for run in runs:
        tags = run.data.tags
        if tags.get("kind") == "sweep":
            parent_start = run.info.start_time / 1000
            continue
        if not tags.get("optuna_trial"):
            continue
        metrics: dict[str, Any] = dict(run.data.metrics)
        for key in histories:
            history = client.get_metric_history(run.info.run_id, key)
            metrics[f"{key}@history"] = sorted((m.timestamp / 1000, m.value) for m in history)
        trials.append(
            TrialRecord(
                run_id=run.info.run_id,
                number=int(tags["optuna_trial"]),
                start=run.info.start_time / 1000,
                end=run.info.end_time / 1000 if run.info.end_time else None,
                status=tags.get("status"),
                metrics=metrics,
                params=dict(run.data.params),
            )
        )
    trials.sort(key=lambda t: t.start)
    return parent_start, trials


def gpus_per_trial(device: str, share: float = 0.5) -> float:
    """0 on CPU; a fractional GPU per trial on CUDA, so that trials pack onto one GPU."""
    return share if device == "cuda" else 0.0


def device_env(device: str) -> dict[str, str]:
    """On a CUDA machine asked to benchmark the CPU, hide the GPUs from the sweep's processes."""
    import torch

    if device == "cpu" and torch.cuda.is_available():
        return {"CUDA_VISIBLE_DEVICES": ""}
    return {}
