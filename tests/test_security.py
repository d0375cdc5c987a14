"""What listens where: the embedded Ray of a sweep binds loopback only."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

LISTENERS = textwrap.dedent(
    """
    import json, time
    import psutil, ray
    from rnnbench.sweep.cluster import connect, disconnect
    from rnnbench.sweep.settings import SweepSettings

    started = connect(SweepSettings())  # no --address: the embedded Ray a default sweep starts
    ray.get(ray.remote(lambda: 1).remote())  # a worker process, as every trial has
    time.sleep(1)
    me = psutil.Process()
    rows = []
    for process in [me, *me.children(recursive=True)]:
        try:
            rows += [[process.name(), c.laddr.ip, c.laddr.port] for c in process.net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN]
        except psutil.NoSuchProcess:
            pass
    print(json.dumps(rows))
    disconnect(started)
    """
)
LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


def test_the_embedded_ray_listens_on_loopback_only(tmp_path):
    """Without the single-node setting Ray 2.60 listens on every interface (gcs_server, raylet, core
    workers on ``::``) and its runtime-env agent on the host's address."""
    done = subprocess.run([sys.executable, "-c", LISTENERS], capture_output=True, text=True, timeout=180,
                          cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    listeners = json.loads(done.stdout.strip().splitlines()[-1])
    names = {name for name, _, _ in listeners}
    assert {"gcs_server", "raylet"} <= names and any(n.startswith("ray::") for n in names), listeners
    exposed = [row for row in listeners if row[1] not in LOOPBACK]
    assert not exposed, f"Ray processes listening beyond loopback: {exposed}"
    assert "Token authentication is enabled" not in done.stderr


HOSTILE = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"


def _hostile_store(tmp_path: Path) -> str:
    """A store whose every user-typed field holds markup: the data file's name, the label (also a path
    that climbs), the plugin's file, the sweep's settings."""
    from mlflow.entities import Metric, Param

    from rnnbench.tracking.store import open_client

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = open_client(uri)  # a new store from the kept empty one: MLflow's migrations took seconds
    experiment = client.create_experiment("rnnbench")
    parent = client.create_run(experiment, tags={"kind": "sweep", "sweep": "evil"})
    client.log_batch(parent.info.run_id, params=[Param("task", "hf"), Param("trials", "2"),
                                                 Param("task_options", json.dumps({"label": HOSTILE}))])  # fmt: skip
    for cell, accuracies in (("lstm", [0.9, 0.91, 0.92]), ("gru", [0.5, 0.52, 0.51])):
        for number, accuracy in enumerate(accuracies[:2]):
            tags = {
                "sweep": "evil",
                "cell": cell,
                "task": "hf",
                "optuna_trial": str(number),
                "status": "completed",
            }
            run = client.create_run(experiment, tags=tags)
            params = {"cell": cell, "task": "hf", "metric": "val_loss", "plugin": f"/home/me/plugins/{HOSTILE}.py",
                      "task.path": f"/home/me/data/{HOSTILE}.csv", "task.label": f"../../x/{HOSTILE}/REL",
                      "depth": "1"}  # fmt: skip
            client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()], metrics=[
                Metric(k, v, 0, 0) for k, v in {"test_accuracy": accuracy, "best_val_loss": 1 - accuracy,
                                                 "chance": 0.1, "test_count": 1000.0}.items()])  # fmt: skip
    return uri


def test_hostile_strings_reach_no_page_as_markup_and_no_file_outside_its_folder(tmp_path):
    """Markup typed into any field is text on every page, rendered by a non-sanitising Markdown renderer in
    headless Chromium: no script runs; labels that climb write no file outside the folder."""
    import shutil
    import subprocess

    from markdown_it import MarkdownIt
    from typer.testing import CliRunner

    from rnnbench.cli import app

    uri = _hostile_store(tmp_path)
    out = tmp_path / "deep" / "pub"
    before = {p for p in tmp_path.rglob("*") if p.is_file()}
    result = CliRunner().invoke(app, ["leaderboard", "--tracking-uri", uri, "--publish", str(out), "--no-plots",
                                      "--note", HOSTILE])  # fmt: skip
    assert result.exit_code == 0, result.output
    made = {p for p in tmp_path.rglob("*") if p.is_file()} - before
    assert made and all(p.parent == out for p in made if p.suffix in (".png", ".md", ".html")), sorted(made)
    assert f"Published {len(list(out.iterdir()))} files into" in " ".join(result.stderr.split())
    readme, page = (out / "README.md").read_text(), (out / "index.html").read_text()
    for text in (readme, page):
        assert "<script>" not in text and "<img src=x" not in text and "/home/me" not in text
    rendered = MarkdownIt("commonmark").render(readme)  # raw HTML allowed: a non-sanitising renderer
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); the pages were checked as text")
    for name, html_text in (("readme", rendered), ("page", page)):
        probe = tmp_path / f"{name}.html"
        probe.write_text(f"<html><head><title>safe</title></head><body>{html_text}</body></html>"
                         if name == "readme" else html_text.replace("<title>", "<title>safe ", 1))  # fmt: skip
        dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                              "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}",
                              "--virtual-time-budget=3000", "--dump-dom", probe.as_uri()],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        assert dom.returncode == 0, dom.stderr[-1000:]
        assert "pwned" not in dom.stdout.split("</title>")[0], f"a script ran in the {name}"


def test_publishing_onto_a_file_or_over_a_foreign_page_is_refused(tmp_path):
    from typer.testing import CliRunner

    from rnnbench.cli import app

    uri = _hostile_store(tmp_path)
    target = tmp_path / "file.txt"
    target.write_text("mine")
    for command in (["leaderboard", "--tracking-uri", uri, "--no-plots", "--publish", str(target)],
                    ["odyssey-report", "--sweep", "evil", "--tracking-uri", uri, "--out", str(target)]):  # fmt: skip
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2 and "is a file; give a folder" in " ".join(result.stderr.split())
    assert target.read_text() == "mine"
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "README.md").write_text("# my project\n")
    refused = CliRunner().invoke(
        app, ["leaderboard", "--tracking-uri", uri, "--no-plots", "--publish", str(folder)]
    )
    assert refused.exit_code == 2 and "README.md there was not written by rnnbench" in " ".join(
        refused.stderr.split()
    )
    assert (folder / "README.md").read_text() == "# my project\n"
    forced = CliRunner().invoke(app, ["leaderboard", "--tracking-uri", uri, "--no-plots", "--publish", str(folder),
                                      "--force"])  # fmt: skip
    assert forced.exit_code == 0 and "<!-- Written by rnnbench" in (folder / "README.md").read_text()
    again = CliRunner().invoke(
        app, ["leaderboard", "--tracking-uri", uri, "--no-plots", "--publish", str(folder)]
    )
    assert again.exit_code == 0, "rnnbench's own page is rewritten without --force"
