"""The sweep driver: per-cell Optuna studies (TPE, persistent) run as Ray Tune trials with ASHA,
recorded in MLflow.

Each cell gets its own study and sampler, so cells are compared on equal budgets. Every trial is one
nested MLflow run under the sweep's parent run, written from the driver alone (the trial recorder), so
parallel trials never contend for an sqlite store. The sweep's folder (``rnnbench-sweeps/NAME``) holds
its settings and the Optuna journal: ``--resume NAME`` continues to exactly the requested number of
trials per cell.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnbench.sweep.progress import CellProgress, SweepProgress
from rnnbench.sweep.settings import SweepSettings
from rnnbench.sweep.state import (
    JOURNAL_FILE,
    STATE_FILE,
    SweepError,
    SweepInterrupted,
    SweepLock,
    SweepStopped,
    load_state,
    repair_journal,
    resume_command,
    study_name,
    sweep_folder,
    write_state,
)
from rnnbench.util.timings import mark

if TYPE_CHECKING:
    from rnnbench.sweep.cluster import RayStart
    from rnnbench.sweep.forked_check import ForkedCheck
    from rnnbench.sweep.plan import SweepPlan
    from rnnbench.sweep.recorder import CellRecord, TrialRecorder
    from rnnbench.sweep.search import SweepSearch
    from rnnbench.tracking.recorder import RunRecorder

Listener = Callable[[SweepProgress], None]


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


def run_sweep(settings: SweepSettings, resume: bool = False, listener: Listener | None = None) -> SweepResult:
    """Run (or resume) a sweep to exactly ``trials`` finished trials per cell."""
    # Ray, Tune and the plan's task code are imported when a sweep runs: importing rnnbench.sweep stays cheap.
    from rnnbench.sweep.cluster import RayStart
    from rnnbench.sweep.plan import prepare
    from rnnbench.util.collector import uncollected_start

    # The collector skips what the start imports until the sweep ends (rnnbench.util.collector).
    with uncollected_start() as started:
        folder = _claim_folder(settings, resume)
        plan = prepare(settings)
        with RayStart() as ray:  # leaving the block shuts down the Ray started in it
            lock = SweepLock(folder, settings.name or "")
            recorder = _start_beside_ray(plan, lock, resume, ray)
            started()
            try:
                state = load_state(settings.name or "", settings.sweeps_dir) if resume else {}
                sweep = _Sweep(plan, recorder, folder, resume)
                try:
                    sweep.start(state.get("parent_run_id"), listener)
                    mark("sweep run started")
                    sweep.run_cells()
                    mark("trials done")
                    result = _finish_beside_shutdown(sweep, ray)
                    mark("sweep finished")
                    return result
                except KeyboardInterrupt:
                    sweep.mark_interrupted()
                    raise SweepInterrupted(sweep.name, settings.sweeps_dir) from None
            finally:
                lock.release()


def _finish_beside_shutdown(sweep: _Sweep, ray: RayStart) -> SweepResult:
    """Write the summary, models and plots (they need no Ray) while Ray shuts down."""
    from rnnbench.sweep.cluster import held_interrupts

    # Tune's leftover cycles hold Ray object refs and actor handles: finalised by a collection in the
    # finishing thread during the shutdown, they ended the process with exit code 1 ("The core worker has
    # already been shutdown"); they are finalised now, while Ray is up, and no collection runs meanwhile.
    gc.collect()
    collecting = gc.isenabled()
    gc.disable()
    try:
        with (
            held_interrupts() as held,
            ThreadPoolExecutor(1, thread_name_prefix="rnnbench-finish") as pool,
        ):
            finishing = pool.submit(sweep.finish)
            ray.stop()
            mark("ray stopped")
            result = finishing.result()
    finally:
        (gc.enable if collecting else gc.disable)()
    if held:  # too late to stop anything: every trial, the summary and the models are written
        logging.getLogger("rnnbench").warning("interrupted after the sweep had finished: nothing was lost")
    return result


def _start_beside_ray(plan: SweepPlan, lock: SweepLock, resume: bool, ray: RayStart) -> RunRecorder:
    """Start Ray in a thread, and meanwhile check the task's data and the cells (seconds of torch and
    datasets), take the sweep's lock, repair its journal and open (or create) the store; then wait for
    Ray. The lock is held when this returns, and the store is only created once the checks passed."""
    from rnnbench.sweep.cluster import held_interrupts
    from rnnbench.sweep.forked_check import ForkedCheck

    settings = plan.settings
    # A sweep folder already there (a resume, another driver's sweep) is locked before anything starts, so a
    # second driver is refused at once; a new sweep's folder is only made once the checks passed.
    locked_first = lock.path.parent.is_dir()
    if locked_first:
        lock.acquire()  # one driver per sweep: a second one stops here, naming the first's pid
    try:
        # Ctrl-C is held meanwhile: raised in the main thread while Ray's thread imports, it can stop
        # CPython's import machinery holding its global lock (3.11's module-lock callback), and that thread
        # then never ends (seen in CI: the command hung instead of exiting 130). It is acted on between steps.
        with held_interrupts() as held:
            # Forked first, while this process runs no thread: Ray's starts next.
            check = ForkedCheck.start(plan, close_in_child=(lock.handle.fileno(),) if locked_first else ())
            try:
                ray.begin(settings)
                from rnnbench.tracking.recorder import RunRecorder
                from rnnbench.tracking.store import Store

                if check is None:
                    plan.check_data_and_cells()
                else:
                    _wait_importing_the_store(check, held)
            finally:
                if check is not None:
                    check.close()
            mark("cells checked")
            ray.poll()
            _stop_if(held)
            if not locked_first:
                lock.acquire()
            _claim_folder(settings, resume)  # again, under the lock: two new sweeps of one name at once
            if resume:
                _repair_journal(lock.path.parent)
            ray.poll()
            _stop_if(held)
            # The plan resolved and checked the URI before any work: the store is opened once, here.
            recorder = RunRecorder(store=Store.open(settings.tracking_uri, settings.experiment, checked=True))
            mark("store opened")
            try:
                ray.wait()
            except SweepError:
                _stop_if(
                    held
                )  # a signal to the whole process group ended Ray too: the stop is what to report
                raise
            mark("ray started")
            _stop_if(held)
        _stop_if(held)  # arrived as the block ended
    except BaseException:
        lock.release()
        raise
    return recorder


def _wait_importing_the_store(check: ForkedCheck, held: list[int]) -> None:
    """Import what Store.open needs while the child checks, then take its answer: a bad data file or cell
    named by the time MLflow itself is imported is raised at once, without the store's own modules (a
    one-row CSV's sweep: 6.3-6.7 s of CPU against 7.4-8.1 s, docs/sweeps.md)."""
    import mlflow  # noqa: F401  (3 s of Store.open's imports)

    if not held and not check.answered():
        _import_the_store()
    check.wait(held)
    _import_the_store()  # where the child answered first (a no-op where imported above)


