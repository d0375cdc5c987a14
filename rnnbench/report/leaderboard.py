"""The leaderboard as a table, Markdown, HTML, CSV or JSON, with its plots, and its published page."""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
import math
import tempfile
from pathlib import Path
from typing import Any

from rnnbench.analysis.leaderboard import (
    CURVES_PER_CELL,
    Aggregate,
    Entry,
    Group,
    Leaderboard,
    aggregate,
    sweep_settings,
)
from rnnbench.analysis.setups import short
from rnnbench.analysis.stats import Summary, Verdict
from rnnbench.report.page import (
    HTML_MARKER,
    MARKER,
    PAGE_STYLE,
    UI_URL,
    budget_table,
    cell_class,
    html_table,
    log_axis,
    md_escape,
    md_table,
    new_figure,
    safe_name,
    save_figure,
)
from rnnbench.tracking.store import Store
from rnnbench.training.lrd import SkillBand
from rnnbench.training.metrics import STATUSES

# The re-training on seeds (what ranks rest on), then the search (the selected trial was chosen for being
# best on validation: its numbers are optimistic), then the comparisons on the search's trials: three
# tables per set-up on a page, each narrow enough for a 1,280-pixel screen.
RETRAINING = ("rank", "cell", "plugin", "seeds", "mean ± std", "95 % CI", "vs leader [95 % CI]", "verdict",
              "> chance (p)", "model")  # fmt: skip
SEARCH = ("selected trial: test acc", "selected trial: LRD score", "selected trial: LRD horizon", "params",
          "selected trial: configuration", "trials done/pruned/div/fail", "median s per trial",
          "all trials: median [IQR]")  # fmt: skip
TRIALS = ("paired vs leader", "importance")
COLUMNS = RETRAINING + SEARCH + TRIALS
PAGE_TABLES = (
    ("re-training on seeds: the ranks rest on these", RETRAINING),
    (
        "search: the selected trial is optimistic (it was chosen for being best on validation)",
        ("cell", *SEARCH),
    ),
    ("the search's trials: paired comparison with the leader, fANOVA importance", ("cell", *TRIALS)),
)
MODEL_COLUMN = COLUMNS.index("model")


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _lrd(value: Any, group: Group, digits: int = 3) -> str:
    """An LRD measure, or n/a where the set-up has none (one distance bucket)."""
    return _num(value, digits) if value is not None else ("n/a" if group.metric != "lrd_score" else "-")


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _config(entry: Entry) -> str:
    parts = []
    for key, value in entry.config.items():
        if key in ("lr", "clip", "momentum", "input_noise") and value not in ("none", "None"):
            parts.append(f"{key} {float(value):.2g}")
        else:
            parts.append(f"{key} {value}")
    return " ".join(parts)


def _importance(entry: Entry, minimum: int) -> str:
    if entry.importance:
        top = sorted(entry.importance.items(), key=lambda kv: -kv[1])
        return ", ".join(f"{k} {v:.2f}" for k, v in top) + f" (n={entry.importance_trials} that learned)"
    if not entry.run_id:
        return "-"
    return f"n/a ({entry.importance_trials} trials that learned < {minimum})"


def verdict_text(verdict: Verdict | None) -> str:
    """The verdict column: better/worse/equivalent, or inconclusive with what could have been detected."""
    if verdict is None:
        return "-"
    if verdict.reason:
        return f"inconclusive: {verdict.reason}"
    if verdict.kind == "equivalent":
        return f"equivalent (±{verdict.margin:g})"
    if verdict.kind == "inconclusive":
        if math.isnan(verdict.detectable):
            return "inconclusive (no spread to test against)"
        return f"inconclusive (detectable: {verdict.detectable:.3f})"
    return verdict.kind


def difference_text(verdict: Verdict | None, leader: bool) -> str:
    if verdict is None:
        return "leader" if leader else "-"
    return f"{verdict.difference:+.3f} [{verdict.low:+.3f}, {verdict.high:+.3f}]"


def paired_text(verdict: Verdict | None) -> str:
    if verdict is None:
        return "-"
    return f"{verdict_text(verdict)}: {difference_text(verdict, False)}, {verdict.n} configs"


