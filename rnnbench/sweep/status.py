"""What a sweep has done and what is left: finished trials per cell from its journal, re-seeded runs and the
median wall time of a trial from MLflow, and an estimate of the time left (``rnnbench status NAME``)."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

from rnnbench.sweep.state import JOURNAL_FILE, load_state, study_name, sweep_folder


@dataclass
class Learning:
    """A cell's median completed trial (by test accuracy) against chance: does this budget learn the task?"""

    accuracy: float
    chance: float | None
    learned: bool
    epochs_run: int
    epochs: int  # the cap

    def line(self) -> str:
        chance = "" if self.chance is None else f" (chance {self.chance:.3f})"
        if self.learned:
            return f"the median trial left chance: test accuracy {self.accuracy:.3f}{chance}"
        if self.epochs_run >= self.epochs:
            need = f"it ran all {self.epochs} epochs: raise `epochs` (and `grace_period`)"
        else:
            need = (f"it stopped early after {self.epochs_run} of {self.epochs} epochs: raise the learning rate's "
                    "range or the training data")  # fmt: skip
        return f"the median trial is at chance: test accuracy {self.accuracy:.3f}{chance}; {need}"


def learning(runs: list[Any], epochs: int) -> dict[str, Learning]:
    """Per cell, its median completed trial by test accuracy, tested against chance (binomial, 5 %)."""
    from rnnbench.analysis.stats import left_chance

    by_cell: dict[str, list[Any]] = {}
    for run in runs:
        if run.data.tags.get("status") == "completed" and "test_accuracy" in run.data.metrics:
            by_cell.setdefault(run.data.tags.get("cell", "?"), []).append(run)
    found = {}
    for cell, cell_runs in by_cell.items():
        median = sorted(cell_runs, key=lambda r: r.data.metrics["test_accuracy"])[(len(cell_runs) - 1) // 2]
        m = median.data.metrics
        found[cell] = Learning(m["test_accuracy"], m.get("chance"),
                               left_chance(m["test_accuracy"], int(m.get("test_count", 0)), m.get("chance")),
                               int(m.get("epochs_run", 0)), epochs)  # fmt: skip
    return found


@dataclass
class SweepStatus:
    name: str
    trials: int  # requested per cell
    finished: dict[str, int]  # per cell, from the Optuna journal
    reseeds: int  # requested per cell's best configuration
    reseeded: int  # re-seeded runs in the store
    median_seconds: float | None  # per finished trial run (wall time)
    concurrency: int
    cell_seconds: dict[str, float]  # the median per cell, where a cell has finished runs
    learning: dict[str, Learning]  # per cell with completed trials: its median trial against chance

    @property
    def runs_left(self) -> int:
        trials = sum(max(self.trials - n, 0) for n in self.finished.values())
        return trials + max(self.reseeds * len(self.finished) - self.reseeded, 0)

    @property
    def seconds_left(self) -> float | None:
        """Each cell's runs left at its own median (cells differ several-fold), else the sweep's."""
        if self.median_seconds is None:
            return None
        per_run = {c: self.cell_seconds.get(c, self.median_seconds) for c in self.finished}
        trials = sum(max(self.trials - n, 0) * per_run[c] for c, n in self.finished.items())
        reseeds = max(self.reseeds * len(self.finished) - self.reseeded, 0) * self.median_seconds
        return (trials + reseeds) / max(self.concurrency, 1)

    def lines(self) -> list[str]:
        cells = ", ".join(f"{cell} {n}/{self.trials}" for cell, n in self.finished.items())
        left = self.seconds_left
        estimate = "" if left is None else f", about {left / 60:.0f} min at {self.concurrency} at a time"
        reseeds = f"; reseeds {self.reseeded}/{self.reseeds * len(self.finished)}" if self.reseeds else ""
        each = "" if self.median_seconds is None else f"; {self.median_seconds:.0f} s per run (median)"
        lines = [
            f"sweep {self.name}: trials {cells}{reseeds}{each}",
            f"left: {self.runs_left} runs{estimate}",
        ]
        return lines + [f"{cell}: {found.line()}" for cell, found in self.learning.items()]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "runs_left": self.runs_left, "seconds_left": self.seconds_left}


def sweep_status(name: str, sweeps_dir: str) -> SweepStatus:
    """The status of sweep ``name`` (SweepError when there is none, or its state is broken)."""
    from rnnbench.sweep.search import finished_trials, journal_storage
    from rnnbench.tracking.run_search import search, trial_runs
    from rnnbench.tracking.store import open_client

    state = load_state(name, sweeps_dir)
    settings = state["settings"]
    journal = sweep_folder(sweeps_dir, name) / JOURNAL_FILE
    storage = journal_storage(str(journal.resolve())) if journal.is_file() else None
    cells = list(settings.get("cells", []))
    finished = {c: len(finished_trials(storage, study_name(name, c))) if storage else 0 for c in cells}
    client, experiment = open_client(settings["tracking_uri"]), state.get("experiment_id")
    runs = trial_runs(client, experiment, sweep=name) if experiment else []
    reseeded = search(client, [experiment], {"kind": "reseed", "sweep": name}) if experiment else []

    def wall(run: Any) -> float | None:
        return (
            (run.info.end_time - run.info.start_time) / 1000
            if run.info.end_time and run.info.start_time
            else None
        )

    seconds = [s for s in map(wall, [*runs, *reseeded]) if s is not None]
    by_cell: dict[str, list[float]] = {}
    for run in runs:
        if wall(run) is not None:
            by_cell.setdefault(run.data.tags.get("cell", "?"), []).append(wall(run))
    return SweepStatus(name=name, trials=int(settings.get("trials", 0)), finished=finished,
                       reseeds=int(settings.get("reseed") or 0), reseeded=len(reseeded),
                       median_seconds=statistics.median(seconds) if seconds else None,
                       concurrency=int(settings.get("max_concurrent") or 1),
                       cell_seconds={c: statistics.median(v) for c, v in by_cell.items()},
                       learning=learning(runs, int(settings.get("epochs", 0))))  # fmt: skip
