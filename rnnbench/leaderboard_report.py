"""The leaderboard as a table, Markdown, HTML, CSV or JSON, with its plots, and its published page."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import re
import tempfile
from pathlib import Path
from typing import Any

from rnnbench.leaderboard import CURVES_PER_CELL, Entry, Group, Leaderboard
from rnnbench.reports import STATUSES

COLUMNS = ("rank", "cell", "plugin", "mean ± std", "95 % CI", "n", "p", "> chance (p)", "test acc", "LRD score",
           "LRD horizon", "params", "configuration", "done/pruned/div/fail", "trial time",
           "spread over trials (median [IQR])", "importance", "model")  # fmt: skip
NARROW = ("plugin", "params", "trial time", "importance")  # left out of the terminal table
MODEL_COLUMN = COLUMNS.index("model")
UI_URL = "http://127.0.0.1:5000"  # where `rnnbench ui` serves the store


# An absolute path, not part of a URL: "/home/me/data/x.csv" -> "x.csv".
ABSOLUTE_PATH = re.compile(r"(?<![\w:./])/(?:[^\s'\",}\]/]+/)+([^\s'\",}\]/]+)")
SQLITE_URI = re.compile(r"sqlite:///([^\s'\",}\]]+?)(?=\.?(?:[\s'\",}\]]|$))")


def without_paths(text: str) -> str:
    """``text`` with every absolute path cut to its last part (``sqlite:////abs/mlflow.db`` ->
    ``sqlite:///mlflow.db``)."""
    text = SQLITE_URI.sub(lambda m: "sqlite:///" + m.group(1).rstrip("/").rsplit("/", 1)[-1], text)
    return ABSOLUTE_PATH.sub(r"\1", text)


def machine_line() -> str:
    """The machine a published page was made on: CPU model, cores, OS, Python (no path, no host name)."""
    import os
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"Machine: {cpu} ({platform.machine()}), {os.cpu_count()} CPU cores, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


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
        return ", ".join(f"{k} {v:.2f}" for k, v in top) + f" (n={entry.importance_trials})"
    if not entry.run_id:
        return "-"
    return f"n/a ({entry.importance_trials} trials < {minimum})"


def row(entry: Entry, group: Group) -> list[str]:
    spread = entry.spread
    p = f"{_p(entry.p_value)} vs {entry.compared_with}" if entry.p_value is not None else "-"
    return [
        entry.rank_label,
        entry.cell,
        entry.plugin,
        f"{entry.mean:.3f} ± {entry.std:.3f}" if entry.mean is not None else "no completed trial",
        # Both ranked metrics lie in [0, 1]: the interval is shown within it.
        f"[{max(entry.ci_low, 0.0):.3f}, {min(entry.ci_high, 1.0):.3f}]" if entry.n >= 2 else "-",
        str(entry.n) if entry.n else "-",
        p,
        _p(entry.chance_p),
        _num(entry.test_accuracy),
        _lrd(entry.lrd_score, group),
        _lrd(entry.lrd_horizon, group, 0),
        _num(entry.param_count, 0),
        _config(entry) or "-",
        "/".join(str(entry.counts[s]) for s in STATUSES),
        f"{entry.total_seconds:.0f} s",
        f"{spread['median']:.3f} [{spread['q1']:.3f}, {spread['q3']:.3f}]" if spread else "-",
        _importance(entry, group.min_trials),
        entry.model_uri or "-",
    ]


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


def rich_tables(board: Leaderboard) -> list[Any]:
    from rich.markup import escape
    from rich.table import Table

    tables = []
    shown = [i for i, c in enumerate(COLUMNS) if c not in NARROW]  # the terminal is narrow; --format has them
    for group in board.groups:
        caption = "\n".join(preamble(group, board))
        table = Table(title=heading(group), caption=escape(caption), caption_justify="left")
        for i in shown:
            table.add_column(COLUMNS[i], overflow="fold")
        for entry in ranked_rows(group):
            cells = row(entry, group)
            table.add_row(*(escape(cells[i]) for i in shown))
        tables.append(table)
        importances = [(e.cell, _importance(e, group.min_trials)) for e in group.entries if e.run_id]
        if importances:
            imp = Table(title=f"hyperparameter importance · {heading(group)} (fANOVA over completed trials)")
            imp.add_column("cell")
            imp.add_column("importance (n = trials behind it)")
            for cell, text in importances:
                imp.add_row(cell, escape(text))
            tables.append(imp)
    return tables


def markdown(board: Leaderboard, images: dict[str, list[str]] | None = None) -> str:
    lines = []
    for group in board.groups:
        lines += [f"## {heading(group)}", ""]
        lines += [line + "  " for line in preamble(group, board)] + [""]
        lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += [
            "| " + " | ".join(_md_cell(c, k, e, board) for k, c in enumerate(row(e, group))) + " |"
            for e in ranked_rows(group)
        ]
        for image in (images or {}).get(group.setup.id, []):
            lines += ["", f"![{Path(image).stem}]({image})"]
        lines.append("")
    return "\n".join(lines)


def _md_cell(text: str, column: int, entry: Entry, board: Leaderboard) -> str:
    if column == MODEL_COLUMN and entry.model_uri:
        return f"[{text}]({model_link(entry, board.experiment_id)})"
    return text.replace("|", "\\|")


def to_csv(board: Leaderboard) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["task", "setup", *COLUMNS])
    for group in board.groups:
        for entry in ranked_rows(group):
            writer.writerow([group.setup.task, group.setup.id, *row(entry, group)])
    return out.getvalue()


