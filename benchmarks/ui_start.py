"""Time to answer of ``rnnbench ui`` (one worker, MLflow's job runner off) against a plain ``mlflow ui``
(four workers, the job runner on), on one store, interleaved. Run on demand, not a test:

    .venv/bin/python benchmarks/ui_start.py --tracking-uri sqlite:///mlflow.db [--repeats 3]

Each start is timed from the command to the first answer of ``/health``; the server is then stopped
(its whole process group) before the next starts.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def time_to_answer(command: list[str], port: int, timeout: float = 600) -> float:
    started = time.monotonic()
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
                return time.monotonic() - started
            except OSError:
                if time.monotonic() - started > timeout or process.poll() is not None:
                    raise SystemExit(f"{command[0]} did not answer") from None
                time.sleep(0.1)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    times: dict[str, list[float]] = {"rnnbench ui": [], "mlflow ui": []}
    for k in range(args.repeats):
        order = list(times) if k % 2 == 0 else list(reversed(times))
        for name in order:
            port = free_port()
            if name == "rnnbench ui":
                command = [
                    str(bin_dir / "rnnbench"),
                    "ui",
                    "--tracking-uri",
                    args.tracking_uri,
                    "--port",
                    str(port),
                ]
            else:
                command = [str(bin_dir / "mlflow"), "ui", "--backend-store-uri", args.tracking_uri, "--host",
                           "127.0.0.1", "--port", str(port)]  # fmt: skip
            times[name].append(time_to_answer(command, port))
            print(f"{name}: {times[name][-1]:.1f} s", flush=True)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")  # fmt: skip
    mine, plain = statistics.median(times["rnnbench ui"]), statistics.median(times["mlflow ui"])
    print(
        f"{cpu}, {os.cpu_count()} CPUs: rnnbench ui {mine:.1f} s, mlflow ui {plain:.1f} s (medians of "
        f"{args.repeats}); ratio {mine / plain:.2f}"
    )


if __name__ == "__main__":
    main()
