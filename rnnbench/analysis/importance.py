"""Hyperparameter importance: fANOVA (Hutter et al. 2014, Optuna's evaluator) over trials rebuilt from
their MLflow runs, as main-effect variance fractions.

Optuna normalises importances to sum to 1 by default, which turns them into shares of whatever the
main effects explain; here they are not normalised (``normalize=False``): each is the fraction of
the metric's variance over the trials that one hyperparameter explains alone, and what is left is
named "interactions and noise". A fraction is only as good as its trials: callers pass the trials
that learned (left chance) and show their count.

fANOVA costs seconds per hundred trials, so a finished sweep keeps its results as tags of its run,
each named by a fingerprint of the trials it saw (``importance.<key>``): a reader recomputes only
when those trials changed.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping
from typing import Any

INTERACTIONS = "interactions and noise"
CACHE_TAG = "importance."  # a sweep run's tag prefix; the rest of the name is the trials' fingerprint


def trials_of(runs: list[Any], metric: str) -> list[Any]:
    """Optuna trials rebuilt from runs that recorded their distributions and ``metric``."""
    import optuna
    from optuna.distributions import CategoricalDistribution, json_to_distribution

    trials = []
    for run in runs:
        raw = run.data.tags.get("optuna_distributions")
        if not raw or metric not in run.data.metrics:
            continue
        distributions = {k: json_to_distribution(v) for k, v in json.loads(raw).items()}
        params = {}
        for name, dist in distributions.items():
            text = run.data.params.get(name)
            if text is None:
                break
            if isinstance(dist, CategoricalDistribution):
                params[name] = next((c for c in dist.choices if str(c) == text), text)
            else:
                params[name] = type(dist.low)(float(text)) if isinstance(dist.low, int) else float(text)
        else:
            trials.append(
                optuna.trial.create_trial(
                    params=params, distributions=distributions, value=run.data.metrics[metric]
                )
            )
    return trials


def variance_fractions(runs: list[Any], metric: str, min_trials: int) -> tuple[dict[str, float] | None, int]:
    """Each hyperparameter's main-effect fraction of ``metric``'s variance, plus INTERACTIONS (the rest),
    and the number of trials behind them; None below ``min_trials`` trials or when fANOVA cannot fit."""
    import optuna

    trials = trials_of(runs, metric)
    if len(trials) < min_trials:
        return None, len(trials)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    study.add_trials(trials)
    try:
        with warnings.catch_warnings():  # `normalize` is experimental in Optuna: said once here, not per call
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            found = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), normalize=False
            )
    except (RuntimeError, ValueError, ZeroDivisionError):  # e.g. every trial sampled the same values
        return None, len(trials)
    fractions = {k: float(v) for k, v in found.items()}
    fractions[INTERACTIONS] = max(0.0, 1.0 - sum(fractions.values()))
    return fractions, len(trials)


def trials_key(runs: list[Any], metric: str) -> str:
    """A fingerprint of what fANOVA would see in ``runs``: their ids, sampled values and ``metric``."""
    digest = hashlib.sha256(metric.encode())
    for run in sorted(runs, key=lambda r: r.info.run_id):
        sampled = run.data.tags.get("optuna_distributions") or ""
        values = [run.data.params.get(name) for name in sorted(json.loads(sampled or "{}"))]
        digest.update(f"\0{run.info.run_id}={run.data.metrics.get(metric)!r}:{values}".encode())
    return digest.hexdigest()[:24]


def cached_fractions(
    runs: list[Any], metric: str, min_trials: int, cache: Mapping[str, str]
) -> tuple[dict[str, float] | None, int, str]:
    """:func:`variance_fractions` from ``cache`` (fingerprint -> JSON) when it holds these trials, else
    computed; with the fingerprint, or "" when the result cannot be kept (below ``min_trials``)."""
    key = trials_key(runs, metric)
    raw = cache.get(key)
    if raw is not None:
        found = json.loads(raw)
        count = int(found["trials"])
        return (found["fractions"] if count >= min_trials else None), count, key
    fractions, count = variance_fractions(runs, metric, min_trials)
    return fractions, count, key if count >= min_trials else ""


def cache_value(fractions: dict[str, float] | None, trials: int) -> str:
    """What a cache tag holds: the fractions (None where fANOVA could not fit) and their trial count."""
    return json.dumps({"fractions": fractions, "trials": trials}, sort_keys=True)
