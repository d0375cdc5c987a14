"""Each cell's best trial as an MLflow model, from the final checkpoint its worker left with Ray Tune."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from ray import tune

from rnnbench.tracking.models import MODEL_URI_TAG, log_model, log_model_files
from rnnbench.tracking.store import Store
from rnnbench.training.recipe import checkpoint_kind, is_final, read_final_checkpoint

log = logging.getLogger("rnnbench")


def final_checkpoint_of(folder: Path, tune_trial_id: str) -> Path | None:
    """The trial's final checkpoint (a folder) under the sweep's Ray folder, if it is there."""
    found = sorted(p for p in (folder / "ray").glob(f"*/*_{tune_trial_id}_*/checkpoint_*") if is_final(p))
    return found[-1] if found else None


def drop_unfinished_checkpoints(tuner_dir: Path, pattern: str = "*/checkpoint_*") -> None:
    """Remove the epoch checkpoints of trials that ended without a final one (pruned, failed, or cut
    short by Ctrl-C): once Tune is done with them no trial resumes from them (``--resume`` reruns an
    unfinished trial afresh), and each holds 4x its model's size (weights, Adam's moments, the best)."""
    for checkpoint in tuner_dir.glob(pattern):
        if checkpoint.is_dir() and not is_final(checkpoint):
            shutil.rmtree(checkpoint, ignore_errors=True)


class CheckpointDropper(tune.Callback):
    """Keeps one checkpoint per trial, its newest, and drops a trial's epoch checkpoint as soon as the
    trial ends without a final one, not when the sweep ends: all of a sweep's cells share one Tune run,
    and a Greff-sized sweep prunes hundreds of trials.

    Tune calls these hooks only for a trial that will not run again (a worker that died and is retried
    goes through ``on_trial_recover``, and resumes from its checkpoint); a pruned trial's last
    checkpoint was written before the result that stopped it reached the driver."""

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
        """Keep only the trial's newest epoch checkpoint: Tune's ``num_to_keep=1`` would do it too, but it
        then rewrites its whole experiment state (every trial's) at every checkpoint, which rnnbench never
        reads (``--resume`` reruns unfinished trials in a new Tune run)."""
        if trial.path:
            newest = Path(checkpoint.path).name
            for older in Path(trial.path).glob("checkpoint_*"):
                if older.name != newest and older.is_dir():
                    shutil.rmtree(older, ignore_errors=True)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._drop(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._drop(trial)

    @staticmethod
    def _drop(trial: Any) -> None:
        if trial.path:
            drop_unfinished_checkpoints(Path(trial.path), "checkpoint_*")


def _log_checkpoint(store: Store, run_id: str, checkpoint: Path) -> str:
    if checkpoint_kind(checkpoint) == "files":
        return log_model_files(store, run_id, checkpoint)  # no torch in the driver
    # The one file of a sweep from before the model's files were kept, or of a worker that could not write them
    return log_model(store, run_id, *read_final_checkpoint(checkpoint))


def log_best_models(store: Store, folder: Path, best: dict[str, dict[str, Any]]) -> None:
    """Log each cell's best run's weights as its MLflow model (once: a resumed sweep keeps the model it
    logged), and put the model's URI in the cell's summary row."""
    for cell, row in best.items():
        run = store.client.get_run(row["run_id"])
        uri = run.data.tags.get(MODEL_URI_TAG)
        if uri is None:
            checkpoint = final_checkpoint_of(folder, run.data.tags.get("tune_trial_id", "?"))
            if checkpoint is None:  # a sweep from before checkpoints, or its ray/ folder was removed
                log.warning("warning: no checkpoint of %s's best trial (run %s): no model logged", cell,
                            row["run_id"])  # fmt: skip
                continue
            try:
                uri = _log_checkpoint(store, row["run_id"], checkpoint)
            # One model that cannot be logged leaves the others, and the summary, to come.
            except Exception as exc:
                log.warning("warning: %s's best model (run %s) was not logged: %s: %s", cell, row["run_id"],
                            type(exc).__name__, exc)  # fmt: skip
                continue
        row[MODEL_URI_TAG] = uri