def to_json(board: Leaderboard) -> str:
    return json.dumps(board.as_dict(), indent=2, default=str)


def to_html(board: Leaderboard, images: dict[str, list[Path]] | None = None, header: str = "") -> str:
    """A self-contained page: tables, and the plots embedded as data URIs."""
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><title>rnnbench leaderboard</title>',
        "<style>body{font-family:sans-serif;margin:2em;max-width:1600px}table{border-collapse:collapse;"
        "margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:nth-child(2),"
        "td:nth-child(3),td:nth-child(13),td:nth-child(17){text-align:left}img{max-width:640px;margin:0.5em}"
        "</style>",
        "</head><body>",
        "<h1>rnnbench leaderboard</h1>",
        header,
    ]
    for group in board.groups:
        parts.append(f"<h2>{html.escape(heading(group))}</h2>")
        parts += [f"<p>{html.escape(line)}</p>" for line in preamble(group, board)]
        parts.append('<table class="leaderboard"><thead><tr>')
        parts += [f"<th>{html.escape(c)}</th>" for c in COLUMNS]
        parts.append("</tr></thead><tbody>")
        for entry in ranked_rows(group):
            cells = [html.escape(c) for c in row(entry, group)]
            if entry.model_uri:
                cells[MODEL_COLUMN] = (
                    f'<a href="{html.escape(model_link(entry, board.experiment_id))}">{cells[MODEL_COLUMN]}</a>'
                )
            parts.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        parts.append("</tbody></table>")
        for image in (images or {}).get(group.setup.id, []):
            data = base64.b64encode(Path(image).read_bytes()).decode()
            parts.append(f'<img alt="{html.escape(Path(image).stem)}" src="data:image/png;base64,{data}">')
    parts.append("</body></html>")
    return "\n".join(parts)


def plots(board: Leaderboard, folder: Path) -> dict[str, list[Path]]:
    """Per set-up: LRD curves of each cell's best model (where LRD is measured), the ranked metric per
    seed and over the completed trials per cell, and the importances where there are any."""
    from rnnbench.tracking import open_client

    client = open_client(board.tracking_uri)
    folder.mkdir(parents=True, exist_ok=True)
    made: dict[str, list[Path]] = {}
    for group in board.groups:
        entries = [e for e in group.entries if e.run_id]
        stem = folder / group.setup.id
        paths = []
        curves = {e.cell: _curve(client, e.run_id) for e in entries}
        if any(len(c) > 1 for c in curves.values()):  # one bucket: no LRD measure, no curve to draw
            paths.append(_lrd_plot(group, curves, Path(f"{stem}-lrd-curves.png")))
        paths.append(_distribution_plot(group, entries, Path(f"{stem}-distribution.png")))
        if any(e.costs for e in entries):
            paths.append(cost_plot(heading(group), group.metric, entries, Path(f"{stem}-cost.png")))
        histories = {e.cell: [_history(client, r) for r in e.best_runs] for e in entries}
        if any(h for runs in histories.values() for h in runs):
            paths.append(_learning_curves(group, histories, Path(f"{stem}-learning-curves.png")))
        ranked = [e for e in entries if e.importance]
        if ranked:
            paths.append(_importance_plot(group, ranked, Path(f"{stem}-importance.png")))
        made[group.setup.id] = paths
    return made


