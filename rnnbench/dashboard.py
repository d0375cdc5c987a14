"""``rnnbench dashboard NAME``: optuna-dashboard on a sweep's Optuna journal, one study per cell."""

from __future__ import annotations

from collections.abc import Callable

from rnnbench.errors import RnnbenchError
from rnnbench.sweep.state import JOURNAL_FILE, load_state, sweep_folder

INSTALL = "pip install 'rnnbench[dashboard]'"


class DashboardError(RnnbenchError):
    """optuna-dashboard is not installed, or the sweep has no journal."""


def serve_dashboard(name: str, sweeps_dir: str, host: str, port: int, say: Callable[[str], None]) -> None:
    """Serve optuna-dashboard on the sweep's journal until Ctrl-C."""
    state = load_state(name, sweeps_dir)  # names the sweeps there are when ``name`` is not one
    journal = sweep_folder(sweeps_dir, name) / JOURNAL_FILE
    if not journal.is_file():
        raise DashboardError(f"sweep {name!r} has no Optuna journal yet ({journal}): no trial has started")
    try:
        import optuna_dashboard
    except ImportError:
        raise DashboardError(f"optuna-dashboard is not installed: {INSTALL}") from None
    from rnnbench.sweep.search import journal_storage

    cells = state.get("settings", {}).get("cells", [])
    say(f"optuna-dashboard for sweep {name} ({', '.join(f'{name}:{c}' for c in cells)}) on "
        f"http://{host}:{port}/dashboard (Ctrl-C to stop)")  # fmt: skip
    say("Its hyperparameter importances are PED-ANOVA over the study's trials; the leaderboard's are fANOVA.")
    try:
        optuna_dashboard.run_server(journal_storage(str(journal.resolve())), host=host, port=port)
    except KeyboardInterrupt:
        pass
