"""The Ray cluster a sweep runs on: started here or joined, and checked before any trial."""

from __future__ import annotations

import logging
import os
import socket

from rnnbench.sweep.settings import SweepSettings
from rnnbench.sweep.state import SweepError


def check_address(address: str) -> None:
    """Fail fast, naming the address, when no Ray head answers there (ray.init would wait)."""
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise SweepError(f"Ray address {address!r} must look like HOST:PORT (or ray://HOST:PORT)")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            return
    except OSError as exc:
        raise SweepError(
            f"Ray address {address}: no Ray head answers there ({exc}); start one with `ray start --head`"
        ) from None


def check_resources(settings: SweepSettings) -> float:
    """The GPUs per trial to use; fails before any trial when no node can give a trial its share."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    max_cpu = max((n.get("CPU", 0) for n in nodes), default=0)
    max_gpu = max((n.get("GPU", 0) for n in nodes), default=0)
    total_gpu = sum(n.get("GPU", 0) for n in nodes)
    gpus = settings.gpus_per_trial if settings.gpus_per_trial is not None else (1.0 if total_gpu else 0.0)
    if settings.cpus_per_trial > max_cpu:
        raise SweepError(
            f"cpus_per_trial {settings.cpus_per_trial} is more than any node of the Ray cluster has "
            f"(largest: {max_cpu:g} CPUs)"
        )
    if gpus > max_gpu:
        have = f"the largest node has {max_gpu:g}" if max_gpu else "the cluster has no GPU"
        raise SweepError(f"gpus_per_trial {gpus:g} cannot be given: {have}; use --gpus-per-trial 0 for CPUs")
    return float(gpus)


def connect(settings: SweepSettings) -> bool:
    """Start Ray locally or join ``address``; returns True when this call started the session."""
    import ray

    if ray.is_initialized():
        return False
    if settings.address:
        check_address(settings.address)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # On Ctrl-C Tune suggests Tuner.restore(...); rnnbench prints its own resume command instead.
    logging.getLogger("ray.tune.tune").addFilter(lambda record: "Tuner.restore" not in record.getMessage())
    ray.init(
        # "local" starts a new Ray here; without it ray.init joins any cluster already running on the host.
        address=settings.address or "local",
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
        configure_logging=True,
    )
    return True
