"""Checks of the pages rnnbench writes, shared by the tests: every HTML table row complete."""

from __future__ import annotations

import html
from html.parser import HTMLParser
from pathlib import Path


class _Tables(HTMLParser):
    """Each table's rows as their widths (cells, colspans counted), and each row's first cell's text."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[tuple[int, str]]] = []
        self._depth = 0
        self._row: list[int] | None = None
        self._first = ""
        self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row, self._first = [], ""
        elif tag in ("td", "th") and self._row is not None:
            self._row.append(int(dict(attrs).get("colspan") or 1))
            self._in_cell = len(self._row) == 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr" and self._row is not None:
            self.tables[-1].append((sum(self._row), self._first))
            self._row = None
        elif tag in ("td", "th"):
            self._in_cell = False

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self._first += data


def incomplete_rows(page: str) -> list[str]:
    """Rows whose width differs from their table's first row: '' when every table is complete."""
    parser = _Tables()
    parser.feed(page)
    wrong = []
    for k, rows in enumerate(parser.tables):
        if not rows:
            wrong.append(f"table {k} has no row")
            continue
        width = rows[0][0]
        wrong += [
            f"table {k}: row {first!r} has {n} cells, the header {width}" for n, first in rows if n != width
        ]
    return wrong


def table_count(page: str) -> int:
    parser = _Tables()
    parser.feed(page)
    return len(parser.tables)


PROBE = (
    "<script>window.addEventListener('load',()=>{const i=[...document.images];"
    "const w=r=>[...r.cells].reduce((a,c)=>a+c.colSpan,0);document.title=JSON.stringify("
    "{scroll:document.documentElement.scrollWidth,inner:window.innerWidth,images:i.length,"
    "decoded:i.filter(x=>x.complete&&x.naturalWidth>0).length,"
    "incomplete:[...document.querySelectorAll('table')].filter(t=>[...t.rows].some(r=>w(r)!==w(t.rows[0]))).length"
    "})});</script>"
)


def chromium() -> str | None:
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


def in_a_1280_pixel_browser(page: Path, work: Path) -> dict[str, int]:
    """Load ``page`` in headless Chromium at 1,280 x 900 pixels (a screenshot beside it) and return the page's
    scroll width, the window's inner width, its images, how many decoded, and how many tables have a row
    whose width (colspans counted) differs from their first row's, as the browser built them."""
    import json
    import subprocess

    browser = chromium()
    assert browser, "Chromium is needed (apt-get install chromium)"
    probe = work / f"probe-{page.parent.name}-{page.name}"
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={work / 'profile'}",
             "--window-size=1280,900", "--hide-scrollbars", "--virtual-time-budget=5000"]  # fmt: skip
    dom = subprocess.run([browser, *flags, "--dump-dom", probe.resolve().as_uri()], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    subprocess.run([browser, *flags, f"--screenshot={work / (probe.stem + '.png')}", probe.resolve().as_uri()],
                   capture_output=True, timeout=120)  # fmt: skip
    title = (
        html.unescape(dom.stdout.split("<title>")[1].split("</title>")[0]) if "<title>" in dom.stdout else ""
    )
    assert title.startswith("{"), f"the page's load handler never ran (a broken page?): title {title[:200]!r}"
    return json.loads(title)