def _figure() -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4), dpi=100)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _lrd_plot(group: Group, curves: dict[str, list[dict[str, float]]], path: Path) -> Path:
    figure, axis = _figure()
    for cell, curve in curves.items():
        if not curve:
            continue
        x = [max(r["low"], 1) for r in curve]
        y = [r["skill"] for r in curve]
        low = [r.get("skill_low", math.nan) for r in curve]
        high = [r.get("skill_high", math.nan) for r in curve]
        below = [0.0 if math.isnan(v) else max(s - v, 0.0) for s, v in zip(y, low, strict=True)]
        above = [0.0 if math.isnan(v) else max(v - s, 0.0) for s, v in zip(y, high, strict=True)]
        axis.errorbar(x, y, yerr=[below, above], marker="o", capsize=3, label=cell)
    axis.set_xscale("log", base=2)
    axis.set_ylim(-0.02, 1.02)
    axis.axhline(0.9, color="grey", linewidth=0.8, linestyle="--")
    axis.set_xlabel("distance (steps, log2 bucket lower edge)")
    axis.set_ylabel("normalised skill (95 % CI)")
    axis.set_title(f"{heading(group)}: LRD curves of each cell's best model", fontsize=9)
    axis.legend(fontsize=8)
    return _save(figure, path)


def _distribution_plot(group: Group, entries: list[Entry], path: Path) -> Path:
    figure, axis = _figure()
    labels = [e.cell for e in entries]
    axis.boxplot([e.trial_values or [math.nan] for e in entries], tick_labels=labels, showmeans=True)
    for k, entry in enumerate(entries, 1):  # the seeds the rank rests on, over the trials' spread
        axis.plot(
            [k] * len(entry.values), entry.values, "x", color="crimson", label="seeds" if k == 1 else None
        )
    if group.chance is not None and group.metric == "test_accuracy":
        axis.axhline(group.chance, color="grey", linestyle=":", linewidth=0.8, label="chance")
    axis.set_ylabel(group.metric)
    axis.set_title(f"{heading(group)}: {group.metric} over completed trials (box) and seeds (x)", fontsize=9)
    axis.legend(fontsize=8)
    return _save(figure, path)


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
    from matplotlib.ticker import NullFormatter

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
    for axis, label in ((axes[0], "parameters"), (axes[1], "training time (s)")):
        axis.set_xscale("log")
        axis.xaxis.set_minor_formatter(NullFormatter())  # labels at 2, 3, 4, 6 x 10^k overlapped
        axis.set_xlabel(f"{label} (log)")
        axis.grid(True, alpha=0.3)
    axes[0].set_ylabel(metric)
    axes[0].legend(fontsize=8)
    figure.suptitle(
        f"{title}: {metric} against cost, every completed trial; lines: Pareto fronts", fontsize=9
    )
    return _save(figure, path)


def _learning_curves(group: Group, histories: dict[str, list[list[tuple[int, float]]]], path: Path) -> Path:
    figure, axis = _figure()
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
    return _save(figure, path)


def _history(client: Any, run_id: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, "val_accuracy"))


def _importance_plot(group: Group, ranked: list[Entry], path: Path) -> Path:
    figure, axis = _figure()
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
    return _save(figure, path)


def _save(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path)
    return path


def _curve(client: Any, run_id: str) -> list[dict[str, float]]:
    import os

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = client.download_artifacts(run_id, "lrd_curve.csv", folder)
        except Exception:  # a run without its curve (older or failed): no line
            return []
        with open(path) as handle:
            return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(handle)]


def log_plots(board: Leaderboard, client: Any, run_id: str) -> list[str]:
    """Draw the board's plots and attach them to ``run_id`` (artifact folder leaderboard/)."""
    with tempfile.TemporaryDirectory() as folder:
        paths = [p for found in plots(board, Path(folder)).values() for p in found]
        for path in paths:
            client.log_artifact(run_id, str(path), artifact_path="leaderboard")
    return [f"leaderboard/{p.name}" for p in paths]


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
    header_md = "\n\n".join(header_lines)
    (folder / "README.md").write_text(
        f"# rnnbench reference leaderboard\n\n{header_md}\n\n{markdown(board, relative)}"
    )
    header_html = "".join(f"<p>{html.escape(line)}</p>" for line in header_lines)
    (folder / "index.html").write_text(to_html(board, images, header_html))
    return [folder / "README.md", folder / "index.html", *[p for paths in images.values() for p in paths]]
