"""What every published page shares: its header, its marker, its style, escaped tables, figures, file names,
and the checks before a folder is written."""

from __future__ import annotations

import hashlib
import html
import re
import shlex
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rnnbench.errors import RnnbenchError
from rnnbench.util.text import without_paths
from rnnbench.version import __version__

UI_URL = "http://127.0.0.1:5000"  # where `rnnbench ui` serves the store


def generated_line(command: str) -> str:
    """The generation line of a published page: the one line that differs between two builds."""
    return f"Generated {time.strftime('%Y-%m-%d %H:%M %Z')} by rnnbench {__version__} with `{command}`."


def command_line(command: str, given: dict[str, str | None]) -> str:
    """``command`` with the flags that were given, quoted as a shell would need them."""
    return " ".join([command, *(f"{k} {shlex.quote(v)}" for k, v in given.items() if v)])


def page_header(
    command: str, store: str, lines: list[str] | tuple[str, ...] = (), note: str | None = None
) -> list[str]:
    """A published page's opening lines: how it was made, from which store, what else it must say, the note;
    a published page names no path of this machine."""
    header = [generated_line(command), f"MLflow store {store}.", *lines, *([note] if note else [])]
    return [without_paths(line) for line in header]


MARKER = "<!-- Written by rnnbench: `rnnbench leaderboard --publish` and `rnnbench odyssey-report` rewrite this file. -->"


HTML_MARKER = '<meta name="generator" content="rnnbench">'


# Fits a 1,280-pixel screen: tables wrap their text cells, numbers never wrap, images scale to the page.
PAGE_STYLE = (
    "<style>body{font-family:sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;line-height:1.35}"
    "table{border-collapse:collapse;margin:0.6em 0 1.4em;font-size:14px}caption{text-align:left;"
    "font-weight:bold;padding:0.3em 0}td,th{border:1px solid #ccc;padding:3px 7px;vertical-align:top}"
    "th{background:#f3f3f3;text-align:left}td.num{text-align:right;white-space:nowrap}"
    "td.text{overflow-wrap:break-word}td:first-child{white-space:nowrap}img{max-width:100%;height:auto;margin:0.5em 0;display:block}</style>"
)


def md_table(header: list[str] | tuple[str, ...], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(map(md_escape, header)) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(map(md_escape, r)) + " |" for r in rows]]  # fmt: skip


def md_escape(text: str) -> str:
    """Text a user may have typed, safe in a Markdown table cell (no raw HTML, no column break)."""
    return html.escape(text, quote=False).replace("|", "\\|")


def html_table(
    header: list[str] | tuple[str, ...], rows: list[list[str]], css: str, caption: str = ""
) -> list[str]:
    """A table of escaped text, numbers right-aligned and unwrapped (as every table of the pages)."""
    e = html.escape
    title = f"<caption>{e(caption)}</caption>" if caption else ""
    cells = ["<tr>" + "".join(f'<td class="{cell_class(c)}">{e(c)}</td>' for c in r) + "</tr>" for r in rows]
    return [f'<table class="{css}">{title}<thead><tr>', *[f"<th>{e(c)}</th>" for c in header],
            "</tr></thead><tbody>", *cells, "</tbody></table>"]  # fmt: skip


def cell_class(text: str) -> str:
    return "num" if NUMERIC.match(text) else "text"


NUMERIC = re.compile(r"^[-+=<]?[\d.]+( ± [\d.]+)?( \[[-+\d., ]+\])?( s)?$|^-$")


def safe_name(text: str) -> str:
    """The one way a set-up id, label or sweep name becomes a file name: no separator, no '..', no leading
    dot, at most 80 characters, and unique (a name that had to change ends in a hash of the original)."""
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in text)
    cleaned = cleaned.replace("..", "_").lstrip(".") or "unnamed"
    if cleaned == text and len(text) <= 80:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{cleaned[:71]}-{digest}"


def new_figure() -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4), dpi=100)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def log_axis(axis: Any, base: float = 10, values: Iterable[float] = ()) -> None:
    """A log-scale x axis labelled with plain numbers (0.2, 40, 1024, 20k, 2M) at its major ticks only, not
    matplotlib's mathtext powers (10^5, 2^3). Where ``values`` hold fewer than two powers of ten the ticks
    are at 1, 2 and 5 times a power of ten: at decades alone, a range such as 0.15-0.6 s had no label."""
    import math

    from matplotlib import ticker

    axis.set_xscale("log", base=base)
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    if base == 10 and positive:
        decades = math.floor(math.log10(max(positive))) - math.ceil(math.log10(min(positive))) + 1
        if decades < 2:
            axis.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: plain_number(value)))
    axis.xaxis.set_minor_formatter(ticker.NullFormatter())  # labels at 2, 3, 4, 6 x 10^k overlapped


def plain_number(value: float) -> str:
    """A tick value as a short plain number: 0.5, 40, 1024, 16.4k, 2M (a suffix from 10,000 on)."""
    if abs(value) >= 1e4:
        for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(value) >= scale:
                return f"{value / scale:.3g}{suffix}"
    return f"{value:g}"


def save_figure(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path)
    return path


class PublishError(RnnbenchError):
    """A page cannot be published there: the target is a file, or holds a page rnnbench did not write."""


def check_target(folder: Path, force: bool, flag: str) -> None:
    """Refuse, before any work, a target that is a file, or a folder whose README.md or index.html rnnbench did
    not write (no marker, no generation line), unless ``force``."""
    if folder.exists() and not folder.is_dir():
        raise PublishError(
            f"{flag} {folder}: is a file; give a folder for README.md, index.html and the plots"
        )
    if force:
        return
    for name, mark in (("README.md", MARKER), ("index.html", HTML_MARKER)):
        path = folder / name
        if path.is_file():
            text = path.read_text(errors="replace")
            if mark not in text and not re.search(r"Generated [^\n]* by rnnbench ", text):
                raise PublishError(f"{flag} {folder}: {name} there was not written by rnnbench; publishing would "
                                   "overwrite it (choose another folder, or --force)")  # fmt: skip


def published_count(folder: Path, written: list[Path]) -> int:
    """How many of ``written`` are files in ``folder`` (what "Published N files" may claim)."""
    inside = folder.resolve()
    return len({p.resolve() for p in written if p.resolve().parent == inside and p.is_file()})


BUDGETS = (1, 5, 10)  # the budget table's columns, and N


def budget_table(curves: list[tuple[str, list[Any]]]) -> tuple[list[str], list[list[str]]]:
    """The budget table (Dodge et al. 2019) of labelled budget curves: per row, the expected best validation
    value after n trials and, in brackets, the expected test value of that pick, at n = 1, 5, 10 and N."""
    if not curves:
        return [], []
    most = max(len(points) for _, points in curves)
    ns = sorted({n for n in (*BUDGETS, most) if n <= most})
    rows = []
    for label, points in curves:
        by_n = {p.n: p for p in points}
        cells = []
        for n in ns:
            point = by_n.get(n)
            test = "" if point is None or point.test is None else f" (test {point.test:.3f})"
            cells.append("-" if point is None else f"{point.best:.3f}{test}")
        rows.append([label, *cells])
    return ["cell", *(f"n = {n}" for n in ns)], rows
