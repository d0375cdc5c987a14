"""Text that leaves rnnbench for a page or a data file names no path of this machine."""

from __future__ import annotations

import re

# An absolute path, not part of a URL: "/home/me/data/x.csv" -> "x.csv".
ABSOLUTE_PATH = re.compile(r"(?<![\w:./])/(?:[^\s'\",}\]/]+/)+([^\s'\",}\]/]+)")
SQLITE_URI = re.compile(r"sqlite:///([^\s'\",}\]]+?)(?=\.?(?:[\s'\",}\]]|$))")


def without_paths(text: str) -> str:
    """``text`` with every absolute path cut to its last part (``sqlite:////abs/mlflow.db`` ->
    ``sqlite:///mlflow.db``)."""
    text = SQLITE_URI.sub(lambda m: "sqlite:///" + m.group(1).rstrip("/").rsplit("/", 1)[-1], text)
    return ABSOLUTE_PATH.sub(r"\1", text)
