"""``python -m benchmarks``: run the selected benchmarks, print their ratios and targets, write the report."""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys
import time
import traceback
from typing import Any

from benchmarks import BENCHMARKS

ALIASES = {"logging": "logging_tax", "tax": "logging_tax", "ttt": "time_to_target", "cell": "cells"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure rnnbench against its baselines, side by side, and print the ratios and targets.",
    )
    parser.add_argument(
        "--only",
        default=",".join(BENCHMARKS),
        help=f"comma-separated benchmarks to run (default all): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: a smoke run of seconds to a minute each"
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default=None,
        help="where to run the models (default cuda when available, else cpu)",
    )
    parser.add_argument("--out", default="benchmarks/results", help="folder for report.json and report.md")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads for the cells benchmark (default 1)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="override every benchmark's repeat count")
    parser.add_argument(
        "--sizes", default=None, help="cells benchmark sizes, 'B,T,I,H;B,T,I,H' (default: the three targets)"
    )
    return parser.parse_args(argv)


def selected(only: str) -> list[str]:
    names = []
    for raw in only.split(","):
        name = ALIASES.get(raw.strip(), raw.strip())
        if not name:
            continue
        if name not in BENCHMARKS:
            raise SystemExit(f"unknown benchmark {raw!r}; choose from {', '.join(BENCHMARKS)}")
        if name not in names:
            names.append(name)
    return names


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from benchmarks import report

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda asked for, but torch.cuda.is_available() is False here")
    names = selected(args.only)
    command = "python -m benchmarks" + ("" if argv is None and len(sys.argv) <= 1 else " ")
    command += shlex.join(sys.argv[1:] if argv is None else argv)
    machine = report.machine_info(threads=args.threads)
    print(
        f"rnnbench benchmarks: {', '.join(names)} on {device}; {machine['cpu']}, {machine['cores']} cores, "
        f"torch {machine['torch']}, load average {machine['load_average']}",
        flush=True,
    )

    results: dict[str, dict[str, Any]] = {}
    failed = False
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        options: dict[str, Any] = {"quick": args.quick, "device": device}
        if args.repeats:
            options["repeats"] = args.repeats
        if name == "cells":
            options["threads"] = args.threads
            if args.sizes:
                from benchmarks.cells import parse_sizes

                options["sizes"] = parse_sizes(args.sizes)
        print(f"-- {module.TITLE} ...", flush=True)
        started = time.perf_counter()
        try:
            result = module.run(**options)
        except Exception:
            failed = True
            result = {"name": name, "title": module.TITLE, "error": traceback.format_exc(), "targets": []}
        result["seconds"] = time.perf_counter() - started
        results[name] = result
        report.print_result(result)
        # Written after every benchmark, so that an interrupted run keeps what it measured.
        report.write(report.build_report(results, command, machine), args.out)

    built = report.build_report(results, command, machine)
    json_path, md_path = report.write(built, args.out)
    print("== targets")
    for t in built["targets"]:
        print(
            f"  [{t['benchmark']}] {t['name']} {t['op']} {report.fmt(t['threshold'])}{t['unit']}: "
            f"{report.fmt(t['value'])}{t['unit'] if t['value'] is not None else ''} -> {t['verdict']}"
        )
    print(f"wrote {json_path} and {md_path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
