"""The leaderboard as a table, Markdown, HTML, CSV or JSON, with its plots, and its published page."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import tempfile
from pathlib import Path
from typing import Any

from rnnbench.leaderboard import Entry, Leaderboard
from rnnbench.reports import STATUSES

COLUMNS = ("rank", "cell", "plugin", "test acc", "LRD score", "LRD horizon", "params", "configuration",
           "done/pruned/div/fail", "trial time", "spread (median [IQR])")  # fmt: skip


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _config(entry: Entry) -> str:
    parts = []
    for key, value in entry.config.items():
        if key in ("lr", "clip", "momentum", "input_noise") and value not in ("none", "None"):
            parts.append(f"{key} {float(value):.2g}")
        else:
            parts.append(f"{key} {value}")
    return " ".join(parts)


def _with_reseed(entry: Entry, key: str) -> str:
    value = _num(getattr(entry, key))
    if entry.reseed and key in entry.reseed:
        stats = entry.reseed[key]
        return f"{stats['mean']:.3f} ± {stats['std']:.3f} (n={entry.reseed['n']}; search {value})"
    return value


def row(entry: Entry) -> list[str]:
    spread = entry.spread
    return [
        str(entry.rank),
        entry.cell,
        entry.plugin,
        _with_reseed(entry, "test_accuracy"),
        _with_reseed(entry, "lrd_score"),
        _num(entry.lrd_horizon, 0),
        _num(entry.param_count, 0),
        _config(entry) or "-",
        "/".join(str(entry.counts[s]) for s in STATUSES),
        f"{entry.total_seconds:.0f} s",
        f"{spread['median']:.3f} [{spread['q1']:.3f}, {spread['q3']:.3f}]" if spread else "-",
    ]


def importance_rows(entries: list[Entry]) -> tuple[list[str], list[list[str]]]:
    params = sorted({p for e in entries if e.importance for p in e.importance})
    rows = [
        [e.cell, *(_num((e.importance or {}).get(p), 2) for p in params)] for e in entries if e.importance
    ]
    return params, rows


def rich_tables(board: Leaderboard) -> list[Any]:
    from rich.markup import escape
    from rich.table import Table

    tables = []
    for task in board.tasks():
        entries = board.for_task(task)
        table = Table(title=f"{task}: ranked by {board.metric} (best trial per cell, chosen on validation)")
        shown = [i for i, c in enumerate(COLUMNS) if c != "plugin"]  # the terminal is narrow; --format has it
        for i in shown:
            table.add_column(COLUMNS[i], overflow="fold")
        for entry in entries:
            cells = row(entry)
            table.add_row(*(escape(cells[i]) for i in shown))
        tables.append(table)
        params, rows = importance_rows(entries)
        if rows:
            imp = Table(title=f"{task}: hyperparameter importance (fANOVA over completed trials)")
            for column in ("cell", *params):
                imp.add_column(column)
            for r in rows:
                imp.add_row(*r)
            tables.append(imp)
    return tables


def markdown(board: Leaderboard, images: dict[str, list[str]] | None = None) -> str:
    lines = []
    for task in board.tasks():
        entries = board.for_task(task)
        lines += [f"## {task}", "", f"Ranked by `{board.metric}`; best trial per cell chosen on validation, "
                  "reported on test.", ""]  # fmt: skip
        lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row(e)) + " |" for e in entries]
        params, rows = importance_rows(entries)
        if rows:
            lines += ["", "Hyperparameter importance (fANOVA over each cell's completed trials):", ""]
            lines += ["| cell | " + " | ".join(params) + " |", "|" + "---|" * (len(params) + 1)]
            lines += ["| " + " | ".join(r) + " |" for r in rows]
        for image in (images or {}).get(task, []):
            lines += ["", f"![{Path(image).stem}]({image})"]
        lines.append("")
    return "\n".join(lines)


def to_csv(board: Leaderboard) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["task", *COLUMNS])
    for task in board.tasks():
        for entry in board.for_task(task):
            writer.writerow([task, *row(entry)])
    return out.getvalue()


def to_json(board: Leaderboard) -> str:
    return json.dumps(board.as_dict(), indent=2, default=str)


def to_html(board: Leaderboard, images: dict[str, list[Path]] | None = None, header: str = "") -> str:
    """A self-contained page: tables, and the plots embedded as data URIs."""
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><title>rnnbench leaderboard</title>',
        "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;"
        "margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:nth-child(2),"
        "td:nth-child(3),td:nth-child(8){text-align:left}img{max-width:640px;margin:0.5em}</style>",
        "</head><body>",
        "<h1>rnnbench leaderboard</h1>",
        header,
    ]
    for task in board.tasks():
        entries = board.for_task(task)
        parts.append(f"<h2>{html.escape(task)}</h2>")
        parts.append(f"<p>Ranked by <code>{html.escape(board.metric)}</code>; best trial per cell chosen on "
                     "validation, reported on test.</p>")  # fmt: skip
        parts.append('<table class="leaderboard"><thead><tr>')
        parts += [f"<th>{html.escape(c)}</th>" for c in COLUMNS]
        parts.append("</tr></thead><tbody>")
        for entry in entries:
            parts.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row(entry)) + "</tr>")
        parts.append("</tbody></table>")
        params, rows = importance_rows(entries)
        if rows:
            parts.append('<h3>Hyperparameter importance (fANOVA)</h3><table class="importance"><tr>')
            parts += [f"<th>{html.escape(c)}</th>" for c in ("cell", *params)]
            parts.append("</tr>")
            parts += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows]
            parts.append("</table>")
        for image in (images or {}).get(task, []):
            data = base64.b64encode(Path(image).read_bytes()).decode()
            parts.append(f'<img alt="{html.escape(Path(image).stem)}" src="data:image/png;base64,{data}">')
    parts.append("</body></html>")
    return "\n".join(parts)


def plots(board: Leaderboard, folder: Path) -> dict[str, list[Path]]:
    """Per task: LRD curves of each cell's best model, the test-metric distribution per cell, and
    the importance per cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rnnbench.tracking import open_client

    client = open_client(board.tracking_uri)
    folder.mkdir(parents=True, exist_ok=True)
    made: dict[str, list[Path]] = {}
    for task in board.tasks():
        entries = [e for e in board.for_task(task) if e.run_id]
        paths = []
        figure, axis = plt.subplots(figsize=(6.4, 4), dpi=100)
        for entry in entries:
            curve = _curve(client, entry.run_id)
            if curve:
                axis.plot(
                    [max(r["low"], 1) for r in curve],
                    [r["skill"] for r in curve],
                    marker="o",
                    label=entry.cell,
                )
        axis.set_xscale("log", base=2)
        axis.set_ylim(-0.02, 1.02)
        axis.axhline(0.9, color="grey", linewidth=0.8, linestyle="--")
        axis.set_xlabel("distance (steps, log2 bucket lower edge)")
        axis.set_ylabel("normalised skill")
        axis.set_title(f"{task}: LRD curves of each cell's best model")
        axis.legend(fontsize=8)
        paths.append(_save(figure, folder / f"{task}-lrd-curves.png"))

        figure, axis = plt.subplots(figsize=(6.4, 4), dpi=100)
        values = [_completed_metric(client, board, e) for e in entries]
        axis.boxplot(values, tick_labels=[e.cell for e in entries], showmeans=True)
        axis.set_ylabel(board.metric)
        axis.set_title(f"{task}: {board.metric} over all completed trials")
        paths.append(_save(figure, folder / f"{task}-distribution.png"))

        ranked = [e for e in entries if e.importance]
        if ranked:
            params = sorted({p for e in ranked for p in e.importance or {}})
            figure, axis = plt.subplots(figsize=(6.4, 4), dpi=100)
            width = 0.8 / len(ranked)
            for k, entry in enumerate(ranked):
                heights = [(entry.importance or {}).get(p, 0.0) for p in params]
                axis.bar([i + k * width for i in range(len(params))], heights, width, label=entry.cell)
            axis.set_xticks([i + 0.4 - width / 2 for i in range(len(params))], params)
            axis.set_ylabel("fANOVA importance")
            axis.set_title(f"{task}: hyperparameter importance")
            axis.legend(fontsize=8)
            paths.append(_save(figure, folder / f"{task}-importance.png"))
        made[task] = paths
    return made


