"""Stands in for Ray's two node agents on a sweep's own Ray. Run as a script: it imports nothing of rnnbench.

Ray's raylet starts both agents and waits for the ports they write before the node counts as up; each is a
Python process that imports Ray and its modules (0.5-1.5 s of CPU each) as the sweep's driver imports its
own beside them on the same cores.

- The dashboard agent, where Ray would run it minimal (without the dashboard's packages, as rnnbench
  installs Ray), serves nothing: it writes "-1" (not served) for its three ports and then watches the
  raylet. The stand-in does the same.
- The runtime-env agent sets up the runtime env of a worker that has one. A sweep's trial workers have none
  (``cluster.trial_workers_without_runtime_env``) unless Ray Tune passes on variables from the driver (AWS
  credentials, Ray Train's settings) as the runtime env's ``env_vars``. The stand-in serves exactly that
  field, as Ray's agent does, and refuses any other (a working folder, packages, a container) with a reply
  that names the way out; a refused worker fails with Ray's ``RuntimeEnvSetupError`` carrying it. Where
  ``ray.init`` gives the driver's whole job a runtime env (``uv run``, a runtime-env hook), Ray's agent runs
  instead (``cluster.job_runtime_env_expected``).
"""

import json
import os
import sys
import threading
import time

# The ports the minimal dashboard agent writes as not served (ray/dashboard/agent.py).
PORTS = ("metrics_agent_port", "metrics_export_port", "dashboard_agent_listen_port")
# The file the runtime-env agent writes its port to (ray._raylet.RUNTIME_ENV_AGENT_PORT_NAME).
RUNTIME_ENV_PORT = "runtime_env_agent_port"
# Ray's switch between watching the raylet through a pipe on stdin (its default) and through its pid.
PIPE_CHECK = "RAY_enable_pipe_based_agent_to_parent_health_check"
SERVED = ("env_vars",)  # the runtime-env fields the stand-in sets up
# Fields that set nothing up: how to set it up (its timeouts, its logs) and Ray's own marks of its version.
SETTINGS = ("config", "_ray_commit", "_ray_release", "_inject_current_ray")
REFUSED = (
    "rnnbench's lean Ray sets up no runtime env field but env_vars (its runtime-env agent is a stand-in), and "
    "this worker's runtime env has {fields}: start the sweep with RNNBENCH_LEAN_RAY=0, or on a Ray of your own "
    "(--address)"
)
OK, FAILED = 0, 1  # ray.rpc.AgentRpcStatus


def main(argv: list[str]) -> None:
    options = dict(arg[2:].split("=", 1) for arg in argv if arg.startswith("--") and "=" in arg)
    for name, stream in (("stdout-filepath", 1), ("stderr-filepath", 2)):
        if options.get(name):  # where Ray's agent would write its output (a failed bind's traceback)
            try:
                opened = os.open(options[name], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            except OSError:  # the output stays where the raylet sent it; the stand-in still serves
                continue
            os.dup2(opened, stream)
            os.close(opened)
    if "runtime-env-agent-port" in options:
        serve_runtime_envs(options)
    else:
        for name in PORTS:
            write_port(options, name, "-1")
    wait_for_the_raylet()


def write_port(options: dict[str, str], name: str, value: str) -> None:
    path = os.path.join(options["session-dir"], f"{name}_{options['node-id']}")
    # Whole or absent: the raylet polls for the file.
    with open(path + ".part", "w") as handle:
        handle.write(value)
    os.replace(path + ".part", path)


def wait_for_the_raylet() -> None:
    """Return once the raylet is gone (Ray's agents end with it)."""
    if os.environ.get(PIPE_CHECK, "1").lower() in ("0", "false"):
        # Ray told its agents to watch the raylet's pid instead of a pipe: stdin is not the raylet's then.
        # The raylet is its parent: once it is gone, this process has another.
        raylet = int(os.environ.get("RAY_RAYLET_PID", os.getppid()))
        while os.getppid() == raylet:
            time.sleep(1)
        return
    # The raylet holds the other end of this pipe: end of file means it is gone.
    sys.stdin.buffer.read()


def serve_runtime_envs(options: dict[str, str]) -> None:
    """Answer the raylet's runtime-env requests (protobuf over HTTP POST, as Ray's agent) in a thread."""
    import http.server
    import socket
    import socketserver

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # the raylet keeps its connection open between requests
        disable_nagle_algorithm = True  # the headers and the body are two writes on a kept connection

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            answer = reply(self.path, body)
            self.send_response(200 if answer is not None else 404)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(answer or b"")))
            self.end_headers()
            self.wfile.write(answer or b"")

        def log_message(self, *args: object) -> None:
            pass  # a line per request on stderr, which Ray keeps in its logs

    host, port = options["node-ip-address"], int(options["runtime-env-agent-port"] or 0)
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]

    class Server(http.server.ThreadingHTTPServer):
        address_family = family
        daemon_threads = True
        request_queue_size = 128  # the raylet may open several connections at once

        def server_bind(self) -> None:
            # HTTPServer's own looks the host's name up (socket.getfqdn), which can wait on a resolver.
            socketserver.TCPServer.server_bind(self)

    server = Server((host, port), Handler)
    write_port(options, RUNTIME_ENV_PORT, str(server.server_address[1]))
    threading.Thread(target=server.serve_forever, daemon=True).start()


