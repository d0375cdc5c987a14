"""The published page of an LSTM-variant study (rnnbench.study): README.md, index.html, box plots."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from rnnbench.leaderboard_report import _p, _save, without_paths
from rnnbench.study import ALPHA, TEST_METRIC, TOP_FRACTION, VANILLA, Finding, TaskStudy

COLUMNS = ("cell", "completed trials", "best 10 % (n)", "test accuracy of the best (mean ± std)",
           "difference to vanilla", "Welch p", "Holm p", "verdict", "median over all trials")  # fmt: skip


def _label(cell: str) -> str:
    return f"vanilla ({cell})" if cell == VANILLA else cell


def rows(study: TaskStudy) -> list[list[str]]:
    table = []
    for c in study.comparisons:
        vanilla = c.cell == VANILLA
        table.append([
            _label(c.cell),
            str(len(c.all_test)),
            str(len(c.best)),
            f"{c.mean:.3f} ± {c.std:.3f}",
            "-" if vanilla else f"{c.difference:+.3f}",
            "-" if vanilla else _p(c.p),
            "-" if vanilla else _p(c.p_holm),
            c.verdict,
            f"{sorted(c.all_test)[len(c.all_test) // 2]:.3f}",
        ])  # fmt: skip
    return table


def intro(study: TaskStudy) -> str:
    s = study.settings
    try:
        given = json.loads(s.get("task_options") or "{}")
    except ValueError:
        given = {}
    options = ", ".join(f"{k}={v}" for k, v in given.items())
    return (
        f"Sweep `{study.sweep}`: task {study.task} ({options or 'default options'}), space {s.get('space')}, "
        f"sampler {s.get('sampler', 'random')}, {s.get('trials')} trials per cell, {s.get('epochs')} epochs, "
        f"seed {s.get('seed')}. The best {TOP_FRACTION:.0%} of each cell's completed trials by "
        f"{study.selection_metric} are compared on {TEST_METRIC} with Welch's t-test against vanilla; "
        f"Holm-adjusted over the variants, significant at p < {ALPHA}."
    )


def importance_line(study: TaskStudy) -> str:
    if not study.importance:
        return f"fANOVA: not computed ({study.importance_trials} completed trials; it needs 10)."
    ranked = sorted(study.importance.items(), key=lambda kv: kv[1], reverse=True)
    parts = ", ".join(f"{name} {share:.0%}" for name, share in ranked)
    return (
        f"fANOVA importance of {TEST_METRIC} over all {study.importance_trials} completed trials, pooled "
        f"over the variants: {parts}."
    )


def markdown(
    studies: list[TaskStudy], found: list[Finding], header: list[str], images: dict[str, list[str]]
) -> str:
    lines = ["# Greff et al.'s LSTM Odyssey, rerun with rnnbench", "", *[f"{h}\n" for h in header]]
    lines += [
        "## Findings of the paper, checked",
        "",
        "| finding | " + " | ".join(s.task for s in studies) + " |",
    ]
    lines.append("|---|" + "---|" * len(studies))
    for finding in found:
        lines.append(f"| {finding.claim} | " + " | ".join(finding.outcome[s.task] for s in studies) + " |")
    for study in studies:
        lines += ["", f"## {study.task}", "", intro(study), "", "| " + " | ".join(COLUMNS) + " |"]
        lines.append("|" + "---|" * len(COLUMNS))
        lines += ["| " + " | ".join(r) + " |" for r in rows(study)]
        lines += ["", importance_line(study), ""]
        lines += [f"![{name}]({name})" for name in images.get(study.sweep, [])]
    return without_paths("\n".join(lines)) + "\n"


def to_html(
    studies: list[TaskStudy], found: list[Finding], header: list[str], images: dict[str, list[Path]]
) -> str:
    """A self-contained page: the findings, one table per task, the plots embedded as data URIs."""
    e = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><title>rnnbench: the LSTM Odyssey</title>',
        "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;"
        "margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px}img{max-width:720px;margin:0.5em}</style>",
        "</head><body><h1>Greff et al.'s LSTM Odyssey, rerun with rnnbench</h1>",
        *[f"<p>{e(h)}</p>" for h in header],
        '<h2>Findings of the paper, checked</h2><table class="findings"><thead><tr><th>finding</th>',
        *[f"<th>{e(s.task)}</th>" for s in studies],
        "</tr></thead><tbody>",
    ]
    for finding in found:
        cells = "".join(f"<td>{e(finding.outcome[s.task])}</td>" for s in studies)
        parts.append(f"<tr><td>{e(finding.claim)}</td>{cells}</tr>")
    parts.append("</tbody></table>")
    for study in studies:
        parts += [
            f"<h2>{e(study.task)}</h2>",
            f"<p>{e(intro(study))}</p>",
            '<table class="study"><thead><tr>',
        ]
        parts += [f"<th>{e(c)}</th>" for c in COLUMNS] + ["</tr></thead><tbody>"]
        parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows(study)]
        parts += ["</tbody></table>", f"<p>{e(importance_line(study))}</p>"]
        for image in images.get(study.sweep, []):
            data = base64.b64encode(image.read_bytes()).decode()
            parts.append(f'<img alt="{e(image.stem)}" src="data:image/png;base64,{data}">')
    parts.append("</body></html>")
    return without_paths("\n".join(parts))


def plots(studies: list[TaskStudy], folder: Path) -> dict[str, list[Path]]:
    """Per task: box plots of the best trials per cell (as the paper's Figure 3) and the importances."""
    from rnnbench.leaderboard_report import _figure

    made: dict[str, list[Path]] = {}
    for study in studies:
        figure, axis = _figure()
        figure.set_size_inches(7.2, 4.2)
        axis.boxplot([c.best for c in study.comparisons], showmeans=True)
        axis.set_xticks(range(1, len(study.comparisons) + 1), [_label(c.cell) for c in study.comparisons])
        for k, c in enumerate(study.comparisons, start=1):
            axis.plot([k] * len(c.best), c.best, ".", color="grey")
            if c.significant:
                axis.annotate("*", (k, max(c.best)), ha="center", va="bottom", fontsize=14)
        axis.set_ylabel(f"{TEST_METRIC} (best {TOP_FRACTION:.0%} by {study.selection_metric})")
        axis.set_title(f"{study.task}: * = differs from vanilla (Welch, Holm, p < {ALPHA})", fontsize=9)
        axis.tick_params(axis="x", labelrotation=30, labelsize=8)
        paths = [_save(figure, folder / f"{study.sweep}-box.png")]
        if study.importance:
            figure, axis = _figure()
            ranked = sorted(study.importance.items(), key=lambda kv: kv[1])
            axis.barh([k for k, _ in ranked], [v for _, v in ranked])
            axis.set_xlabel(f"fANOVA importance of {TEST_METRIC} (pooled over variants)")
            axis.set_title(study.task)
            paths.append(_save(figure, folder / f"{study.sweep}-importance.png"))
        made[study.sweep] = paths
    return made


def publish(studies: list[TaskStudy], found: list[Finding], folder: Path, header: list[str]) -> list[Path]:
    """Write README.md and a self-contained index.html, with the plots beside them."""
    folder.mkdir(parents=True, exist_ok=True)
    images = plots(studies, folder)
    relative = {sweep: [p.name for p in paths] for sweep, paths in images.items()}
    (folder / "README.md").write_text(markdown(studies, found, header, relative))
    (folder / "index.html").write_text(to_html(studies, found, header, images))
    return [folder / "README.md", folder / "index.html", *[p for paths in images.values() for p in paths]]