def _save(figure: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
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


def _completed_metric(client: Any, board: Leaderboard, entry: Entry) -> list[float]:
    query = f"tags.sweep = '{entry.sweep}' and tags.cell = '{entry.cell}' and tags.status = 'completed'"
    query += " and tags.optuna_trial != ''"
    experiment = client.get_run(entry.run_id).info.experiment_id
    return [r.data.metrics[board.metric] for r in client.search_runs([experiment], query, max_results=50_000)
            if board.metric in r.data.metrics]  # fmt: skip


def publish(board: Leaderboard, folder: Path, header_lines: list[str]) -> list[Path]:
    """Write README.md (tables and plots), a self-contained index.html, and the PNG plots."""
    folder.mkdir(parents=True, exist_ok=True)
    images = plots(board, folder)
    relative = {task: [p.name for p in paths] for task, paths in images.items()}
    header_md = "\n\n".join(header_lines)
    (folder / "README.md").write_text(
        f"# rnnbench reference leaderboard\n\n{header_md}\n\n{markdown(board, relative)}"
    )
    header_html = "".join(f"<p>{html.escape(line)}</p>" for line in header_lines)
    (folder / "index.html").write_text(to_html(board, images, header_html))
    return [folder / "README.md", folder / "index.html", *[p for paths in images.values() for p in paths]]