def row(entry: Entry, group: Group) -> list[str]:
    """Every column of a cell's row, in COLUMNS order (the model as ``models:/m-...``)."""
    spread = entry.spread
    leader = entry.rank == 1 and entry.verdict is None and entry.n >= 2
    return [
        entry.rank_label,
        entry.cell,
        short(entry.plugin),  # a one-file plugin by its file name: a page names no path of the machine
        str(entry.seeds) if entry.seeds else "0 (search run)",
        f"{entry.mean:.3f} ± {entry.std:.3f}" if entry.mean is not None else "no completed trial",
        # Both ranked metrics lie in [0, 1]: the interval is shown within it.
        f"[{max(entry.ci_low, 0.0):.3f}, {min(entry.ci_high, 1.0):.3f}]" if entry.n >= 2 else "-",
        difference_text(entry.verdict, leader),
        verdict_text(entry.verdict),
        _p(entry.chance_p),
        entry.model_uri or "-",
        _num(entry.test_accuracy),
        _lrd(entry.lrd_score, group),
        _lrd(entry.lrd_horizon, group, 0),
        _num(entry.param_count, 0),
        _config(entry) or "-",
        "/".join(str(entry.counts[s]) for s in STATUSES),
        "-" if math.isnan(entry.median_seconds) else f"{entry.median_seconds:.1f} s",
        f"{spread['median']:.3f} [{spread['q1']:.3f}, {spread['q3']:.3f}]" if spread else "-",
        paired_text(entry.paired),
        _importance(entry, group.min_trials),
    ]


def short_model(uri: str) -> str:
    """A model's id cut for a table (``m-b9e6312``); the link and the JSON carry it whole."""
    return uri.removeprefix("models:/")[:9] if uri.startswith("models:/") else uri


def page_tables(
    entry_rows: list[tuple[Entry, list[str]]],
) -> list[tuple[str, tuple[str, ...], list[list[str]]]]:
    """The page's three tables of a set-up: (title, header, rows), cells picked from each full row."""
    tables = []
    for title, header in PAGE_TABLES:
        picks = [COLUMNS.index(c) for c in header]
        tables.append((title, header, [[cells[k] for k in picks] for _, cells in entry_rows]))
    return tables


def budget_rows(group: Group) -> tuple[list[str], list[list[str]]]:
    """The set-up's budget table: its cells with a budget curve (rnnbench.report.page.budget_table)."""
    return budget_table([(e.cell, e.budget) for e in group.entries if e.budget])


def budget_caption(group: Group) -> str:
    selection = next((e.selection for e in group.entries if e.budget), "the selection metric")
    return (f"Budget curves (Dodge et al. 2019): the expected best {selection} after n search trials drawn from "
            f"each cell's completed trials, and in brackets the expected {group.metric} of that pick; "
            "'-' where a cell has fewer trials.")  # fmt: skip


def model_link(entry: Entry, experiment_id: str, ui_url: str = UI_URL) -> str:
    """The MLflow UI's page of the entry's logged model ("" without one)."""
    if not entry.model_uri:
        return ""
    model_id = entry.model_uri.removeprefix("models:/")
    return f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}/models/{model_id}"


def ranked_rows(group: Group) -> list[Entry]:
    """The entries a table shows: cells with a completed trial (the rest are listed under it)."""
    return [e for e in group.entries if e.run_id]


def heading(group: Group) -> str:
    return f"{group.setup.task} · {group.setup.id}"


def preamble(group: Group, board: Leaderboard) -> list[str]:
    """The lines above a group's table: its set-up, what ranks it, and how to read the ranks."""
    lines = [f"Set-up: {group.setup.describe()}.",
             f"Ranked by {group.metric} of each cell's best configuration (chosen on validation, reported on "
             "test)" + (f"; chance accuracy {group.chance:.3f}." if group.chance is not None else ".")]  # fmt: skip
    lines += [f"Note: {note}." for note in group.notes(board.metric)]
    missing = [e for e in group.entries if not e.run_id]
    if missing:
        tallies = "; ".join(f"{e.cell} ({_tally(e)})" for e in missing)
        lines.append(f"No completed trial, so not in the table: {tallies}.")
    return lines


