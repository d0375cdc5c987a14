"""One Tune run for all of a sweep's cells: a searcher and a scheduler that give each trial to its own
cell's.

Ray gives every actor a new worker process (about 4 s of CPU on a 2-core host to start and import
torch and Tune), and Tune reuses a trial's actor only within one run: with one run per cell, every cell
paid that again for each concurrent trial. In one run the actors carry over from cell to cell, while
each cell keeps its own Optuna study (``SweepSearch``) and its own rungs (ASHA never compares one
cell's trials with another's). Each trial's config names its cell under ``CELL``.
"""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher

CELL = "__cell__"  # the key of a trial's config that names its cell (no search space uses it)


def cell_of(config: dict[str, Any]) -> str:
    return config[CELL]


def sampled_values(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's sampled values, without the key that routes it."""
    return {k: v for k, v in config.items() if k != CELL}


class CellSearches(Searcher):
    """Hands out each cell's trials from its own searcher, cell after cell, ``budget[cell]`` of each."""

    def __init__(self, searches: dict[str, Searcher], budget: dict[str, int], metric: str, mode: str) -> None:
        super().__init__(metric=metric, mode=mode)
        self.searches, self.left = searches, dict(budget)
        self.cells: dict[str, str] = {}  # Tune trial id -> cell

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return all(s.set_search_properties(metric, mode, config, **spec) for s in self.searches.values())

    def suggest(self, trial_id: str) -> dict | None:
        for cell, search in self.searches.items():
            if self.left.get(cell, 0) <= 0:
                continue
            config = search.suggest(trial_id)
            if config is None:  # the cell's searcher waits (none of rnnbench's does)
                return None
            if config == Searcher.FINISHED:
                self.left[cell] = 0
                continue
            self.left[cell] -= 1
            self.cells[trial_id] = cell
            return {**config, CELL: cell}
        return Searcher.FINISHED

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self.cells:
            self.searches[self.cells[trial_id]].on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self.cells:
            self.searches[self.cells[trial_id]].on_trial_complete(trial_id, result, error=error)

    # Each cell's study lives in the sweep's journal: nothing to checkpoint here either.
    def save(self, checkpoint_path: str) -> None:
        pass

    def restore(self, checkpoint_path: str) -> None:
        pass


class CellSchedulers(TrialScheduler):
    """Passes each trial to its own cell's scheduler, so that rungs never mix cells."""

    def __init__(self, schedulers: dict[str, TrialScheduler]) -> None:
        super().__init__()
        self.schedulers = schedulers

    def _of(self, trial: Any) -> TrialScheduler:
        return self.schedulers[cell_of(trial.config)]

    @property
    def supports_buffered_results(self) -> bool:
        return all(s.supports_buffered_results for s in self.schedulers.values())

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        self._metric, self._mode = metric, mode
        return all(s.set_search_properties(metric, mode, **spec) for s in self.schedulers.values())

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._of(trial).on_trial_add(tune_controller, trial)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self._of(trial).on_trial_error(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        return self._of(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        self._of(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self._of(trial).on_trial_remove(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        # Every cell's scheduler picks first come, first served among all pending trials (FIFO's rule,
        # which ASHA keeps): asking the first is asking any.
        return next(iter(self.schedulers.values())).choose_trial_to_run(tune_controller)

    def debug_string(self) -> str:
        return "; ".join(f"{cell}: {s.debug_string()}" for cell, s in self.schedulers.items())