def reply(path: str, body: bytes) -> bytes | None:
    """The serialized reply to one request; None for a path Ray's agent does not serve."""
    if path == "/get_or_create_runtime_env":
        try:
            serialized = fields(body).get(1, b"")
            if not isinstance(serialized, bytes):
                raise ValueError("its serialized_runtime_env is a number, not a string")
            runtime_env = json.loads(serialized)
            if not isinstance(runtime_env, dict):
                raise ValueError(f"the runtime env is a JSON {type(runtime_env).__name__}, not an object")
        except Exception as exc:  # answered, not dropped: the raylet ends itself when its agent fails
            return failed(f"rnnbench's runtime-env stand-in could not read the request: {exc!r}")
        return created(runtime_env)
    if path in ("/delete_runtime_env_if_possible", "/get_runtime_envs_info"):
        return b""  # status OK; nothing set up, so nothing to delete or list
    return None


def created(runtime_env: dict) -> bytes:
    """A GetOrCreateRuntimeEnvReply for ``runtime_env`` (Ray's serialized runtime env, read)."""
    refused = sorted(
        name
        for name, value in runtime_env.items()
        if value not in (None, "", {}, []) and name not in SETTINGS + SERVED
    )
    if refused:
        return failed(REFUSED.format(fields=", ".join(refused)))
    # ray._private.runtime_env.context.RuntimeEnvContext(env_vars=...).serialize(), as Ray's agent answers.
    context = {
        "command_prefix": [],
        "env_vars": runtime_env.get("env_vars") or {},
        "py_executable": sys.executable,
        "override_worker_entrypoint": None,
        "java_jars": [],
    }
    return field(1, OK) + field(3, json.dumps(context).encode())


def failed(message: str) -> bytes:
    """A reply whose status is FAILED, with ``message`` for Ray's RuntimeEnvSetupError."""
    return field(1, FAILED) + field(2, message.encode())


def fields(message: bytes) -> dict[int, bytes | int]:
    """A protobuf message's fields by number (the last of each; varints and length-delimited only)."""
    found: dict[int, bytes | int] = {}
    at = 0
    while at < len(message):
        key, at = varint(message, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            found[number], at = varint(message, at)
        elif wire == 2:
            size, at = varint(message, at)
            if at + size > len(message):
                raise ValueError(f"protobuf field {number} cut short at byte {len(message)}")
            found[number], at = message[at : at + size], at + size
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
        else:
            raise ValueError(f"protobuf wire type {wire} at byte {at}")
    return found


def varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if byte < 0x80:
            return value, at
        shift += 7


def field(number: int, value: int | bytes) -> bytes:
    """One protobuf field: a varint (an enum) or a length-delimited string."""
    if isinstance(value, int):
        return encode(number << 3) + encode(value)
    return encode(number << 3 | 2) + encode(len(value)) + value


def encode(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


if __name__ == "__main__":
    main(sys.argv[1:])