def _import_the_store() -> None:
    import mlflow.store.tracking.sqlalchemy_store
    import mlflow.tracking  # noqa: F401


def _stop_if(held: list[int]) -> None:
    """Act on a Ctrl-C (or SIGTERM) held during the step just done, before the next one starts."""
    if held:
        raise KeyboardInterrupt


def _repair_journal(folder: Path) -> None:
    backup = repair_journal(folder / JOURNAL_FILE)
    if backup is not None:
        logging.getLogger("rnnbench").warning(
            "warning: the last line of %s was cut by a crash; it was removed (the whole file is kept as %s); "
            "the trial it recorded is told from its MLflow record, or runs again without one",
            folder / JOURNAL_FILE, backup.name)  # fmt: skip


def _claim_folder(settings: SweepSettings, resume: bool) -> Path:
    """Name the sweep (TASK-DATE-TIME by default); a new sweep may not reuse an existing folder."""
    if settings.name is None:
        settings.name = f"{settings.task}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder = sweep_folder(settings.sweeps_dir, settings.name)
    if (folder / STATE_FILE).is_file() and not resume:
        raise SweepError(
            f"a sweep named {settings.name!r} exists in {folder}; continue it with "
            f"`rnnbench sweep --resume {settings.name}` or choose another --name"
        )
    return folder


