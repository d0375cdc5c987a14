"""`rnnbench odyssey-report`: Greff et al.'s analysis of LSTM-variant sweeps, published."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rnnbench.analysis.stats import MARGIN
from rnnbench.cli import options as o
from rnnbench.cli.output import (
    err_console,
    exported,
    reports_errors,
)


@reports_errors
def odyssey_report_command(
    sweeps: o.StudySweeps,
    out: o.StudyOut = Path("leaderboard/odyssey"),
    tracking_uri: o.TrackingUri = None,
    experiment: o.Experiment = "rnnbench",
    note: o.Note = None,
    margin: o.Margin = MARGIN,
    data: o.FromData = None,
    force: o.Force = False,
) -> None:
    """Greff et al.'s analysis of LSTM-variant sweeps: best 10 % (Welch) and paired (Wilcoxon), three-way."""
    import shlex

    from rnnbench.analysis.study import StudyError, analyse, findings, gather
    from rnnbench.report.page import check_target, page_header, published_count
    from rnnbench.report.study import publish

    if not (0 < margin < 1):
        raise StudyError(f"--margin must lie between 0 and 1, got {margin}")
    check_target(out, force, "--out")
    runs = exported(data) or _study_runs(tracking_uri, experiment)
    studies = []
    for sweep in sweeps:
        parent = runs.sweep_run(sweep)
        if parent is None:
            raise StudyError(f"no sweep named {sweep!r} in this MLflow store")
        studies.append(analyse(sweep, *gather(parent, runs.trial_runs(sweep=sweep)), margin=margin))
    command = "rnnbench odyssey-report " + " ".join(f"--sweep {shlex.quote(s)}" for s in sweeps)
    if margin != MARGIN:
        command += f" --margin {margin}"
    if data:
        command += "".join(f" --from {shlex.quote(str(d))}" for d in data)
    written = publish(studies, findings(studies), out, page_header(command, runs.uri, note=note))
    err_console.print(f"Published {published_count(out, written)} files into {out}/", highlight=False)


def _study_runs(tracking_uri: str | None, experiment: str) -> Any:
    from rnnbench.analysis.study import StudyError
    from rnnbench.tracking.records import MlflowRuns
    from rnnbench.tracking.store import resolve_tracking_uri

    runs = MlflowRuns.find(tracking_uri, experiment)
    if runs is None:
        raise StudyError(f"no MLflow experiment {experiment!r} in {resolve_tracking_uri(tracking_uri)}")
    return runs
