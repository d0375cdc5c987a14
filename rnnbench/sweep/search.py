"""The resumable searcher: Ray Tune's OptunaSearch over a study kept in a journal file, honest about
pruned, diverged and failed trials, and the Optuna sampler a sweep asks for."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

if TYPE_CHECKING:
    from rnnbench.sweep.settings import SweepSettings

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def journal_storage(path: str) -> optuna.storages.BaseStorage:
    """Optuna's journal file storage: safe for one writer, appends only, survives a killed driver."""
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(path))


def make_sampler(settings: SweepSettings, finished: int = 0) -> optuna.samplers.BaseSampler:
    """TPE (seeded, with the sweep's start-up trials) or, for a baseline, random search.

    ``finished``: trials the study already holds. A sampler re-created with the sweep's own seed for a
    resumed or grown study would draw its first random configurations again (the same 30 trials twice
    after growing 30 to 60); from the second run on, the seed also counts the finished trials."""
    seed = settings.seed if finished == 0 else (settings.seed * 1_000_003 + finished) % 2**32
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=settings.tpe_startup_trials)


def shared_configurations(space: Any, settings: SweepSettings) -> list[dict[str, Any]]:
    """The configurations every cell of a paired sweep trains, in order: drawn once per sweep by random
    search over the (overridden) space with the sweep's seed, so a grown sweep extends the same list."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=settings.seed))
    drawn = []
    for _ in range(settings.trials):
        trial = study.ask()
        space(trial)
        drawn.append(dict(trial.params))
        study.tell(trial, 0.0)
    return drawn


def enqueue_shared(search: SweepSearch, configurations: list[dict[str, Any]]) -> None:
    """Queue the configurations a cell's study has not had yet (a resumed sweep queues only the rest)."""
    study = search._ot_study
    assert study is not None
    had = len(study.get_trials(deepcopy=False))
    for params in configurations[had:]:
        study.enqueue_trial(params, skip_if_exists=False)


def finished_trials(storage: optuna.storages.BaseStorage, study_name: str) -> list[optuna.trial.FrozenTrial]:
    """The study's trials that are told (complete, pruned or failed); none if it does not exist yet."""
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        return []
    return [t for t in study.get_trials(deepcopy=False) if t.state in FINISHED]


class SweepSearch(OptunaSearch):
    """OptunaSearch over a persistent study.

    * Trials the study holds as RUNNING (their driver was killed) are handed out again first,
      with their sampled parameters, and told under their own trial number: a resumed sweep
      ends with exactly the requested number of trials.
    * A trial stopped by the scheduler (no final report) is told PRUNED; a diverged one FAIL;
      a completed one COMPLETE with its best validation metric.
    """

    _interrupted: list[int] | None = None  # set when the study is set up (inside OptunaSearch.__init__)
    # A trial is told only once rnnbench's MLflow record of it is written (record_written), so that
    # the study and the store agree whatever stops the sweep in between.
    _untold: set[str] | None = None
    _recorded: set[str] | None = None
    _pending: dict[str, tuple[dict | None, bool]] | None = None

    @property
    def _reported(self) -> dict[str, set[int]]:
        """The epochs each trial reported to Optuna (set lazily: Tune builds the searcher through its parent)."""
        if "_reported_steps" not in self.__dict__:
            self.__dict__["_reported_steps"] = {}
        return self.__dict__["_reported_steps"]

    def leave_untold(self, trial_id: str) -> None:
        """Never tell the study about this trial: it stays RUNNING there, and ``--resume`` reruns it
        (its MLflow record could not be written)."""
        self._untold = (self._untold or set()) | {trial_id}
        if self._pending:
            self._pending.pop(trial_id, None)

    def record_written(self, trial_id: str, result: dict | None) -> None:
        """The trial's record is in MLflow: tell the study now (``result`` None: it failed)."""
        self._recorded = (self._recorded or set()) | {trial_id}
        pending = (self._pending or {}).pop(trial_id, None)
        if pending is not None:
            self.on_trial_complete(trial_id, *pending)
        else:
            self.on_trial_complete(trial_id, result, error=result is None)

    def _setup_study(self, mode: Any) -> None:
        super()._setup_study(mode)
        assert self._ot_study is not None
        self._interrupted = [
            t._trial_id for t in self._ot_study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING
        ]

    def suggest(self, trial_id: str) -> dict | None:
        if self._interrupted and trial_id not in self._ot_trials:
            self._ot_trials[trial_id] = optuna.trial.Trial(self._ot_study, self._interrupted.pop(0))
        return super().suggest(trial_id)

    # The study lives in its journal file: nothing to checkpoint, and the storage holds locks
    # that do not pickle (Tune pickles the search algorithm with the experiment).
    def save(self, checkpoint_path: str) -> None:
        pass

    def restore(self, checkpoint_path: str) -> None:
        pass

    def __getstate__(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in self.__dict__.items()
            if k not in ("_storage", "_ot_study", "_ot_trials", "_sampler")
        }

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """One intermediate value per epoch, at the epoch as its step, as MLflow logs val_loss: the final
        report repeats the tested epoch (Tune's iteration E + 1), and a trial resumed from a checkpoint
        reports its epochs again; neither is reported twice."""
        if result.get("final") or "epoch" not in result or trial_id not in self._ot_trials:
            return
        step, reported = int(result["epoch"]), self._reported.setdefault(trial_id, set())
        if trial_id in self._completed_trials or step in reported:
            return
        reported.add(step)
        self._ot_trials[trial_id].report(result[self.metric], step)

    def optuna_number(self, trial_id: str) -> int | None:
        trial = self._ot_trials.get(trial_id)
        return None if trial is None else trial.number

    def distributions(self, trial_id: str) -> str | None:
        """The trial's Optuna parameter distributions as JSON ({name: distribution JSON})."""
        import json

        trial = self._ot_trials.get(trial_id)
        if trial is None:
            return None
        found = trial.distributions
        return json.dumps({k: optuna.distributions.distribution_to_json(v) for k, v in found.items()})

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        if self._untold and trial_id in self._untold:
            self._completed_trials.add(trial_id)
            return
        if not self._recorded or trial_id not in self._recorded:  # Tune got here first: wait for the record
            self._pending = self._pending or {}
            self._pending[trial_id] = (result, error)
            return
        ot_trial = self._ot_trials[trial_id]
        if result is not None and not result.get("final"):
            self.on_trial_result(
                trial_id, result
            )  # a pruned trial's last epoch reaches the searcher only here
        if error or result is None:
            state, value = TrialState.FAIL, None
        elif result.get("status") in ("diverged", "failed"):
            state, value = TrialState.FAIL, None
        elif not result.get("final"):
            state, value = TrialState.PRUNED, None
        else:
            state, value = TrialState.COMPLETE, result.get(self.metric)
            if value is None:
                state = TrialState.FAIL
        self._ot_study.tell(ot_trial, value, state=state)
        self._completed_trials.add(trial_id)
