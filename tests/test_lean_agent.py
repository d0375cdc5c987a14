"""The stand-ins for Ray's node agents on a sweep's own Ray (``rnnbench/sweep/lean_agent.py``)."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnbench.sweep import lean_agent
from rnnbench.sweep.cluster import lean_raylet_command

DASHBOARD = ["/py", "-u", "/site/ray/dashboard/agent.py", "--node-id=abc"]
RUNTIME_ENV = ["/py", "-u", "/site/ray/_private/runtime_env/agent/main.py", "--node-id=abc",
               "--node-ip-address=127.0.0.1", "--runtime-env-agent-port=0", "--gcs-address=127.0.0.1:1"]  # fmt: skip


def _option(key: str, words: list[str]) -> str:
    return key + " ".join(words)


def _words(arg: str) -> list[str]:
    return shlex.split(arg.split("=", 1)[1])


def test_the_lean_raylet_runs_the_stand_ins_where_they_have_what_they_need(tmp_path):
    """The raylet's command keeps every argument but its agents': the runtime-env agent's always, the
    dashboard agent's only where Ray marked it minimal, each with the agent's own arguments. A command it
    cannot split, or one without what the stand-in needs, keeps Ray's agent."""
    session = f"--session-dir={tmp_path}"
    dashboard = _option("--dashboard_agent_command=", [*DASHBOARD[:3], session, *DASHBOARD[3:], "--minimal"])
    runtime_env = _option("--runtime_env_agent_command=", [*RUNTIME_ENV[:3], session, *RUNTIME_ENV[3:]])
    command = ["/raylet", "--num_prestart_python_workers=2"]
    lean = lean_raylet_command([*command, dashboard, runtime_env])
    assert lean[:2] == command
    assert _words(lean[2]) == [
        sys.executable,
        "-S",
        lean_agent.__file__,
        session,
        *DASHBOARD[3:],
        "--minimal",
    ]
    assert _words(lean[3]) == [sys.executable, "-S", lean_agent.__file__, session, *RUNTIME_ENV[3:]]
    whole = [*command, dashboard.replace(" --minimal", "")]
    assert lean_raylet_command(whole) == whole, "a dashboard agent that serves something runs"
    unread = [*command, dashboard + " 'unbalanced", runtime_env + " 'unbalanced"]
    assert lean_raylet_command(unread) == unread, "a command it cannot split keeps Ray's agent"
    unnamed = [*command, dashboard.replace(session, ""), runtime_env.replace(" --node-id=abc", "")]
    assert lean_raylet_command(unnamed) == unnamed, (
        "without the node's id the stand-ins could not name their files"
    )
    other = [*command, runtime_env.replace("runtime_env/agent/main.py", "runtime_env/agent/other.py")]
    assert lean_raylet_command(other) == other, "another script than Ray's agent is left alone"
    kept = lean_raylet_command([*command, dashboard, runtime_env], keep_runtime_env_agent=True)
    assert kept == [*lean[:3], runtime_env], (
        "Ray's runtime-env agent kept where the job will have a runtime env"
    )


def a_hook(runtime_env: dict | None) -> dict:
    """A runtime-env hook (``RAY_RUNTIME_ENV_HOOK``) as a user would set one."""
    return {**(runtime_env or {}), "env_vars": {"FROM_THE_HOOK": "1"}}


def test_rays_runtime_env_agent_runs_where_the_drivers_job_will_have_a_runtime_env(monkeypatch):
    """Under ``uv run``, with a runtime-env hook or as a Ray job with a runtime env, ray.init gives the
    driver's whole job a runtime env (every worker then asks for it) that the stand-in could not set up;
    where Ray's own decision can run here, it agrees."""
    from ray._private import ray_constants
    from ray._private.runtime_env import uv_runtime_env_hook
    from ray._private.worker import _maybe_modify_runtime_env

    from rnnbench.sweep.cluster import job_runtime_env_expected

    for name in (ray_constants.RAY_RUNTIME_ENV_HOOK, "RAY_JOB_CONFIG_JSON_ENV_VAR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(uv_runtime_env_hook, "_get_uv_run_cmdline", lambda: None)
    assert job_runtime_env_expected() is False, "a plain command, as the tests run it"
    assert not _maybe_modify_runtime_env(None, False), "Ray agrees"
    monkeypatch.setattr(uv_runtime_env_hook, "_get_uv_run_cmdline", lambda: ["/bin/uv", "run", "rnnbench"])
    assert job_runtime_env_expected() is True
    monkeypatch.setattr(ray_constants, "RAY_ENABLE_UV_RUN_RUNTIME_ENV", False)
    assert job_runtime_env_expected() is False, "Ray told not to ship the uv project"
    monkeypatch.setenv(ray_constants.RAY_RUNTIME_ENV_HOOK, f"{__name__}.a_hook")
    assert job_runtime_env_expected() is True
    assert _maybe_modify_runtime_env(None, False) == {"env_vars": {"FROM_THE_HOOK": "1"}}, "Ray agrees"
    monkeypatch.delenv(ray_constants.RAY_RUNTIME_ENV_HOOK)
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps({"runtime_env": {"working_dir": "/x"}}))
    assert job_runtime_env_expected() is True
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps({"metadata": {}}))
    assert job_runtime_env_expected() is False, "a Ray job without a runtime env"
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", "not json")
    assert job_runtime_env_expected() is True, "unreadable: Ray's agent kept"