def _tally(entry: Entry) -> str:
    found = [f"{entry.counts[s]} {s}" for s in STATUSES if entry.counts.get(s)]
    return ", ".join(found) or "no trial"


TERMINAL = ("rank", "cell", "mean [95 % CI]", "n", "Δ leader", "verdict", "test acc", "params")


def _short_verdict(entry: Entry) -> str:
    verdict = entry.verdict
    if verdict is None:
        return "leader" if entry.rank == 1 and entry.n >= 2 else "-"
    return "did not learn" if verdict.reason else verdict.kind


def terminal_row(entry: Entry) -> list[str]:
    """The few columns a reader ranks by, each short enough for an 80-column terminal."""
    if entry.mean is None:
        mean = "-"
    elif entry.n >= 2:
        mean = f"{entry.mean:.3f} [{max(entry.ci_low, 0.0):.3f}, {min(entry.ci_high, 1.0):.3f}]"
    else:
        mean = f"{entry.mean:.3f}"
    delta = "-" if entry.verdict is None else f"{entry.verdict.difference:+.3f}"
    params = "-" if entry.param_count is None else f"{entry.param_count:,.0f}"
    return [entry.rank_label, entry.cell, mean, str(entry.n or "-"), delta, _short_verdict(entry),
            _num(entry.test_accuracy), params]  # fmt: skip


def details(entry: Entry, group: Group) -> list[str]:
    """The rest of a row (``--wide``), as labelled lines that wrap between words, never inside a number."""
    full = dict(zip(COLUMNS, row(entry, group), strict=True))
    lines = [f"{entry.cell} ({short(entry.plugin)}), rank {entry.rank_label}"]
    lines += [f"  re-training: {full['seeds']} seeds, {full['mean ± std']}, vs leader {full['vs leader [95 % CI]']} "
              f"({full['verdict']}), above chance p {full['> chance (p)']}"]  # fmt: skip
    lines += [f"  search, the selected trial: test acc {full['selected trial: test acc']}, LRD score "
              f"{full['selected trial: LRD score']}, horizon {full['selected trial: LRD horizon']}, params "
              f"{full['params']}; {full['selected trial: configuration']}"]  # fmt: skip
    lines += [f"  all trials: done/pruned/div/fail {full['trials done/pruned/div/fail']}, "
              f"{full['median s per trial']} each (median), {group.metric} {full['all trials: median [IQR]']}"]  # fmt: skip
    lines += [f"  paired vs leader: {full['paired vs leader']}", f"  importance: {full['importance']}",
              f"  model: {full['model']}"]  # fmt: skip
    return lines


