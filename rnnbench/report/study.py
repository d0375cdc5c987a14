"""The published page of an LSTM-variant study (rnnbench.analysis.study): README.md, index.html, plots.

Every piece of text is scrubbed of paths and escaped before it becomes markup, never the page after:
a page-wide pass would run over the markup and the embedded images."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from rnnbench.analysis.stats import ALPHA, Verdict
from rnnbench.analysis.study import TEST_METRIC, TOP_FRACTION, VANILLA, Finding, TaskStudy
from rnnbench.report.leaderboard import verdict_text
from rnnbench.report.page import (
    HTML_MARKER,
    MARKER,
    PAGE_STYLE,
    budget_table,
    html_table,
    md_escape,
    new_figure,
    safe_name,
    save_figure,
)
from rnnbench.util.text import without_paths

COLUMNS = ("cell", "completed trials (left chance)", "median over all trials", "best 10 % (n)",
           "best 10 %: test accuracy (mean ± std)", "best 10 % vs vanilla [95 % CI] (Welch)",
           "best 10 % verdict", "paired vs vanilla [95 % CI] (Wilcoxon, configs)", "paired verdict")  # fmt: skip


def _label(cell: str) -> str:
    return f"vanilla ({cell})" if cell == VANILLA else cell


def _difference(verdict: Verdict | None, vanilla: bool, paired: bool = False) -> str:
    if verdict is None:
        return "reference" if vanilla else "-"
    text = f"{verdict.difference:+.3f} [{verdict.low:+.3f}, {verdict.high:+.3f}]"
    return f"{text}, {verdict.n} configs" if paired else text


def rows(study: TaskStudy) -> list[list[str]]:
    table = []
    for c in study.comparisons:
        vanilla = c.cell == VANILLA
        table.append([
            _label(c.cell), f"{c.trials} ({c.learned})", f"{c.median:.3f}", str(len(c.best)),
            f"{c.mean:.3f} ± {c.std:.3f}", _difference(c.greff, vanilla),
            "reference" if vanilla else verdict_text(c.greff),
            _difference(c.paired, vanilla, paired=True),
            "reference" if vanilla else verdict_text(c.paired),
        ])  # fmt: skip
    return table


def budget_rows(study: TaskStudy) -> tuple[list[str], list[list[str]]]:
    """The study's budget table, vanilla first (rnnbench.report.page.budget_table)."""
    return budget_table([(_label(c.cell), c.budget) for c in study.comparisons])


def intro(study: TaskStudy) -> str:
    s = study.settings
    try:
        given = json.loads(s.get("task_options") or "{}")
    except ValueError:
        given = {}
    options = ", ".join(f"{k}={v}" for k, v in given.items())
    chance = "" if study.chance is None else f" Chance accuracy {study.chance:.3f}."
    paired = (" Every cell trained the same configurations: each variant is also compared configuration by "
              "configuration (Wilcoxon signed-rank, paired bootstrap CI, paired TOST).") if study.paired else ""  # fmt: skip
    return without_paths(
        f"Sweep `{study.sweep}`: task {study.task} ({options or 'default options'}), space {s.get('space')}, "
        f"sampler {s.get('sampler', 'random')}, {s.get('trials')} trials per cell, up to {s.get('epochs')} epochs, "
        f"seed {s.get('seed')}.{_ran_on(s)}{chance} The best {TOP_FRACTION:.0%} of each cell's completed trials by "
        f"{study.selection_metric} are compared on {TEST_METRIC} with Welch's t-test against vanilla "
        f"(Greff et al.'s analysis).{paired} Verdicts are three-way: better/worse (Holm-adjusted p < {ALPHA}), "
        f"equivalent (two one-sided tests within ±{study.margin:g}, Holm-adjusted), or inconclusive with the "
        "smallest difference detectable at 80 % power (CIs are not adjusted; verdicts are); a comparison whose vanilla is not above chance, or whose "
        "trials mostly sit at chance, is inconclusive: did not learn at this budget."
    )


def _ran_on(settings: dict[str, str]) -> str:
    parts = [f" {settings['machine']}" if settings.get("machine") else "",
             f" Trials ran for {settings['wall_minutes']} min of wall time (pauses between sittings left out), "
             f"median {settings['trial_seconds']} s per trial." if settings.get("wall_minutes") else ""]  # fmt: skip
    return (parts[0] + ".") * bool(parts[0]) + parts[1]


def importance_line(study: TaskStudy) -> str:
    if not study.importance:
        return (f"fANOVA: not computed ({study.importance_trials} completed trials left chance; it needs "
                "10).")  # fmt: skip
    ranked = sorted(study.importance.items(), key=lambda kv: kv[1], reverse=True)
    parts = ", ".join(f"{name} {share:.0%}" for name, share in ranked)
    return (
        f"fANOVA over the {study.importance_trials} completed trials that left chance, pooled over the cells: "
        f"the fraction of {TEST_METRIC}'s variance each hyperparameter explains alone (main effects, not "
        f"normalised): {parts}."
    )


def budget_caption(study: TaskStudy) -> str:
    return (f"Budget curves (Dodge et al. 2019): the expected best {study.selection_metric} after n trials drawn "
            f"from each cell's completed trials, and in brackets the expected {TEST_METRIC} of that pick.")  # fmt: skip