def _started(words: list[str], names: list[str], folder: Path) -> subprocess.Popen:
    process = subprocess.Popen(words, stdin=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not all((folder / name).exists() for name in names) and time.monotonic() < deadline:
        time.sleep(0.02)
    return process


def test_the_dashboard_stand_in_writes_the_minimal_agents_ports_and_ends_with_the_raylet(tmp_path):
    """It writes the ports a minimal agent writes ("-1": not served) and ends when the raylet's end of its
    standard input closes, or (told to watch the raylet's pid) once its parent has ended."""
    words = [
        sys.executable,
        "-S",
        lean_agent.__file__,
        f"--session-dir={tmp_path}",
        "--node-id=abc",
        "--minimal",
    ]
    names = [f"{name}_abc" for name in lean_agent.PORTS]
    process = _started(words, names, tmp_path)
    assert [(tmp_path / name).read_text() for name in names] == ["-1"] * 3
    assert process.poll() is None, "it waits for the raylet"
    process.stdin.close()
    assert process.wait(timeout=30) == 0

    parent = subprocess.Popen(["/bin/sh", "-c", f"{shlex.join(words)} </dev/null & echo $!; sleep 2"],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, lean_agent.PIPE_CHECK: "0"})  # fmt: skip
    stand_in = int(parent.stdout.readline())

    def running() -> bool:  # a zombie has ended (a container's first process may never reap it)
        with contextlib.suppress(OSError):
            return Path(f"/proc/{stand_in}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        return False

    time.sleep(0.5)
    assert running() and parent.poll() is None, "its standard input is closed, its parent is not: it waits"
    assert parent.wait(timeout=30) == 0
    deadline = time.monotonic() + 30
    while running() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(), "it ended with its parent"


def _create_request(runtime_env: dict | list) -> bytes:
    """A GetOrCreateRuntimeEnvRequest as the raylet sends it (every field set), by Ray's own message."""
    from ray.core.generated import runtime_env_agent_pb2 as messages

    request = messages.GetOrCreateRuntimeEnvRequest(serialized_runtime_env=json.dumps(runtime_env),
                                                    job_id=b"\x01\x00\x00\x00", source_process="raylet")  # fmt: skip
    request.runtime_env_config.setup_timeout_seconds = 600
    request.runtime_env_config.log_files.append("/tmp/x.log")
    return request.SerializeToString()


def test_the_runtime_env_stand_in_answers_as_rays_agent_for_env_vars_and_refuses_the_rest():
    """Ray's own messages read its replies: the context of an env_vars-only runtime env is the one Ray's
    agent builds (``RuntimeEnvContext``: a Ray that adds a field fails here), and any other field is refused,
    naming the field and the way out; deleting and listing are answered, an unknown path is not."""
    from ray._private.runtime_env.context import RuntimeEnvContext
    from ray.core.generated import runtime_env_agent_pb2 as messages

    variables = {"AWS_ACCESS_KEY_ID": "key", "ODD": 'a b\n"c"'}
    reply = messages.GetOrCreateRuntimeEnvReply.FromString(
        lean_agent.reply(
            "/get_or_create_runtime_env", _create_request({"env_vars": variables, "config": {"x": 1}})
        )
    )
    assert reply.status == messages.AGENT_RPC_STATUS_OK, reply.error_message
    assert json.loads(reply.serialized_runtime_env_context) == json.loads(
        RuntimeEnvContext(env_vars=variables).serialize()
    )
    refused = messages.GetOrCreateRuntimeEnvReply.FromString(
        lean_agent.reply(
            "/get_or_create_runtime_env",
            _create_request({"pip": ["x"], "env_vars": variables, "_ray_commit": "abc"}),
        )
    )
    assert refused.status == messages.AGENT_RPC_STATUS_FAILED and not refused.serialized_runtime_env_context
    assert "runtime env has pip:" in refused.error_message and "RNNBENCH_LEAN_RAY=0" in refused.error_message
    assert (
        "has _nsight:"
        in messages.GetOrCreateRuntimeEnvReply.FromString(
            lean_agent.reply("/get_or_create_runtime_env", _create_request({"_nsight": "default"}))
        ).error_message
    ), "a profiler's command prefix is refused, not ignored"
    nothing = lean_agent.reply("/get_or_create_runtime_env", _create_request({}))
    assert messages.GetOrCreateRuntimeEnvReply.FromString(nothing).status == messages.AGENT_RPC_STATUS_OK
    # What Ray's agent cannot read either is answered FAILED, not dropped (the raylet ends itself when its
    # agent stops answering): no runtime env, one that is not a JSON object, cut messages, a number in its place.
    whole = _create_request({"pip": ["x"]})
    for body in (b"", _create_request([]), whole[:-3], whole[:5], whole[:1], b"\x08\x01"):
        unread = messages.GetOrCreateRuntimeEnvReply.FromString(
            lean_agent.reply("/get_or_create_runtime_env", body)
        )
        assert unread.status == messages.AGENT_RPC_STATUS_FAILED and "could not read" in unread.error_message
    deleted = messages.DeleteRuntimeEnvIfPossibleReply.FromString(
        lean_agent.reply("/delete_runtime_env_if_possible", b"\n\x02{}\x12\x06raylet")
    )
    assert deleted.status == messages.AGENT_RPC_STATUS_OK
    assert (
        messages.GetRuntimeEnvsInfoReply.FromString(lean_agent.reply("/get_runtime_envs_info", b"")).total
        == 0
    )
    assert lean_agent.reply("/anything_else", b"") is None
    with pytest.raises(ValueError, match="wire type 7"):
        lean_agent.fields(b"\x0f")


def test_the_runtime_env_stand_in_serves_over_http_on_its_written_port_until_the_raylet_ends(tmp_path):
    """As the raylet reaches it: the port it bound, written to the session's folder, answers POSTs on
    one kept connection (through no proxy); it ends when its standard input closes."""
    from http.client import HTTPConnection

    from ray.core.generated import runtime_env_agent_pb2 as messages

    # Its output where Ray names the agent's files; a file it cannot open leaves that stream as it was.
    output = [
        f"--stdout-filepath={tmp_path / 'agent.out'}",
        f"--stderr-filepath={tmp_path / 'gone' / 'agent.err'}",
    ]
    words = [
        sys.executable,
        "-S",
        lean_agent.__file__,
        f"--session-dir={tmp_path}",
        *RUNTIME_ENV[3:],
        *output,
    ]
    name = f"{lean_agent.RUNTIME_ENV_PORT}_abc"
    process = _started(words, [name], tmp_path)
    assert (tmp_path / "agent.out").exists() and not (tmp_path / "gone").exists()
    try:
        port = int((tmp_path / name).read_text())
        connection = HTTPConnection("127.0.0.1", port, timeout=30)
        for variables in ({"A": "1"}, {"B": "2"}):
            connection.request("POST", "/get_or_create_runtime_env", _create_request({"env_vars": variables}))
            answer = connection.getresponse()
            assert answer.status == 200
            context = messages.GetOrCreateRuntimeEnvReply.FromString(
                answer.read()
            ).serialized_runtime_env_context
            assert json.loads(context)["env_vars"] == variables
        connection.request("POST", "/nope", b"")
        answer = connection.getresponse()
        assert answer.status == 404 and answer.read() == b""
        assert process.poll() is None
    finally:
        process.stdin.close()
        code = process.wait(timeout=30)
    assert code == 0


def test_a_sweeps_own_ray_runs_env_vars_workers_and_refuses_other_runtime_envs_clearly(ray_session):
    """On a lean Ray (the test session's, started as a sweep's): the raylet's runtime-env agent is the
    stand-in; a worker whose runtime env sets variables gets them, and one that asks for packages fails at
    once with the stand-in's reason instead of waiting."""
    import psutil
    import ray

    node = ray._private.worker._global_node
    raylet = psutil.Process(node.all_processes["raylet"][0].process.pid)
    agents = [" ".join(child.cmdline()) for child in raylet.children()]
    assert sum("lean_agent.py" in agent and "--runtime-env-agent-port=" in agent for agent in agents) == 1, (
        agents
    )

    @ray.remote(num_cpus=0)
    def variable() -> str | None:
        return os.environ.get("RNNBENCH_TEST_VARIABLE")

    assert ray.get(variable.options(runtime_env={"env_vars": {"RNNBENCH_TEST_VARIABLE": "set"}}).remote(),
                   timeout=120) == "set"  # fmt: skip
    started = time.monotonic()
    with pytest.raises(
        ray.exceptions.RuntimeEnvSetupError, match=r"runtime env has pip: .*RNNBENCH_LEAN_RAY=0"
    ):
        ray.get(variable.options(runtime_env={"pip": ["nothing-installed"]}).remote(), timeout=120)
    assert time.monotonic() - started < 30
