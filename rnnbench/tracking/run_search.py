"""Every MLflow run search rnnbench makes, built in one place with quoted values.

MLflow's filter language has no escape inside a string literal: a value is written in single quotes,
or in double quotes when it holds a single quote; a value holding both cannot be searched for and is
an error naming it, never a malformed or widened filter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rnnbench.errors import RnnbenchError, SweepConfigError

MAX_RESULTS = 50_000
SWEEP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")  # matched in full: "$" would pass "x\n"
# A sweep's trial runs carry the Optuna trial number; its parent run and reseed runs do not.
TRIAL = "tags.optuna_trial != ''"


class SearchValueError(RnnbenchError, ValueError):
    """A value cannot be written into an MLflow search filter."""


def literal(value: str | int, what: str = "value") -> str:
    """``value`` as an MLflow filter string literal."""
    text = str(value)
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    raise SearchValueError(f"{what} {text!r} holds both kinds of quote; MLflow cannot search for it")


def run_filter(
    tags: Mapping[str, str | int | None], status: str | None = None, trials_only: bool = False
) -> str:
    """A filter matching every tag given (None values are left out), and the run status if given."""
    clauses = [TRIAL] if trials_only else []
    clauses += [f"tags.{key} = {literal(value, key)}" for key, value in tags.items() if value is not None]
    if status is not None:
        clauses.append(f"attributes.status = {literal(status, 'status')}")
    return " and ".join(clauses)


def search(
    client: Any,
    experiment_ids: list[str],
    tags: Mapping[str, str | int | None],
    status: str | None = None,
    trials_only: bool = False,
    max_results: int = MAX_RESULTS,
) -> list[Any]:
    """The runs of ``experiment_ids`` with every tag given (and the status, when given)."""
    query = run_filter(tags, status=status, trials_only=trials_only)
    return list(client.search_runs(experiment_ids, query, max_results=max_results))


def trial_runs(
    client: Any,
    experiment_id: str,
    *,
    sweep: str | None = None,
    task: str | None = None,
    cell: str | None = None,
    number: int | None = None,
    status: str | None = None,
) -> list[Any]:
    """Sweep trial runs, narrowed by sweep, task, cell, Optuna trial number and run status."""
    tags = {"sweep": sweep, "task": task, "cell": cell, "optuna_trial": number}
    return search(client, [experiment_id], tags, status=status, trials_only=True)


def reseed_runs(client: Any, experiment_id: str, run_id: str) -> list[Any]:
    """The runs that re-trained the configuration of run ``run_id`` with other seeds."""
    return search(client, [experiment_id], {"reseed_of": run_id}, max_results=10_000)


def sweep_run(client: Any, experiment_id: str, sweep: str) -> Any | None:
    """The parent run of sweep ``sweep``, None if the store has none."""
    found = search(client, [experiment_id], {"kind": "sweep", "sweep": sweep}, max_results=1)
    return found[0] if found else None


def check_sweep_name(name: str, where: str) -> None:
    """Sweep names are folder names, and so never hold a quote or a path separator."""
    if not SWEEP_NAME.fullmatch(name):
        raise SweepConfigError(
            f"{where}: {name!r} is not a sweep name (letters, digits, '.', '_' or '-', starting with a "
            "letter or digit)"
        )
