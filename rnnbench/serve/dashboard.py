"""``rnnbench dashboard NAME``: optuna-dashboard on a sweep's Optuna journal, one study per cell, read-only.

The journal is the state ``--resume`` relies on, and optuna-dashboard's API can delete a study or a trial's
notes: unless ``--allow-writes``, every request that is not a read (GET, HEAD) is answered 405 before it
reaches optuna-dashboard. The server's access log is off unless ``--verbose``.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from rnnbench.errors import RnnbenchError
from rnnbench.sweep.state import JOURNAL_FILE, check_journal, load_state, study_name, sweep_folder

INSTALL = "pip install 'rnnbench[dashboard]'"
READS = ("GET", "HEAD")


class DashboardError(RnnbenchError):
    """optuna-dashboard is not installed, or the sweep has no journal."""


def read_only(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """A WSGI app that answers 405 to every method but GET and HEAD, and passes those to ``app``."""

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET").upper() in READS:
            return app(environ, start_response)
        body = b"rnnbench dashboard is read-only (start it with --allow-writes to change the study)\n"
        start_response("405 Method Not Allowed", [("Allow", ", ".join(READS)), ("Content-Type", "text/plain"),
                                                  ("Content-Length", str(len(body)))])  # fmt: skip
        return [body]

    return guarded


def dashboard_app(
    name: str, sweeps_dir: str, allow_writes: bool = False
) -> tuple[Callable[..., Any], list[str]]:
    """The WSGI app over the sweep's journal (read-only unless ``allow_writes``) and the studies it shows."""
    state = load_state(name, sweeps_dir)  # names the sweeps there are, or the broken state file
    journal = sweep_folder(sweeps_dir, name) / JOURNAL_FILE
    if not journal.is_file():
        raise DashboardError(f"sweep {name!r} has no Optuna journal yet ({journal}): no trial has started")
    check_journal(journal, name)  # a torn or damaged journal: one line naming it, never a traceback
    try:
        import optuna_dashboard
    except ImportError:
        raise DashboardError(f"optuna-dashboard is not installed: {INSTALL}") from None
    from rnnbench.sweep.search import journal_storage

    app = optuna_dashboard.wsgi(journal_storage(str(journal.resolve())))
    cells = state.get("settings", {}).get("cells", [])
    return (app if allow_writes else read_only(app)), [study_name(name, c) for c in cells]


def serve_dashboard(name: str, sweeps_dir: str, host: str, port: int, say: Callable[[str], None], *,
                    allow_writes: bool = False, verbose: bool = False) -> None:  # fmt: skip
    """Serve optuna-dashboard on the sweep's journal until Ctrl-C."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    app, studies = dashboard_app(name, sweeps_dir, allow_writes)

    class Handler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # the access log: one line per request
            if verbose:
                super().log_message(format, *args)

    server = make_server(host, port, app, handler_class=Handler)
    mode = "read and write" if allow_writes else "read-only"
    say(f"optuna-dashboard for sweep {name} ({', '.join(studies)}), {mode}, on http://{host}:{port}/dashboard "
        "(Ctrl-C to stop)")  # fmt: skip
    say("Its hyperparameter importances are PED-ANOVA over the study's trials; the leaderboard's are fANOVA.")
    # Served from a thread, Ctrl-C waited for in this one: wsgiref's request handler catches everything
    # (a bare except), so a Ctrl-C raised while it wrote a response was printed and swallowed, and the
    # dashboard went on serving (seen in CI). Here it lands in the wait, never inside a request.
    failed: list[BaseException] = []

    def serve() -> None:
        try:
            server.serve_forever()
        except BaseException as exc:  # handed to the main thread, which reports it
            failed.append(exc)

    serving = threading.Thread(target=serve, name="rnnbench-dashboard", daemon=True)
    started = False
    try:
        # Ctrl-C is held back while the thread starts: on a busy machine the new thread answered a
        # request before start() returned, and a Ctrl-C then raised inside start() escaped the handler
        # below (CI, 2026-11-30). Held, it lands once start() has returned, or before the thread began.
        with _ctrl_c_held():
            serving.start()
            started = True
        while serving.is_alive():
            serving.join(0.5)
    except KeyboardInterrupt:
        if started:  # shutdown() waits for serve_forever: it would wait forever on a thread never started
            server.shutdown()  # the request being answered ends first
    finally:
        server.server_close()
    if failed:
        raise failed[0]


@contextlib.contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """Hold SIGINT back from this thread (and the threads it starts) for the block; Windows has no mask."""
    mask = getattr(signal, "pthread_sigmask", None)
    if mask is None:
        yield
        return
    previous = mask(signal.SIG_BLOCK, ())  # the mask as it is: a Ctrl-C raised here changed nothing
    try:
        mask(signal.SIG_BLOCK, {signal.SIGINT})  # one raised as this returns is undone by the finally
        yield
    finally:
        mask(signal.SIG_SETMASK, previous)
