"""Early stopping of a sweep's trials: ASHA on the epoch reports, never at or after the last epoch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

if TYPE_CHECKING:
    from rnnbench.sweep.settings import SweepSettings


class EpochASHA(ASHAScheduler):
    """ASHA with rungs only before the last epoch: a trial that trained all its epochs is never stopped
    before its final (test) report."""

    def __init__(self, epochs: int, **kwargs: Any) -> None:
        super().__init__(time_attr="training_iteration", max_t=epochs, **kwargs)
        self.epochs = epochs

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if result.get("final") or result.get("training_iteration", 0) >= self.epochs:
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)


def make_scheduler(settings: SweepSettings) -> TrialScheduler:
    """EpochASHA; no rung at all (FIFO, no pruning) when ``grace_period >= epochs``."""
    if settings.grace_period >= settings.epochs:
        return FIFOScheduler()
    return EpochASHA(
        settings.epochs, grace_period=settings.grace_period, reduction_factor=settings.reduction_factor
    )