def markdown(
    studies: list[TaskStudy], found: list[Finding], header: list[str], images: dict[str, list[str]]
) -> str:
    e = md_escape
    lines = [
        MARKER,
        "",
        "# Greff et al.'s LSTM Odyssey, rerun with rnnbench",
        "",
        *[f"{e(without_paths(h))}\n" for h in header],
    ]
    lines += [
        "## Findings of the paper, checked",
        "",
        "| finding | " + " | ".join(e(s.task) for s in studies) + " |",
    ]
    lines.append("|---|" + "---|" * len(studies))
    for finding in found:
        lines.append(f"| {e(finding.claim)} | " + " | ".join(e(finding.text(s.task)) for s in studies) + " |")
    for study in studies:
        lines += ["", f"## {e(study.task)}", "", e(intro(study)), "", "| " + " | ".join(COLUMNS) + " |"]
        lines.append("|" + "---|" * len(COLUMNS))
        lines += ["| " + " | ".join(map(e, r)) + " |" for r in rows(study)]
        header_row, table = budget_rows(study)
        lines += ["", e(budget_caption(study)), "", "| " + " | ".join(header_row) + " |",
                  "|" + "---|" * len(header_row), *["| " + " | ".join(map(e, r)) + " |" for r in table]]  # fmt: skip
        lines += ["", e(importance_line(study)), ""]
        lines += [f"![{name}]({name})" for name in images.get(study.sweep, [])]
    return "\n".join(lines) + "\n"


def to_html(
    studies: list[TaskStudy], found: list[Finding], header: list[str], images: dict[str, list[Path]]
) -> str:
    """A self-contained page: the findings, one table per task, the plots embedded as data URIs."""
    e = html.escape
    parts = [
        "<!doctype html>",
        f'<html lang="en"><head><meta charset="utf-8">{HTML_MARKER}<title>rnnbench: the LSTM Odyssey</title>',
        PAGE_STYLE,
        "</head><body><h1>Greff et al.'s LSTM Odyssey, rerun with rnnbench</h1>",
        *[f"<p>{e(without_paths(h))}</p>" for h in header],
        "<h2>Findings of the paper, checked</h2>",
        *html_table(["finding", *(s.task for s in studies)],
                [[f.claim, *(f.text(s.task) for s in studies)] for f in found], "findings"),
    ]  # fmt: skip
    for study in studies:
        parts += [
            f"<h2>{e(study.task)}</h2>",
            f"<p>{e(intro(study))}</p>",
            *html_table(COLUMNS, rows(study), "study"),
        ]
        header_row, table = budget_rows(study)
        parts += [f"<p>{e(budget_caption(study))}</p>", *html_table(header_row, table, "budget")]
        parts.append(f"<p>{e(importance_line(study))}</p>")
        for image in images.get(study.sweep, []):
            data = base64.b64encode(image.read_bytes()).decode()
            parts.append(f'<img alt="{e(image.stem)}" src="data:image/png;base64,{data}">')
    parts.append("</body></html>")
    return "\n".join(parts)


def plots(studies: list[TaskStudy], folder: Path) -> dict[str, list[Path]]:
    """Per task: box plots of the best trials per cell (as the paper's Figure 3), budget curves, importances."""

    made: dict[str, list[Path]] = {}
    for study in studies:
        stem = safe_name(study.sweep)
        fig, axis = new_figure()
        fig.set_size_inches(7.2, 4.2)
        axis.boxplot([c.best for c in study.comparisons], showmeans=True)
        axis.set_xticks(range(1, len(study.comparisons) + 1), [_label(c.cell) for c in study.comparisons])
        for k, c in enumerate(study.comparisons, start=1):
            axis.plot([k] * len(c.best), c.best, ".", color="grey")
            if c.greff is not None and c.greff.kind in ("better", "worse"):
                axis.annotate("*", (k, max(c.best)), ha="center", va="bottom", fontsize=14)
        if study.chance is not None:
            axis.axhline(study.chance, color="grey", linestyle=":", linewidth=0.8)
        axis.set_ylabel(f"{TEST_METRIC} (best {TOP_FRACTION:.0%})")
        axis.set_title(
            f"{study.task}: * = better or worse than vanilla (Welch, Holm); dotted: chance", fontsize=9
        )
        axis.tick_params(axis="x", labelrotation=30, labelsize=9)
        paths = [save_figure(fig, folder / f"{stem}-box.png")]
        fig, axis = new_figure()
        for c in study.comparisons:
            ns = [p.n for p in c.budget]
            axis.plot(ns, [p.best for p in c.budget], marker=".", label=_label(c.cell))
        axis.set_xlabel("trials (n)")
        axis.set_ylabel(f"expected {study.selection_metric}, best of n")
        axis.set_title(f"{study.task}: expected best after n trials (Dodge et al. 2019)", fontsize=9)
        axis.legend(fontsize=8, ncol=2)
        axis.grid(True, alpha=0.3)
        paths.append(save_figure(fig, folder / f"{stem}-budget.png"))
        if study.importance:
            fig, axis = new_figure()
            ranked = sorted(study.importance.items(), key=lambda kv: kv[1])
            axis.barh([k for k, _ in ranked], [v for _, v in ranked])
            axis.set_xlabel(f"fraction of {TEST_METRIC}'s variance (fANOVA, trials that learned)")
            axis.set_title(f"{study.task} ({study.importance_trials} trials)", fontsize=9)
            paths.append(save_figure(fig, folder / f"{stem}-importance.png"))
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