class _Sweep:
    """One run of a sweep: its parent MLflow run, its Optuna journal, its progress, one Tuner for its cells."""

    def __init__(self, plan: SweepPlan, recorder: RunRecorder, folder: Path, resume: bool) -> None:
        self.plan, self.settings, self.folder, self.resume = plan, plan.settings, folder, resume
        self.name: str = plan.settings.name or ""
        self.client, self.experiment_id = recorder.client, recorder.experiment_id
        self.recorder = recorder
        self.parent_run_id: str | None = None
        self.gpus = 0.0
        self.storage: Any = None
        self.progress: SweepProgress | None = None

    def start(self, parent_run_id: str | None, listener: Listener | None) -> None:
        """Check the cluster's resources, open (or reopen) the parent run, write the state, the journal."""
        import optuna
        import ray

        from rnnbench.sweep.cluster import check_resources
        from rnnbench.sweep.search import journal_storage
        from rnnbench.tracking.ui_views import save_runs_view

        s = self.settings
        self.gpus = check_resources(s)
        self.folder.mkdir(parents=True, exist_ok=True)
        if parent_run_id is not None:
            self.client.update_run(parent_run_id, status="RUNNING")
        else:
            parent_run_id = self.recorder.start(
                self.name, self.plan.sweep_params(self.gpus), self.plan.sweep_tags(),
                description=f"rnnbench sweep of {', '.join(s.cells)} on {s.task}",
            )  # fmt: skip
        self.parent_run_id = parent_run_id
        save_runs_view(self.client, self.experiment_id, self.name)  # `rnnbench ui --sweep NAME` opens it
        # The budget as a tag too: a param cannot change, and a grown sweep's budget does.
        self.client.set_tag(parent_run_id, "trials", str(s.trials))
        write_state(self.folder, {"name": self.name, "settings": s.as_dict(), "parent_run_id": parent_run_id,
                                  "experiment_id": self.experiment_id, "gpus_per_trial": self.gpus})  # fmt: skip
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.storage = journal_storage(str((self.folder / JOURNAL_FILE).resolve()))
        cpus_total = ray.cluster_resources().get("CPU", 1)
        concurrency = s.max_concurrent or max(1, int(cpus_total // s.cpus_per_trial))
        cells = {c: CellProgress(s.trials) for c in s.cells}
        self.progress = SweepProgress(self.name, s.metric, s.mode, cells, concurrency=concurrency)
        if listener is not None:
            self.progress.listeners.append(listener)

    def run_cells(self) -> None:
        """Run the trials each cell still lacks, all in one Tune run; raises when the sweep stopped before
        every cell had its trials."""
        from rnnbench.sweep.search import finished_trials

        assert self.progress is not None
        budget: dict[str, tuple[int, int]] = {}  # cell -> (trials still to run, trials finished)
        for cell in self.settings.cells:
            study = study_name(self.name, cell)
            if self.resume:
                from rnnbench.sweep.recorder import adopt_recorded_trials

                adopted = adopt_recorded_trials(
                    self.storage, study, self.client, self._record(cell), self.settings.metric
                )
                if adopted:
                    logging.getLogger("rnnbench").info(
                        "%s: trials %s were recorded before the stop; kept", cell, adopted
                    )
            finished = len(finished_trials(self.storage, study))
            self._count_earlier_trials(cell)
            if self.settings.trials > finished:
                budget[cell] = (self.settings.trials - finished, finished)
        self.progress.update()
        if not budget:
            return
        recorders = self._fit(budget)
        for recorder in recorders:
            if recorder.errors:
                self._stopped_by_store(recorder)
        if any(
            len(finished_trials(self.storage, study_name(self.name, c))) < self.settings.trials
            for c in budget
        ):
            self.mark_interrupted()
            raise SweepInterrupted(self.name, self.settings.sweeps_dir)

    def _count_earlier_trials(self, cell: str) -> None:
        """Counts and the best value of trials a previous (interrupted or grown) run of this sweep finished."""
        from rnnbench.tracking.run_search import trial_runs
        from rnnbench.training.metrics import best_run, selection_metric, status_counts

        assert self.progress is not None
        runs = trial_runs(self.client, self.experiment_id, sweep=self.name, cell=cell)
        for status, count in status_counts(runs).items():
            self.progress.cells[cell].counts[status] += count
        best = best_run(runs, self.settings.metric)
        if best is not None:  # a trial's final report carries its tested epoch's value: the best_ metric
            self.progress.record_best(cell, best.data.metrics[selection_metric(self.settings.metric)[0]])

    def _fit(self, budget: dict[str, tuple[int, int]]) -> list[TrialRecorder]:
        """One Tuner over the cells' studies, each trial recorded by its cell's TrialRecorder; returns them.

        One Tuner, not one per cell: Tune reuses a trial's actor (its worker process, about 4 s of CPU to
        start) only within a run (``rnnbench.sweep.routing``)."""
        from ray import tune
        from ray.tune.stopper import CombinedStopper

        from rnnbench.sweep.models import CheckpointDropper, drop_unfinished_checkpoints
        from rnnbench.sweep.recorder import StopOnTrackingError
        from rnnbench.sweep.routing import CellSchedulers, CellSearches
        from rnnbench.sweep.scheduler import make_scheduler
        from rnnbench.sweep.worker import trial_entry

        s, plan = self.settings, self.plan
        assert self.progress is not None
        searches, recorders = self._searches_and_recorders(budget)
        trainable = tune.with_resources(
            tune.with_parameters(trial_entry, specs={cell: plan.trial_spec(cell) for cell in budget}),
            {"cpu": s.cpus_per_trial, "gpu": self.gpus},
        )
        ray_dir = self.folder / "ray"
        attempt = len(list(ray_dir.glob("cells-*"))) if ray_dir.is_dir() else 0
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                metric=s.metric, mode=s.mode,
                search_alg=CellSearches(searches, {c: left for c, (left, _) in budget.items()}, s.metric, s.mode),
                scheduler=CellSchedulers({cell: make_scheduler(s) for cell in budget}),
                num_samples=sum(left for left, _ in budget.values()), max_concurrent_trials=self.progress.concurrency,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=f"cells-{attempt}", storage_path=str(ray_dir.resolve()), verbose=0,
                callbacks=[*recorders, CheckpointDropper()],
                failure_config=tune.FailureConfig(max_failures=s.max_failures),
                stop=CombinedStopper(*(StopOnTrackingError(r) for r in recorders)),
                # One per trial, the latest epoch's state (it holds the best weights so far too), kept by
                # CheckpointDropper: Tune's num_to_keep=1 rewrote its experiment state, every trial's, at
                # every checkpoint (a 100-trial sweep's 100th write was 2.7 MB).
                checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
            ),
        )  # fmt: skip
        mark("tune set up")
        try:
            tuner.fit()
        except Exception as exc:  # Ray or Tune gave up (a node out of memory, a lost raylet)
            from rnnbench.errors import root_cause

            with contextlib.suppress(Exception):
                self.mark_interrupted()
            raise SweepStopped(self.name, self.settings.sweeps_dir, root_cause(exc)) from exc
        finally:
            drop_unfinished_checkpoints(ray_dir / f"cells-{attempt}")
            for recorder in recorders:
                for failure in recorder.wait_for_plots():
                    logging.getLogger("rnnbench").warning("warning: an LRD plot was not saved: %s", failure)
        return recorders

    def _searches_and_recorders(
        self, budget: dict[str, tuple[int, int]]
    ) -> tuple[dict[str, SweepSearch], list[TrialRecorder]]:
        """Each cell's searcher over its own Optuna study, and its recorder."""
        from rnnbench.search_spaces.overrides import for_task
        from rnnbench.sweep.recorder import TrialRecorder
        from rnnbench.sweep.search import SweepSearch, enqueue_shared, make_sampler, shared_configurations

        s, plan = self.settings, self.plan
        assert self.progress is not None and self.parent_run_id is not None
        space = for_task(plan.space, s.space_overrides, plan.task.encoding)
        searches: dict[str, SweepSearch] = {}
        recorders: list[TrialRecorder] = []
        for cell, (_, finished) in budget.items():
            search = SweepSearch(space=space, metric=s.metric, mode=s.mode, sampler=make_sampler(s, finished),
                                 study_name=study_name(self.name, cell), storage=self.storage)  # fmt: skip
            if s.is_paired:
                enqueue_shared(search, shared_configurations(space, s))
            searches[cell] = search
            recorders.append(TrialRecorder(self.client, self._record(cell), search, self.progress))
        return searches, recorders

    def _record(self, cell: str) -> CellRecord:
        """What every trial run of ``cell`` in this sweep carries."""
        from rnnbench.sweep.recorder import CellRecord

        assert self.parent_run_id is not None
        return CellRecord(sweep=self.name, cell=cell, task=self.settings.task, experiment_id=self.experiment_id,
                          parent_run_id=self.parent_run_id, params=self.plan.trial_params(cell, self.gpus),
                          tags=self.plan.trial_tags(), resuming=self.resume)  # fmt: skip

    def _stopped_by_store(self, recorder: TrialRecorder) -> None:
        from rnnbench.tracking.store import TrackingError

        with contextlib.suppress(Exception):  # the store may refuse this write too
            self.mark_interrupted()
        raise TrackingError(
            f"sweep {self.name!r} stopped: the tracking store {self.settings.tracking_uri} could not be "
            f"written ({recorder.errors[0]}). Finished trials are kept in {self.folder / JOURNAL_FILE}; "
            f"fix the store, then continue with: {resume_command(self.name, self.settings.sweeps_dir)}"
        )

    def finish(self) -> SweepResult:
        """Summarise the sweep on its parent run and close it."""
        from rnnbench.sweep.models import log_best_models
        from rnnbench.sweep.search import finished_trials
        from rnnbench.sweep.summary import log_summary, summarize

        s = self.settings
        assert self.parent_run_id is not None
        best, counts = summarize(self.client, self.experiment_id, self.name, s.cells, s.metric)
        mark("summarised")
        log_best_models(self.recorder.store, self.folder, best)
        mark("best models logged")
        log_summary(self.client, self.parent_run_id, best)
        self._log_plots()
        mark("plots logged")
        if s.is_paired:
            self.client.set_tag(self.parent_run_id, "paired", str(self._configurations_shared()).lower())
        self.client.set_terminated(self.parent_run_id, "FINISHED")
        optuna_counts = {c: len(finished_trials(self.storage, study_name(self.name, c))) for c in s.cells}
        return SweepResult(self.name, self.folder, s.tracking_uri or "", self.experiment_id, self.parent_run_id,
                           best, counts, optuna_counts)  # fmt: skip

    def _configurations_shared(self) -> bool:
        """Whether every cell's study holds the same configurations, trial number by trial number (checked,
        not assumed: a sampler or a plugin's space could break it)."""
        import optuna

        seen = []
        for cell in self.settings.cells:
            study = optuna.load_study(study_name=study_name(self.name, cell), storage=self.storage)
            seen.append({t.number: t.params for t in study.get_trials(deepcopy=False)})
        shared = all(found == seen[0] for found in seen[1:])
        if not shared:
            logging.getLogger("rnnbench").warning("warning: the cells of paired sweep %r did not train the same "
                                                  "configurations", self.name)  # fmt: skip
        return shared

    def _log_plots(self) -> None:
        """The sweep's importances kept, and its leaderboard (plots, tables, page) on its run."""
        from rnnbench.analysis.leaderboard import NothingToRank
        from rnnbench.report.leaderboard import log_sweep_leaderboard

        try:
            log_sweep_leaderboard(self.recorder.store, self.name)
        except NothingToRank:
            return
        except Exception as exc:  # a plot is not a result: the sweep's records are complete without it
            logging.getLogger("rnnbench").warning("warning: the sweep's plots were not logged: %s", exc)

    def mark_interrupted(self) -> None:
        """Trial runs cut short (Ctrl-C, a store failure) are KILLED (``--resume`` replaces them); so is
        the sweep's run."""
        from mlflow.entities import RunTag

        from rnnbench.tracking.run_search import trial_runs

        for run in trial_runs(self.client, self.experiment_id, sweep=self.name, status="RUNNING"):
            self.client.log_batch(run.info.run_id, tags=[RunTag("status", "interrupted")])
            self.client.set_terminated(run.info.run_id, "KILLED")
        if self.parent_run_id:
            self.client.set_terminated(self.parent_run_id, "KILLED")
