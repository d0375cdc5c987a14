"""The machine a result was made on, as pages and sweep records name it: CPU model and cores, no path."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine_line() -> str:
    """The machine a published page was made on: CPU model, cores, OS, Python (no path, no host name)."""
    cpu = platform.processor() or platform.machine()
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip().lower(), value.strip())
    except OSError:
        pass
    if "model name" in fields:
        # Hosts of one kind differ in CPU generation under one model name: family and model tell them apart.
        cpu = fields["model name"]
        if "cpu family" in fields and "model" in fields:
            cpu += f" family {fields['cpu family']} model {fields['model']}"
    return (
        f"Machine: {cpu} ({platform.machine()}), {os.cpu_count()} CPU cores, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )
