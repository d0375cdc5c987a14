"""Stands in for Ray's dashboard agent on a sweep's own Ray where that agent would run minimal.

Ray's raylet starts the agent and waits for the ports it writes before the node counts as up. Without the
dashboard's packages (the minimal Ray that rnnbench installs) the agent serves nothing: it imports Ray and
its modules (1.1-1.5 s of CPU), writes "-1" (not served) for its three ports and then watches the raylet.
This does the same with the standard library alone. Run as a script: it imports nothing of rnnbench.
"""

import os
import sys
import time

# The ports the minimal agent writes as not served (ray/dashboard/agent.py).
PORTS = ("metrics_agent_port", "metrics_export_port", "dashboard_agent_listen_port")
# Ray's switch between watching the raylet through a pipe on stdin (its default) and through its pid.
PIPE_CHECK = "RAY_enable_pipe_based_agent_to_parent_health_check"


def main(argv: list[str]) -> None:
    options = dict(arg[2:].split("=", 1) for arg in argv if arg.startswith("--") and "=" in arg)
    for name in PORTS:
        path = os.path.join(options["session-dir"], f"{name}_{options['node-id']}")
        # Whole or absent: the raylet polls for the file.
        with open(path + ".part", "w") as handle:
            handle.write("-1")
        os.replace(path + ".part", path)
    if os.environ.get(PIPE_CHECK, "1").lower() in ("0", "false"):
        # Ray told its agents to watch the raylet's pid instead of a pipe: stdin is not the raylet's then.
        # The raylet is its parent: once it is gone, this process has another.
        raylet = int(os.environ.get("RAY_RAYLET_PID", os.getppid()))
        while os.getppid() == raylet:
            time.sleep(1)
        return
    # The raylet holds the other end of this pipe: end of file means it is gone.
    sys.stdin.buffer.read()


if __name__ == "__main__":
    main(sys.argv[1:])