def rich_tables(board: Leaderboard, wide: bool = False) -> list[Any]:
    """The terminal leaderboard: per set-up a table of the ranking columns that fits 80 columns, its notes,
    and with ``wide`` every other column as labelled lines, the budget table and the importances."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    shown: list[Any] = []
    for group in board.groups:
        # One space between columns (the box's) and none at the edges: the eight columns fit 80 characters.
        table = Table(title=heading(group), box=box.SIMPLE_HEAD, show_edge=False, padding=0)
        for name in TERMINAL:
            table.add_column(name, no_wrap=True, justify="left" if name in ("cell", "verdict") else "right")
        for entry in ranked_rows(group):
            table.add_row(*map(escape, terminal_row(entry)))
        shown += [table, Text("\n".join(preamble(group, board)))]
        if not wide:
            continue
        shown.append(Text("\n".join(line for entry in ranked_rows(group) for line in details(entry, group))))
        header, rows = budget_rows(group)
        if rows:
            budget = Table(title=f"tuning budget · {heading(group)}", box=box.SIMPLE_HEAD, pad_edge=False)
            for name in header:
                budget.add_column(name, no_wrap=True)
            for cells in rows:
                budget.add_row(*map(escape, cells))
            shown += [budget, Text(budget_caption(group))]
    if not wide and board.groups:
        shown.append(Text("More columns (the search, paired comparisons, importances, models): --wide, or "
                          "--format markdown|html|json."))  # fmt: skip
    return shown


def aggregate_lines(found: Aggregate | None) -> tuple[str, list[list[str]], list[list[str]]]:
    """The aggregate section: its caption, the IQM table and the probability-of-improvement table."""
    if found is None:
        return "No set-up has re-trained cells and a known chance level: nothing to aggregate.", [], []
    caption = (
        f"Across {len(found.setups)} set-up(s) ({', '.join(found.setups)}): each re-trained seed's test accuracy "
        "normalised as (accuracy - chance) / (1 - chance), the interquartile mean (IQM) over all seeds of all "
        "set-ups with a stratified bootstrap 95 % CI, and the probability that a seed of one cell beats a seed "
        "of another on the same set-up (Agarwal et al. 2021)."
    )
    if found.left_out:
        caption += (
            " Not aggregated (missing set-ups): "
            + "; ".join(f"{cell} ({', '.join(missing)})" for cell, missing in found.left_out.items())
            + "."
        )
    scores = [[cell, f"{v['iqm']:.3f}", f"[{v['low']:.3f}, {v['high']:.3f}]", str(v["runs"])]
              for cell, v in found.scores.items()]  # fmt: skip
    improvement = [
        [f"P({x} > {y})", f"{p:.2f}", f"[{low:.2f}, {high:.2f}]"] for x, y, p, low, high in found.improvement
    ]
    return caption, scores, improvement


AGGREGATE_HEADER = ("cell", "IQM of normalised score", "95 % CI", "seeds")
IMPROVEMENT_HEADER = ("comparison", "probability", "95 % CI")


def markdown(
    board: Leaderboard, images: dict[str, list[str]] | None = None, with_aggregate: bool = False
) -> str:
    lines = []
    for group in board.groups:
        lines += [f"## {md_escape(heading(group))}", ""]
        lines += [md_escape(line) + "  " for line in preamble(group, board)] + [""]
        entry_rows = [(e, row(e, group)) for e in ranked_rows(group)]
        for title, header, rows in page_tables(entry_rows):
            lines += [
                f"**{md_escape(title)}**",
                "",
                "| " + " | ".join(header) + " |",
                "|" + "---|" * len(header),
            ]
            for (entry, _), cells in zip(entry_rows, rows, strict=True):
                lines.append("| " + " | ".join(_md_cell(c, name, entry, board) for c, name in zip(cells, header,
                                                                                              strict=True)) + " |")  # fmt: skip
            lines.append("")
        header, rows = budget_rows(group)
        if rows:
            lines += ["", md_escape(budget_caption(group)), "", *md_table(header, rows)]
        for image in (images or {}).get(group.setup.id, []):
            lines += ["", f"![{Path(image).stem}]({image})"]
        lines.append("")
    if with_aggregate:
        caption, scores, improvement = aggregate_lines(aggregate(board))
        lines += ["## Across set-ups", "", md_escape(caption), ""]
        if scores:
            lines += [
                *md_table(AGGREGATE_HEADER, scores),
                "",
                *md_table(IMPROVEMENT_HEADER, improvement),
                "",
            ]
    return "\n".join(lines)


def _md_cell(text: str, column: str, entry: Entry, board: Leaderboard) -> str:
    if column == "model" and entry.model_uri:
        return f"[{md_escape(short_model(text))}]({model_link(entry, board.experiment_id)})"
    return md_escape(text)


def to_csv(board: Leaderboard) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["task", "setup", *COLUMNS])
    for group in board.groups:
        for entry in ranked_rows(group):
            writer.writerow([group.setup.task, group.setup.id, *row(entry, group)])
    return out.getvalue()


def to_json(board: Leaderboard) -> str:
    found = aggregate(board)
    return json.dumps({**board.as_dict(), "aggregate": None if found is None else found.as_dict()}, indent=2,
                      default=str)  # fmt: skip


def _html_cell(text: str, column: str, entry: Entry, board: Leaderboard) -> str:
    """A cell: numbers right-aligned and never wrapped, text left-aligned and wrapped, the model linked."""
    e = html.escape
    if column == "model" and entry.model_uri:
        return f'<td class="text"><a href="{e(model_link(entry, board.experiment_id))}">{e(short_model(text))}</a></td>'
    return f'<td class="{cell_class(text)}">{e(text)}</td>'


def to_html(board: Leaderboard, images: dict[str, list[Path]] | None = None, header: str = "",
            with_aggregate: bool = False) -> str:  # fmt: skip
    """A self-contained page: tables, and the plots embedded as data URIs."""
    e = html.escape
    parts = [
        "<!doctype html>",
        f'<html lang="en"><head><meta charset="utf-8">{HTML_MARKER}<title>rnnbench leaderboard</title>',
        PAGE_STYLE,
        "</head><body>",
        "<h1>rnnbench leaderboard</h1>",
        header,
    ]
    for group in board.groups:
        parts.append(f"<h2>{e(heading(group))}</h2>")
        parts += [f"<p>{e(line)}</p>" for line in preamble(group, board)]
        entry_rows = [(en, row(en, group)) for en in ranked_rows(group)]
        for k, (title, header, rows) in enumerate(page_tables(entry_rows)):
            css = ("leaderboard", "search", "trials")[k]
            parts += [f'<table class="{css}"><caption>{e(title)}</caption><thead><tr>',
                      *[f"<th>{e(c)}</th>" for c in header], "</tr></thead><tbody>"]  # fmt: skip
            for (entry, _), cells in zip(entry_rows, rows, strict=True):
                shown = [_html_cell(c, name, entry, board) for c, name in zip(cells, header, strict=True)]
                parts.append("<tr>" + "".join(shown) + "</tr>")
            parts.append("</tbody></table>")
        budget_header, rows = budget_rows(group)
        if rows:
            parts += [f"<p>{e(budget_caption(group))}</p>", *html_table(budget_header, rows, "budget")]
        for image in (images or {}).get(group.setup.id, []):
            data = base64.b64encode(Path(image).read_bytes()).decode()
            parts.append(f'<img alt="{e(Path(image).stem)}" src="data:image/png;base64,{data}">')
    if with_aggregate:
        caption, scores, improvement = aggregate_lines(aggregate(board))
        parts += ["<h2>Across set-ups</h2>", f"<p>{e(caption)}</p>"]
        if scores:
            parts += [*html_table(AGGREGATE_HEADER, scores, "aggregate"),
                      *html_table(IMPROVEMENT_HEADER, improvement, "improvement")]  # fmt: skip
    parts.append("</body></html>")
    return "\n".join(parts)


def plots(board: Leaderboard, folder: Path) -> dict[str, list[Path]]:
    """Per set-up: LRD curves (mean over seeds with a band, where LRD is measured), the ranked metric per
    seed and over the completed trials per cell, budget curves, cost plots, learning curves; each only where
    it has more than one point in all (one cell's trial of one epoch is a lone point, in the table already),
    and the LRD curves where a cell's curve has more than one distance bucket (an LRD measure)."""
    folder.mkdir(parents=True, exist_ok=True)
    made: dict[str, list[Path]] = {}
    for group in board.groups:
        entries = [e for e in group.entries if e.run_id]
        stem = folder / safe_name(group.setup.id)
        paths = []
        curves = {e.cell: _seed_curve(board.runs, e) for e in entries}
        if any(len(c[1]) > 1 for c in curves.values()):  # one bucket: no LRD measure, no curve to draw
            paths.append(_lrd_plot(group, curves, Path(f"{stem}-lrd-curves.png")))
        if sum(max(len(e.trial_values), len(e.values)) for e in entries) > 1:
            paths.append(_distribution_plot(group, entries, Path(f"{stem}-distribution.png")))
        if sum(len(e.budget) for e in entries) > 1:
            paths.append(_budget_plot(group, entries, Path(f"{stem}-budget.png")))
        if sum(len(e.costs) for e in entries) > 1:
            paths.append(cost_plot(heading(group), group.metric, entries, Path(f"{stem}-cost.png")))
        histories = {e.cell: [board.runs.history(r, "val_accuracy") for r in e.best_runs] for e in entries}
        if sum(len(h) for runs in histories.values() for h in runs) > 1:
            paths.append(_learning_curves(group, histories, Path(f"{stem}-learning-curves.png")))
        ranked = [e for e in entries if e.importance]
        if ranked:
            paths.append(_importance_plot(group, ranked, Path(f"{stem}-importance.png")))
        made[group.setup.id] = paths
    return made


def _seed_curve(runs: Any, entry: Entry) -> tuple[str, list[dict[str, float]]]:
    """The LRD curve as a mean over the re-seeded runs with a 95 % band (the selected trial's without them)."""
    if not entry.reseed_runs:
        return "selected trial", runs.lrd_curve(entry.run_id)
    by_bucket: dict[float, list[float]] = {}
    for run_id in entry.reseed_runs:
        for bucket in runs.lrd_curve(run_id):
            by_bucket.setdefault(bucket["low"], []).append(bucket["skill"])
    curve = []
    for low, skills in sorted(by_bucket.items()):
        summary = Summary.of(skills)
        curve.append(
            {"low": low, "skill": summary.mean, "skill_low": summary.low, "skill_high": summary.high}
        )
    return f"mean of {len(entry.reseed_runs)} seeds", curve


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
STYLES = ("-", "--", "-.", ":")


def _lrd_plot(group: Group, curves: dict[str, tuple[str, list[dict[str, float]]]], path: Path) -> Path:
    figure, axis = new_figure()
    drawn = [(cell, label, curve) for cell, (label, curve) in curves.items() if curve]
    for k, (cell, label, curve) in enumerate(drawn):
        # Cells at the same skill (several at 1.0) would hide each other: each gets its marker and line style
        # and a small sideways offset within its bucket.
        shift = 2 ** (0.08 * (k - (len(drawn) - 1) / 2))
        x = [max(r["low"], 1) * shift for r in curve]
        y = [r["skill"] for r in curve]
        bands = [SkillBand.of(r["skill"], r.get("skill_low"), r.get("skill_high")) for r in curve]
        low, high = [band.low for band in bands], [band.high for band in bands]
        line = axis.plot(x, y, marker=MARKERS[k % len(MARKERS)], linestyle=STYLES[k % len(STYLES)],
                         label=f"{cell} ({label})")[0]  # fmt: skip
        if not all(math.isnan(v) for v in low):
            axis.fill_between(x, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
    log_axis(axis, base=2)
    axis.set_ylim(-0.02, 1.02)
    axis.axhline(0.9, color="grey", linewidth=0.8, linestyle="--")
    axis.set_xlabel("distance (steps, log2 bucket lower edge)")
    axis.set_ylabel("normalised skill (band: 95 % CI)")
    axis.set_title(f"{heading(group)}\nLRD curves: mean over the re-trained seeds", fontsize=9)
    axis.legend(fontsize=8)
    return save_figure(figure, path)


def _budget_plot(group: Group, entries: list[Entry], path: Path) -> Path:
    """Expected best validation value after n trials (Dodge et al. 2019) per cell, with a bootstrap band."""
    figure, axis = new_figure()
    for entry in (e for e in entries if e.budget):
        ns = [p.n for p in entry.budget]
        line = axis.plot(ns, [p.best for p in entry.budget], marker=".", label=entry.cell)[0]
        axis.fill_between(ns, [p.low for p in entry.budget], [p.high for p in entry.budget],
                          color=line.get_color(), alpha=0.15, linewidth=0)  # fmt: skip
    selection = next(e.selection for e in entries if e.budget)
    axis.set_xlabel("search trials (n)")
    axis.set_ylabel(f"expected {selection}, best of n")
    axis.set_title(f"{heading(group)}\nexpected best after n trials (band: bootstrap 95 %)", fontsize=9)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    return save_figure(figure, path)


def _distribution_plot(group: Group, entries: list[Entry], path: Path) -> Path:
    figure, axis = new_figure()
    labels = [e.cell for e in entries]
    axis.boxplot([e.trial_values or [math.nan] for e in entries], tick_labels=labels, showmeans=True)
    for k, entry in enumerate(entries, 1):  # the seeds the rank rests on, over the trials' spread
        axis.plot(
            [k] * len(entry.values), entry.values, "x", color="crimson", label="seeds" if k == 1 else None
        )
    if group.chance is not None and group.metric == "test_accuracy":
        axis.axhline(group.chance, color="grey", linestyle=":", linewidth=0.8, label="chance")
    axis.set_ylabel(group.metric)
    axis.set_title(f"{heading(group)}\n{group.metric} over completed trials (box) and seeds (x)", fontsize=9)
    axis.legend(fontsize=8)
    return save_figure(figure, path)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both cost (lower) and value (higher), cheapest first."""
    front: list[tuple[float, float]] = []
    for cost, value in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or value > front[-1][1]:
            front.append((cost, value))
    return front


def cost_plot(title: str, metric: str, entries: list[Entry], path: Path) -> Path:
    """The ranked metric of every completed trial against its parameter count and its training time, one
    colour per cell, each cell's Pareto front drawn (higher is better, cheaper is better)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2, sharey=True)
    for k, entry in enumerate(e for e in entries if e.costs):
        colour = f"C{k % 10}"
        for axis, index in ((axes[0], 1), (axes[1], 2)):
            points = [(c[index], c[0]) for c in entry.costs]
            axis.scatter(*zip(*points, strict=True), s=14, alpha=0.55, color=colour,
                         label=f"{entry.cell} (n={len(points)})")  # fmt: skip
            front = pareto_front(points)
            axis.step(*zip(*front, strict=True), where="post", color=colour, linewidth=1.4)
    for axis, index, label in ((axes[0], 1, "parameters"), (axes[1], 2, "training time (s)")):
        log_axis(axis, values=[c[index] for e in entries for c in e.costs])
        axis.set_xlabel(f"{label} (log)")
        axis.grid(True, alpha=0.3)
    axes[0].set_ylabel(metric)
    axes[0].legend(fontsize=8)
    figure.suptitle(
        f"{title}: {metric} against cost, every completed trial; lines: Pareto fronts", fontsize=9
    )
    return save_figure(figure, path)


def _learning_curves(group: Group, histories: dict[str, list[list[tuple[int, float]]]], path: Path) -> Path:
    figure, axis = new_figure()
    for k, (cell, runs) in enumerate(histories.items()):
        for rank, history in enumerate(r for r in runs if r):
            axis.plot(*zip(*history, strict=True), color=f"C{k % 10}", alpha=1.0 if rank == 0 else 0.45,
                      linewidth=1.6 if rank == 0 else 0.9, marker="." if rank == 0 else None,
                      label=cell if rank == 0 else None)  # fmt: skip
    axis.set_xlabel("epoch")
    axis.set_ylabel("validation accuracy")
    axis.set_title(f"{heading(group)}\nvalidation accuracy per epoch, each cell's {CURVES_PER_CELL} best trials "
                   "(bold: the best)", fontsize=9)  # fmt: skip
    axis.legend(fontsize=8)
    axis.grid(True, alpha=0.3)
    return save_figure(figure, path)


def _importance_plot(group: Group, ranked: list[Entry], path: Path) -> Path:
    figure, axis = new_figure()
    params = sorted({p for e in ranked for p in e.importance or {}})
    width = 0.8 / len(ranked)
    for k, entry in enumerate(ranked):
        heights = [(entry.importance or {}).get(p, 0.0) for p in params]
        label = f"{entry.cell} (n={entry.importance_trials})"
        axis.bar([i + k * width for i in range(len(params))], heights, width, label=label)
    axis.set_xticks([i + 0.4 - width / 2 for i in range(len(params))], params)
    axis.set_ylabel("fANOVA importance")
    axis.set_title(f"{heading(group)}: hyperparameter importance", fontsize=9)
    axis.legend(fontsize=8)
    return save_figure(figure, path)


LOGGED_TAG = "leaderboard_logged"  # a sweep run's tag: a fingerprint of the leaderboard last attached to it


def log_plots(board: Leaderboard, client: Any, run_id: str) -> list[str]:
    """Draw the board's plots and attach them to ``run_id`` (artifact folder leaderboard/), with the
    rankings as MLflow tables (one per set-up) and the page as HTML: the leaderboard in MLflow's UI.

    Skipped (returns []) when the run already carries this very leaderboard: drawing and uploading took
    seconds of every ``rnnbench leaderboard --sweep`` after the sweep's own end had attached it."""
    from rnnbench.tracking.recorder import replace_table

    key = hashlib.sha256(to_json(board).encode()).hexdigest()[:24]
    if client.get_run(run_id).data.tags.get(LOGGED_TAG) == key:
        return []
    with tempfile.TemporaryDirectory() as folder:
        images = plots(board, Path(folder))
        paths = [p for found in images.values() for p in found]
        for path in paths:
            client.log_artifact(run_id, str(path), artifact_path="leaderboard")
        for group in board.groups:
            rows = [row(e, group) for e in ranked_rows(group)]
            table = {column: [r[k] for r in rows] for k, column in enumerate(COLUMNS)}
            replace_table(client, run_id, table, f"leaderboard/{safe_name(group.setup.id)}.json")
        client.log_text(run_id, to_html(board, images, with_aggregate=True), "leaderboard/index.html")
    client.set_tag(run_id, LOGGED_TAG, key)
    return [f"leaderboard/{p.name}" for p in paths]


def log_sweep_leaderboard(store: Store, sweep: str) -> None:
    """When a sweep, its growth or its reseed ends: keep its importances (rnnbench.analysis.importance) and attach
    its leaderboard to its run (log_plots)."""
    from rnnbench.analysis.leaderboard import build, cache_importances
    from rnnbench.tracking.records import MlflowRuns

    source = MlflowRuns.of(store)
    cache_importances(source, sweep)
    board = build(runs=source, sweep=sweep)  # the importances now come from the cache
    parent = source.sweep_run(sweep)
    if parent is not None:
        log_plots(board, source.client, parent.info.run_id)


SWEEP_KEYS = ("task", "cells", "trials", "space", "seed", "epochs", "length", "metric", "sampler", "task_options",
              "space_overrides", "train", "grace_period", "cpus_per_trial", "wall time")  # fmt: skip


def sweep_lines(board: Leaderboard) -> list[str]:
    """One line per sweep on the board: its settings and the machine it ran on (a published page's header)."""
    lines = []
    for found in sweep_settings(board):
        described = ", ".join(
            f"{k}={found[k]}" for k in SWEEP_KEYS if found.get(k) not in (None, "None", "{}")
        )
        machine = f" {found['machine']}." if found.get("machine") else ""
        lines.append(f"Sweep `{found['sweep']}`: {described}.{machine}")
    return lines


def publish(board: Leaderboard, folder: Path, header_lines: list[str]) -> list[Path]:
    """Write README.md (tables and plots), a self-contained index.html, and the PNG plots."""
    folder.mkdir(parents=True, exist_ok=True)
    images = plots(board, folder)
    if any(e.model_uri for e in board.entries):
        header_lines = [*header_lines, (
            "The model column links each row's best trial to its logged MLflow model in the MLflow UI of the "
            f"store (`rnnbench ui`, {UI_URL}); `mlflow.pytorch.load_model(\"models:/m-...\")` loads it "
            "(README, \"Models\")."
        )]  # fmt: skip
    relative = {setup: [p.name for p in paths] for setup, paths in images.items()}
    header_md = "\n\n".join(md_escape(line) for line in header_lines)
    (folder / "README.md").write_text(
        f"{MARKER}\n\n# rnnbench reference leaderboard\n\n{header_md}\n\n"
        f"{markdown(board, relative, with_aggregate=True)}"
    )
    header_html = "".join(f"<p>{html.escape(line)}</p>" for line in header_lines)
    (folder / "index.html").write_text(to_html(board, images, header_html, with_aggregate=True))
    return [folder / "README.md", folder / "index.html", *[p for paths in images.values() for p in paths]]
