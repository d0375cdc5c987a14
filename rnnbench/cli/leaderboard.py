"""`rnnbench leaderboard`: the cells of each set-up ranked on seeds, in the format asked for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from rnnbench.analysis.stats import MARGIN
from rnnbench.cli import options as o
from rnnbench.cli.output import (
    console,
    err_console,
    exported,
    print_json,
    reports_errors,
    terminal_width,
)

FORMATS = ("table", "markdown", "html", "csv", "json")


@reports_errors
def leaderboard_command(
    task: o.BoardTask = None,
    sweep: o.BoardSweep = None,
    metric: o.BoardMetric = "lrd_score",
    output_format: o.Format = "table",
    tracking_uri: o.TrackingUri = None,
    experiment: o.Experiment = "rnnbench",
    publish: o.Publish = None,
    plots: o.Plots = True,
    note: o.Note = None,
    setup: o.BoardSetup = None,
    baseline: o.Baseline = None,
    min_trials: o.MinTrials = 20,
    margin: o.Margin = MARGIN,
    data: o.FromData = None,
    with_aggregate: o.AggregateFlag = False,
    force: o.Force = False,
    wide: o.Wide = False,
    recompute_importance: o.RecomputeImportance = False,
) -> None:
    """Rank the cells of each set-up on seeds, three-way verdicts against the leader; chance-level groups unranked."""
    from rnnbench.analysis.leaderboard import NothingToRank, build

    if output_format not in FORMATS:
        raise typer.BadParameter(
            f"{output_format!r}; valid formats: {', '.join(FORMATS)}", param_hint="--format"
        )
    if publish is not None:
        from rnnbench.report.page import check_target

        check_target(publish, force, "--publish")
    runs = exported(data)
    try:
        board = build(tracking_uri, task=task, sweep=sweep, metric=metric, experiment=experiment, setup=setup,
                      baseline=baseline, min_trials=min_trials, margin=margin, runs=runs,
                      recompute_importance=recompute_importance)  # fmt: skip
    except NothingToRank as exc:
        err_console.print(f"Nothing to rank: {escape(str(exc))}", soft_wrap=True)
        if output_format == "json":
            print_json({"metric": metric, "groups": {}, "message": str(exc)})
        return
    _render_board(board, output_format, wide, with_aggregate)
    if plots and sweep and runs is None:
        _log_plots(board, sweep)
    if publish is not None:
        from rnnbench.report.leaderboard import sweep_lines
        from rnnbench.report.page import command_line, page_header

        given = {"--task": task, "--sweep": sweep, "--setup": setup, "--baseline": baseline, "--metric": metric,
                 "--margin": None if margin == MARGIN else str(margin),
                 "--tracking-uri": tracking_uri, "--experiment": None if experiment == "rnnbench" else experiment,
                 "--from": " --from ".join(str(d) for d in data) if data else None,
                 "--publish": str(publish)}  # fmt: skip
        _publish_board(
            board,
            publish,
            page_header(
                command_line("rnnbench leaderboard", given), board.tracking_uri, sweep_lines(board), note
            ),
        )


def _render_board(board: Any, output_format: str, wide: bool, with_aggregate: bool) -> None:
    """The leaderboard on standard output in the format asked for."""
    from rnnbench.report.leaderboard import markdown, rich_tables, to_csv, to_html, to_json

    if output_format == "table":
        console.width = terminal_width() or console.width  # read when the command runs, not at import
        for table in rich_tables(board, wide):
            console.print(table)
        if with_aggregate:
            _print_aggregate(board)
    elif output_format in ("markdown", "html"):
        print({"markdown": markdown, "html": to_html}[output_format](board, with_aggregate=with_aggregate))
    else:
        text = {"json": to_json, "csv": to_csv}[output_format](board)
        print(text, end="" if output_format == "csv" else "\n")


def _publish_board(board: Any, folder: Path, header: list[str]) -> None:
    from rnnbench.report.leaderboard import publish
    from rnnbench.report.page import published_count

    written = publish(board, folder, header)
    err_console.print(f"Published {published_count(folder, written)} files into {folder}/", highlight=False)


def _print_aggregate(board: Any) -> None:
    from rnnbench.analysis.leaderboard import aggregate
    from rnnbench.report.leaderboard import AGGREGATE_HEADER, IMPROVEMENT_HEADER, aggregate_lines

    caption, scores, improvement = aggregate_lines(aggregate(board))
    for header, rows in ((AGGREGATE_HEADER, scores), (IMPROVEMENT_HEADER, improvement)):
        if rows:
            table = Table(title="across set-ups")
            for name in header:
                table.add_column(name)
            for cells in rows:
                table.add_row(*map(escape, cells))
            console.print(table)
    console.print(escape(caption), highlight=False)


def _log_plots(board: Any, sweep: str) -> None:
    """Attach the leaderboard (plots, ranking tables, the page) to the sweep's parent run."""
    from rnnbench.report.leaderboard import log_plots

    parent = board.runs.sweep_run(sweep)
    if parent is not None:
        log_plots(board, board.runs.client, parent.info.run_id)
