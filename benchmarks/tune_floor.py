"""Ray Tune's own floor under the one-trial sweep: a fresh process that starts Ray as a sweep starts it
(``rnnbench.sweep.cluster.connect``) and runs one trial of an empty function trainable through a Tuner.

No data, no cells checked, no MLflow, no torch: what any Tune-based command pays on this host before its
first trial. ``python -m benchmarks.tune_floor FILE`` writes the seconds since its launch (the launch time
given as ``--since``) of each moment to FILE as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any


def entry_trainable(config: dict[str, Any]) -> dict[str, float]:
    """The trial: it only says when its worker entered it."""
    return {"entered": time.time()}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--since", type=float, required=True)
    args = parser.parse_args(argv)
    import ray

    from rnnbench.sweep.cluster import connect, disconnect
    from rnnbench.sweep.settings import SweepSettings

    imported = time.time()
    started = connect(SweepSettings())
    up = time.time()
    from ray import tune

    try:
        with tempfile.TemporaryDirectory(prefix="rnnbench-tune-floor-") as storage:
            grid = tune.Tuner(
                tune.with_resources(entry_trainable, {"cpu": 1}),
                tune_config=tune.TuneConfig(num_samples=1),
                run_config=tune.RunConfig(storage_path=storage, verbose=0),
            ).fit()
            if grid.errors:  # the trial's own error, not a missing metric
                raise grid.errors[0]
            entered = grid[0].metrics["entered"]
    finally:
        disconnect(started)
    moments = {"imported": imported, "ray started": up, "trial entered": entered, "ray stopped": time.time()}
    with open(args.out, "w") as handle:
        json.dump(
            {key: when - args.since for key, when in moments.items()} | {"ray": ray.__version__}, handle
        )


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main(sys.argv[1:])
