"""``rnnbench ui``: the MLflow UI on a store, started quietly on one worker, and the URL to open."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rnnbench.errors import RnnbenchError


class UIError(RnnbenchError):
    """The MLflow UI could not be started (port taken, store unreadable)."""


@dataclass(frozen=True)
class Views:
    tracking_uri: str
    base: str
    urls: list[tuple[str, str]]  # (what, URL)


def open_views(tracking_uri: str | None, experiment: str, sweep: str | None, metric: str, base: str) -> Views:
    """Write the runs-table view of ``sweep`` (default: the latest sweep) and return the URLs to print."""
    from rnnbench.analysis.leaderboard import LeaderboardError
    from rnnbench.tracking.run_search import search
    from rnnbench.tracking.store import check_tracking_uri, open_client, resolve_tracking_uri, store_error
    from rnnbench.tracking.ui_views import mark_model_training, runs_url, save_runs_view

    uri = resolve_tracking_uri(tracking_uri)
    check_tracking_uri(uri)
    try:
        client = open_client(uri)
        found = client.get_experiment_by_name(experiment)
    except Exception as exc:  # a garbled or foreign file: one line naming it, not SQLAlchemy's pages
        raise store_error(uri, exc) from None
    if found is None:
        if sweep is not None:
            raise LeaderboardError(f"no MLflow experiment {experiment!r} in {uri}, so no sweep {sweep!r}")
        return Views(uri, base, [("MLflow UI", base)])
    mark_model_training(client, found.experiment_id)
    sweeps = search(client, [found.experiment_id], {"kind": "sweep"}, max_results=1000)
    names = [r.data.tags["sweep"] for r in sorted(sweeps, key=lambda r: r.info.start_time or 0, reverse=True)]
    if sweep is not None and sweep not in names:
        raise LeaderboardError(f"no sweep {sweep!r} in {uri}; sweeps: {', '.join(names) or 'none yet'}")
    chosen = sweep or (names[0] if names else None)
    urls = []
    if chosen is not None:
        key = save_runs_view(client, found.experiment_id, chosen, metric)
        urls.append((f"sweep {chosen}, trials by {metric}", runs_url(base, found.experiment_id, key)))
    every = save_runs_view(client, found.experiment_id, None, metric)
    urls.append((f"every trial by {metric}", runs_url(base, found.experiment_id, every)))
    return Views(uri, base, urls)


def mlflow_command(uri: str, host: str, port: int, workers: int) -> list[str]:
    mlflow = (
        shutil.which("mlflow", path=str(Path(sys.executable).parent)) or shutil.which("mlflow") or "mlflow"
    )
    return [mlflow, "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port), "--workers", str(workers),
            "--uvicorn-opts", "--log-level warning --no-access-log"]  # fmt: skip


def serve(views: Views, host: str, port: int, workers: int, say: Callable[[str], None],
          timeout: float = 300) -> None:  # fmt: skip
    """Run the UI until Ctrl-C; say the URLs once it answers, or the server's own last words if it
    exits first."""
    # The server's start-up chatter (INFO lines, Starlette's deprecation warnings) is kept back: only
    # a failure shows it. MLflow's job runner (seven huey processes, for GenAI scorers the runs table
    # never uses) is off unless asked for: on a small machine it doubled the time to answer.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ, "PYTHONWARNINGS": "ignore"}
    started = time.monotonic()
    process = subprocess.Popen(mlflow_command(views.tracking_uri, host, port, workers), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    tail: deque[str] = deque(maxlen=30)
    reader = threading.Thread(target=lambda: tail.extend(process.stderr or ()), daemon=True)
    reader.start()
    say(f"Starting the MLflow UI for {views.tracking_uri} on {views.base} ...")
    previous = signal.signal(signal.SIGTERM, _interrupt) if _main_thread() else None
    try:
        while not answers(views.base):
            if process.poll() is not None:
                reader.join(timeout=2)
                raise UIError(f"the MLflow UI on port {port} exited ({process.returncode}): " + " | ".join(
                    line.strip() for line in tail if line.strip())[-2000:])  # fmt: skip
            if time.monotonic() - started > timeout:
                raise UIError(f"the MLflow UI on port {port} did not answer within {timeout:.0f} s")
            time.sleep(0.25)
        say(f"MLflow UI ready in {time.monotonic() - started:.1f} s (Ctrl-C to stop):")
        for what, url in views.urls:
            say(f"  {what}: {url}")
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the server as Ctrl-C does, never leaving it behind


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def answers(base: str) -> bool:
    """Whether an MLflow server answers its health check at ``base``."""
    try:
        urllib.request.urlopen(f"{base}/health", timeout=2).close()
        return True
    except OSError:
        return False
