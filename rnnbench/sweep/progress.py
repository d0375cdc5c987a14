"""Live progress of a sweep: counts per cell and status, the best value so far, an ETA, a rich table."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rnnbench.training.metrics import STATUSES, is_better


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
        if is_better(value, progress.best, self.mode):
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
        for column in ("cell", "done", "running", *STATUSES, f"best {self.metric}"):
            table.add_column(column, justify="left" if column == "cell" else "right")
        for cell, p in self.cells.items():
            table.add_row(
                cell, f"{p.finished}/{p.trials}", str(p.running),
                *(str(p.counts[s]) for s in STATUSES),
                "-" if p.best is None else f"{p.best:.4g}",
            )  # fmt: skip
        return table
