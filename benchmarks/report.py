"""Targets, the machine description, and the report files (report.json, report.md)."""

from __future__ import annotations

import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any


def target(name: str, value: float | None, op: str, threshold: float, unit: str = "") -> dict[str, Any]:
    """A target check: ``value op threshold`` with op ``<=`` or ``>=``.

    ``margin`` is the relative distance to the threshold, positive when the target is met with room
    to spare and negative when it is missed (``-0.25``: missed by 25 % of the threshold).
    """
    if op not in ("<=", ">="):
        raise ValueError(f"op must be '<=' or '>=', got {op!r}")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return {
            "name": name,
            "value": None,
            "op": op,
            "threshold": threshold,
            "unit": unit,
            "met": None,
            "margin": None,
            "verdict": "not measured",
        }
    met = value <= threshold if op == "<=" else value >= threshold
    if math.isinf(value):
        margin = -math.inf if not met else math.inf
    else:
        margin = (threshold - value) / threshold if op == "<=" else (value - threshold) / threshold
    return {
        "name": name,
        "value": value,
        "op": op,
        "threshold": threshold,
        "unit": unit,
        "met": met,
        "margin": margin,
        "verdict": verdict(met, margin),
    }


def verdict(met: bool | None, margin: float | None) -> str:
    if met is None or margin is None:
        return "not measured"
    if math.isinf(margin):
        return "met" if met else "missed (never reached)"
    if met:
        return f"met ({margin * 100:.0f} % to spare)"
    return f"missed by {-margin * 100:.0f} %"


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isinf(value):
            return "never" if value > 0 else "-inf"
        if math.isnan(value):
            return "nan"
        return f"{value:.{digits}g}" if abs(value) < 1e5 else f"{value:.3e}"
    return str(value)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "amx_tile")


def cpu_details() -> dict[str, Any]:
    """The CPU's family/model and vector extensions: figures move between hosts of one kind with these."""
    found: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in ("cpu family", "model", "flags") and key not in found:
                found[key] = value.strip()
    except OSError:
        pass
    flags = set(found.get("flags", "").split())
    return {
        "cpu_family": found.get("cpu family"),
        "cpu_model_number": found.get("model"),
        "vector_extensions": [f for f in VECTOR_FLAGS if f in flags],
    }


def cpu_label(machine: dict[str, Any]) -> str:
    """The CPU as reports name it: its model, family and model number (``machine_info``'s keys)."""
    return (
        f"{machine.get('cpu')} (family {machine.get('cpu_family')}, model {machine.get('cpu_model_number')})"
    )


def machine_info(threads: int | None = None) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        **cpu_details(),
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_default_threads": torch.get_num_threads(),
        "benchmark_threads": threads,
        "cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    for package in ("ray", "optuna", "mlflow"):
        try:
            from importlib.metadata import version

            info[package] = version(package)
        except Exception:  # a missing package is reported, never fatal
            info[package] = None
    return info


def _memory_gib() -> float | None:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return round(pages * size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def build_report(results: dict[str, dict[str, Any]], command: str, machine: dict[str, Any]) -> dict[str, Any]:
    targets = [
        {"benchmark": name, **t} for name, result in results.items() for t in result.get("targets", [])
    ]
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": command,
        "machine": machine,
        "benchmarks": results,
        "targets": targets,
    }


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# rnnbench benchmarks",
        "",
        "| | |",
        "|---|---|",
        f"| date | {report['date']} |",
        f"| command | `{report['command']}` |",
        f"| CPU | {cpu_label(m)} |",
        f"| vector extensions | {', '.join(m.get('vector_extensions') or []) or 'unknown'} |",
        f"| cores | {m.get('cores')} (available to this process: {m.get('cores_available')}) |",
        f"| memory | {m.get('memory_gib')} GiB |",
        f"| GPU | {m.get('gpu') or 'none'} |",
        f"| torch | {m.get('torch')} (default threads {m.get('torch_default_threads')}, "
        f"benchmark threads {m.get('benchmark_threads')}) |",
        f"| ray / optuna / mlflow | {m.get('ray')} / {m.get('optuna')} / {m.get('mlflow')} |",
        f"| Python | {m.get('python')} on {m.get('platform')} |",
        f"| load average at start | {', '.join(f'{x:.2f}' for x in m.get('load_average') or [])} |",
        "",
        "## Targets",
        "",
        "| benchmark | target | measured | verdict |",
        "|---|---|---|---|",
    ]
    for t in report["targets"]:
        lines.append(
            f"| {t['benchmark']} | {t['name']} {t['op']} {fmt(t['threshold'])}{t['unit']} "
            f"| {fmt(t['value'])}{t['unit'] if t['value'] is not None else ''} | {t['verdict']} |"
        )
    for name, result in report["benchmarks"].items():
        lines += ["", f"## {result.get('title', name)}", ""]
        if result.get("error"):
            lines += ["```", result["error"].rstrip(), "```"]
            continue
        if result.get("description"):
            lines += [result["description"], ""]
        table = result.get("table")
        if table:
            lines.append("| " + " | ".join(table["columns"]) + " |")
            lines.append("|" + "|".join("---" for _ in table["columns"]) + "|")
            for row in table["rows"]:
                lines.append("| " + " | ".join(fmt(v) for v in row) + " |")
        for note in result.get("notes", []):
            lines += ["", f"- {note}"]
        if result.get("seconds") is not None:
            lines += ["", f"_took {result['seconds']:.0f} s_"]
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "report.json", folder / "report.md"
    json_path.write_text(json.dumps(report, indent=2, default=_json_default, allow_nan=True) + "\n")
    md_path.write_text(markdown(report))
    return json_path, md_path


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def print_result(result: dict[str, Any]) -> None:
    """The benchmark's table, targets and notes on stdout."""
    print(f"\n== {result.get('title', result.get('name'))}", flush=True)
    if result.get("error"):
        print(result["error"], flush=True)
        return
    table = result.get("table")
    if table:
        rows = [table["columns"], *[[fmt(v) for v in row] for row in table["rows"]]]
        widths = [max(len(str(r[i])) for r in rows) for i in range(len(table["columns"]))]
        for k, row in enumerate(rows):
            print(
                "  ".join(
                    str(v).rjust(w) if k and i else str(v).ljust(w)
                    for i, (v, w) in enumerate(zip(row, widths, strict=True))
                )
            )
    for t in result.get("targets", []):
        print(
            f"TARGET {t['name']} {t['op']} {fmt(t['threshold'])}{t['unit']}: "
            f"measured {fmt(t['value'])}{t['unit']} -> {t['verdict']}"
        )
    for note in result.get("notes", []):
        print(f"note: {note}")
    print(flush=True)
