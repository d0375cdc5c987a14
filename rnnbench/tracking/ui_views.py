"""The MLflow UI opened where rnnbench users look: a sweep's runs table, sorted by the ranking metric,
with the metrics that rank cells as columns.

MLflow 3's UI opens an experiment on its GenAI overview unless the experiment says it holds model
training (the ``mlflow.experimentKind`` tag), and keeps the table's columns in the browser; a shared
view (an experiment tag the UI reads when a URL names its key) carries the filter, sort and columns.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"  # the UI's "Machine learning" kind: the runs table
VIEW_PREFIX = "mlflow.sharedViewState."
# The table shows metrics in alphabetical order, then params, then tags: few enough to fit a laptop's width.
METRIC_COLUMNS = ("lrd_score", "test_accuracy", "lrd_horizon", "param_count", "train_seconds")
PARAM_COLUMNS = ("cell", "depth", "width", "lr", "clip", "optimizer")
TAG_COLUMNS = ("status",)


def mark_model_training(client: Any, experiment_id: str) -> None:
    """Make the UI open the experiment on its runs table (unless someone chose another kind)."""
    if KIND_TAG not in client.get_experiment(experiment_id).tags:
        client.set_experiment_tag(experiment_id, KIND_TAG, MODEL_TRAINING)


def view_key(sweep: str | None) -> str:
    """A tag-safe key naming the view of one sweep (or of every trial when None)."""
    if sweep is None:
        return "rnnbench-all"
    readable = re.sub(r"[^A-Za-z0-9_.-]", "_", sweep)[:60]
    return f"rnnbench-{readable}-{hashlib.sha1(sweep.encode()).hexdigest()[:8]}"


def save_runs_view(client: Any, experiment_id: str, sweep: str | None, metric: str = "lrd_score") -> str:
    """Store the view of ``sweep``'s trial runs sorted by ``metric`` (best first); returns its key."""
    from rnnbench.tracking.run_search import run_filter

    columns = [f"metrics.`{metric}`", *(f"metrics.`{m}`" for m in METRIC_COLUMNS if m != metric),
               *(f"params.`{p}`" for p in PARAM_COLUMNS), *(f"tags.`{t}`" for t in TAG_COLUMNS)]  # fmt: skip
    view = {
        "searchFilter": run_filter({"sweep": sweep}, trials_only=True),
        "orderByKey": f"metrics.`{metric}`",
        "orderByAsc": metric.endswith("loss"),
        "selectedColumns": columns,
    }
    key = view_key(sweep)
    client.set_experiment_tag(experiment_id, VIEW_PREFIX + key, json.dumps(view))
    return key


def runs_url(base: str, experiment_id: str, key: str) -> str:
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?viewStateShareKey={key}"
