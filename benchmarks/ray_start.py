"""Start-up of a sweep's own Ray, lean (``rnnbench.sweep.cluster.lean_head``) against Ray's own processes,
interleaved, each start in a fresh process. Run on demand, not a test:

    .venv/bin/python -m benchmarks.ray_start [--repeats 5]

Three variants: ``lean`` (as a sweep starts its Ray), ``lean, Ray's runtime-env agent`` (the same without
the runtime-env stand-in) and ``whole`` (``RNNBENCH_LEAN_RAY=0``). Each times ``ray.init``, a first actor's
call, and sums the CPU of the processes Ray started (the GCS, the raylet, its agents, the actor's worker).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

VARIANTS = ("lean", "lean, Ray's runtime-env agent", "whole")


def child(variant: str) -> dict[str, float]:
    """One start in this process: seconds of ``ray.init``, of a first actor's call, and Ray's CPU seconds."""
    import logging

    import psutil
    import ray

    from rnnbench.sweep import cluster

    os.environ.update({**cluster.EMBEDDED_ENV, **cluster.EMBEDDED_DEFAULTS})
    if variant == VARIANTS[1]:
        cluster.AGENTS = tuple(agent for agent in cluster.AGENTS if "runtime_env" not in agent[0])
    if variant == VARIANTS[2]:
        os.environ[cluster.LEAN_ENV] = "0"
    started = time.perf_counter()
    with cluster.lean_head():
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False)  # fmt: skip
    up = time.perf_counter()

    @ray.remote(num_cpus=1)
    class Probe:
        def pid(self) -> int:
            return os.getpid()

    ray.get(Probe.remote().pid.remote(), timeout=120)
    answered = time.perf_counter()
    cpu = 0.0
    for process in psutil.Process().children(recursive=True):
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        cpu += times.user + times.system
    ray.shutdown()
    return {"ray.init": up - started, "first actor": answered - up, "Ray's CPU": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    found: dict[str, list[dict[str, float]]] = {variant: [] for variant in VARIANTS}
    for k in range(args.repeats):
        for variant in VARIANTS if k % 2 == 0 else reversed(VARIANTS):
            done = subprocess.run([sys.executable, "-m", "benchmarks.ray_start", "--child", variant],
                                  capture_output=True, text=True, timeout=300, check=True)  # fmt: skip
            found[variant].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"{variant}: " + ", ".join(f"{key} {value:.2f} s" for key, value in found[variant][-1].items()),
                  flush=True)  # fmt: skip
    from benchmarks.report import cpu_details, cpu_label, cpu_model

    cpu = cpu_label({"cpu": cpu_model(), **cpu_details()})
    print(f"{cpu}, {os.cpu_count()} CPUs; medians of {args.repeats} interleaved starts a variant:")
    whole = {key: statistics.median(row[key] for row in found["whole"]) for key in found["whole"][0]}
    for variant, rows in found.items():
        medians = {key: statistics.median(row[key] for row in rows) for key in rows[0]}
        print(f"  {variant:32s}" + "; ".join(f"{key} {value:.2f} s ({value / whole[key]:.2f}x whole)"
                                             for key, value in medians.items()))  # fmt: skip


if __name__ == "__main__":
    main()
