"""The committed pages (leaderboard/, leaderboard/odyssey/) are rebuilt from the data committed beside them
(leaderboard/data/) and found identical but for their generation line: a page can never be stale or
unreproducible. Both are checked as pages too: every table row complete, every image decodes, no path."""

from __future__ import annotations

import base64
import html
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rnnbench.cli import app
from tests.conftest import REPO
from tests.pages import chromium, in_a_1280_pixel_browser, incomplete_rows

PAGES = {"leaderboard": "--publish", "leaderboard/odyssey": "--out"}
GENERATED = re.compile(r"Generated [^`]* with `(rnnbench [^`]*)`")


def _command(folder: Path) -> tuple[list[str], str | None]:
    """The command the page names in its generation line, and its note (the 'Reproduce:' line)."""
    text = (folder / "README.md").read_text()
    found = GENERATED.search(text)
    assert found, f"{folder}/README.md names no command"
    note = next(
        (html.unescape(line.strip()) for line in text.splitlines() if line.startswith("Reproduce:")), None
    )
    return shlex.split(found.group(1))[1:], note


def _without_generation_line(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not GENERATED.search(line))


@pytest.mark.parametrize("page", sorted(PAGES))
def test_a_committed_page_is_rebuilt_from_its_committed_data(page, tmp_path, monkeypatch):
    folder = REPO / page
    args, note = _command(folder)
    assert "--from" in args, f"{page} must be built from committed data (leaderboard/data/), not a store"
    flag = PAGES[page]
    if flag in args:  # the target folder: here a temporary one
        at = args.index(flag)
        args = args[:at] + args[at + 2 :]
    args += [flag, str(tmp_path / "page")] + (["--note", note] if note else [])
    monkeypatch.chdir(REPO)  # the page names its data relative to the repository
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rebuilt = {p.name: p for p in (tmp_path / "page").iterdir()}
    committed = {p.name: p for p in folder.iterdir() if p.is_file()}
    assert rebuilt.keys() == committed.keys()
    for name, path in committed.items():
        if name.endswith(".png"):
            assert path.read_bytes() == rebuilt[name].read_bytes(), (
                f"{page}/{name} is not what its data draws"
            )
        else:
            assert _without_generation_line(path.read_text()) == _without_generation_line(
                rebuilt[name].read_text()
            ), f"{page}/{name} is not what its data gives"


@pytest.mark.parametrize("page", sorted(PAGES))
def test_a_committed_page_is_whole(page):
    html = (REPO / page / "index.html").read_text()
    assert incomplete_rows(html) == [], "every row of every table as wide as its header"
    images = html.split('src="data:image/png;base64,')[1:]
    assert images, "the page embeds its plots"
    for encoded in images:
        data = base64.b64decode(encoded.split('"', 1)[0], validate=True)
        assert data.startswith(b"\x89PNG"), "an embedded image decodes"
    for text in (html, (REPO / page / "README.md").read_text()):
        assert "/work/" not in text and "/home/" not in text and "/tmp/" not in text, "no path of the machine"


@pytest.mark.parametrize("page", sorted(PAGES))
def test_a_committed_page_fits_a_1280_pixel_screen_in_chromium(page, tmp_path):
    """No sideways scroll at 1,280 pixels and every image decoded, in headless Chromium (a screenshot is taken)."""
    if chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it")
    seen = in_a_1280_pixel_browser(REPO / page / "index.html", tmp_path)
    assert seen["scroll"] <= seen["inner"] == 1280, seen
    assert seen["images"] >= 2 and seen["decoded"] == seen["images"], seen
    assert seen["incomplete"] == 0, "every row of every table complete, as Chromium parses the page"
