"""The Ray cluster a sweep runs on: started here or joined, and checked before any trial."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rnnbench.errors import error_chain, root_cause
from rnnbench.sweep.settings import SweepSettings
from rnnbench.sweep.state import SweepError

# The embedded Ray is single-node: Ray then registers and binds every process (GCS, raylet, core
# workers, agents) on 127.0.0.1 instead of every interface.
EMBEDDED_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
# Unless set otherwise: Ray prestarts one worker per CPU when the first driver connects. A trial's actor
# takes one where no runtime env sets them apart (a pid check), but ray.init then returns only once they
# are up: with one prestarted worker, ray.init took 3.4-3.6 s against 2.5-3.7 s and a first actor 0.7-0.8 s
# against 1.5-1.7 s (three runs each), and the one-trial sweep's worker entered its trial no sooner (four
# interleaved runs a side, docs/benchmarks.md). The start moves, it does not shrink; a second idle worker
# importing Ray on 2 cores only slows it.
EMBEDDED_DEFAULTS = {"RAY_prestart_worker_first_driver": "false"}
# RNNBENCH_LEAN_RAY=0 starts an embedded Ray with the processes ``lean_head`` leaves out (``LEFT_OUT``).
LEAN_ENV = "RNNBENCH_LEAN_RAY"
# Ray >= 2.59 turns token authentication on for a new local cluster and says so on stderr at every
# start (the README's Security section says it instead).
TOKEN_NOTICE_LOGGER = "ray._private.authentication.authentication_token_setup"
_saved_env: dict[str, str | None] = {}
_saved_cluster: list[bool] = []
_saved_sigterm: list[Any] = []
terminated = threading.Event()  # set once SIGTERM arrived: the command exits 143 (128 + 15), not 130
# The processes ``lean_head`` saw Ray start (type, Ray's ProcessInfo), and the types without which it is down.
_head_processes: list[tuple[str, Any]] = []
VITAL = ("gcs_server", "raylet")  # ray_constants.PROCESS_TYPE_GCS_SERVER, PROCESS_TYPE_RAYLET


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

    tune_for_sweeps()
    if ray.is_initialized():
        return False
    if settings.address:
        check_address(settings.address)
    else:
        _embedded_environment()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # On Ctrl-C Tune suggests Tuner.restore(...); rnnbench prints its own resume command instead.
    silence("ray.tune.tune", "Tuner.restore")
    # The recorder writes each trial's MLflow record on the driver before Optuna is told (by design):
    # under load that takes over Tune's 0.5 s warning threshold, which then printed over the live
    # table and broke `--json`'s clean stderr.
    silence("ray.tune.utils.util", "may be a performance bottleneck")
    try:
        with contextlib.nullcontext() if settings.address else lean_head():
            ray.init(
                # "local" starts a new Ray here; without it ray.init joins any cluster already running on the
                # host.
                address=settings.address or "local",
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=False,
                configure_logging=True,
                # No runtime_env (such as a worker_process_setup_hook to import torch early): it routed each
                # worker through Ray's runtime-env set-up, and two actors came up in a median 4.9 s with it,
                # 4.3 s without (9 rounds a side; the one-trial sweep's figures are in docs/benchmarks.md).
            )
    except ConnectionError as exc:
        raise _refused(settings.address, exc) from None
    stop_on_sigterm()
    return True


# The Ray Node methods that lean_head makes no-ops.
LEFT_OUT = ("start_monitor", "start_api_server", "start_log_monitor")


@contextmanager
def lean_head() -> Iterator[None]:
    """While it lasts, a Ray started in this process leaves out three processes a sweep never uses: the
    autoscaler monitor (a local Ray has nothing to scale), the API server that ``ray.init`` starts even with
    ``include_dashboard=False`` (jobs, the state API; nothing in a sweep calls them), and the log monitor,
    which sends the workers' output to drivers that ask for it (a sweep's driver starts Ray with
    ``log_to_driver=False``; each worker's output stays in its files under the session's ``logs/``).

    Each is a Python process that imports much of Ray as the driver imports torch and MLflow beside it:
    on 2 cores, a local Ray with one actor took 5.1-7.1 s of CPU without the first two, 8.3-9.5 s with them
    (3 interleaved runs a side, ``/proc`` per process), and the command's own start waited on that CPU. The
    log monitor rescans every worker's log files in a loop for as long as Ray lives: over the test suite,
    each of the two long-lived test Rays' log monitors took 14-17 s of CPU. ``RNNBENCH_LEAN_RAY=0`` keeps
    all three (for ``ray status``, Ray's state API or the workers' output on a driver that joins a sweep's
    own Ray; a Ray started with ``ray start --head`` and joined with ``--address`` always has them). Ray's
    private node methods: where Ray renames or removes them, it starts all three as before.

    Two more are replaced by ``lean_agent``, which the raylet waits for as for Ray's node agents: the dashboard
    agent where the dashboard's packages are not installed (it serves nothing then: it writes "not served"
    for its ports and watches the raylet; 0.01 s of CPU instead of 1.1-1.5 s, and the one-trial sweep's
    worker entered its trial 1.1 s sooner, medians of six interleaved runs a side, docs/sweeps.md), and the
    runtime-env agent, which sets up the runtime envs of workers that have one: the stand-in sets up
    ``env_vars`` alone (``ray.init`` 0.38 s against 1.37 s, ``benchmarks/ray_start.py``). Where ray.init will
    give the driver's whole job a runtime env (``job_runtime_env_expected``), Ray's runtime-env agent runs."""
    if os.environ.get(LEAN_ENV, "1") == "0":
        yield
        return
    from ray._private import services
    from ray._private.node import Node

    keep_runtime_env_agent = job_runtime_env_expected()
    saved = {name: Node.__dict__.get(name) for name in LEFT_OUT}
    if None in saved.values():  # Ray moved them: start it whole
        yield
        return
    for name in LEFT_OUT:
        setattr(Node, name, lambda self, *args, **kwargs: None)
    start_process = services.start_ray_process

    def start_lean(command: list[str], process_type: str, *args: Any, **kwargs: Any) -> Any:
        if process_type == "raylet":
            command = lean_raylet_command(command, keep_runtime_env_agent=keep_runtime_env_agent)
        started = start_process(command, process_type, *args, **kwargs)
        _head_processes.append((process_type, started))
        return started

    services.start_ray_process = start_lean
    try:
        yield
    finally:
        for name, method in saved.items():
            setattr(Node, name, method)
        services.start_ray_process = start_process


def lean_raylet_command(command: list[str], keep_runtime_env_agent: bool = False) -> list[str]:
    """The raylet's command, with ``lean_agent`` for the runtime-env agent (unless kept), and for the
    dashboard agent where Ray would start that agent minimal (``--minimal``: the dashboard's packages are not
    installed, so it would serve nothing). An agent's command this cannot read keeps Ray's agent."""
    lean = []
    for arg in command:
        for key, script, needs in AGENTS:
            if arg.startswith(key) and not (keep_runtime_env_agent and key == RUNTIME_ENV_AGENT):
                arg = key + _stand_in(arg.removeprefix(key), script, needs)
        lean.append(arg)
    return lean


def job_runtime_env_expected() -> bool:
    """Whether ``ray.init`` will give this driver's job a runtime env, and so every worker one that the
    stand-in could not set up: run under ``uv run`` (Ray then ships the driver's uv project to the workers),
    with a runtime-env hook (``RAY_RUNTIME_ENV_HOOK``), or as a Ray job's entrypoint whose job has a runtime
    env. rnnbench's own ``ray.init`` calls pass none. True where Ray's private checks moved."""
    import json

    try:
        from ray._private import ray_constants
        from ray._private.runtime_env.constants import RAY_JOB_CONFIG_JSON_ENV_VAR

        if ray_constants.RAY_RUNTIME_ENV_HOOK in os.environ:
            return True
        if RAY_JOB_CONFIG_JSON_ENV_VAR in os.environ:
            # Ray's job supervisor sets it for every job, one without a runtime env too.
            if json.loads(os.environ[RAY_JOB_CONFIG_JSON_ENV_VAR]).get("runtime_env"):
                return True
        if not ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV:
            return False
        from ray._private.runtime_env.uv_runtime_env_hook import _get_uv_run_cmdline

        return bool(_get_uv_run_cmdline())
    except Exception:  # Ray renamed them, or the job's settings are unreadable: keep its agent, not guess
        return True


RUNTIME_ENV_AGENT = "--runtime_env_agent_command="
# The raylet's options that start its agents: each option, the agent's script, and what the stand-in needs.
AGENTS = (
    (
        "--dashboard_agent_command=",
        os.path.join("dashboard", "agent.py"),
        ("session-dir", "node-id", "minimal"),
    ),
    (
        RUNTIME_ENV_AGENT,
        os.path.join("runtime_env", "agent", "main.py"),
        ("session-dir", "node-id", "node-ip-address", "runtime-env-agent-port"),
    ),
)


def _stand_in(agent_command: str, script: str, needs: tuple[str, ...]) -> str:
    """``agent_command`` with ``lean_agent`` in place of Ray's ``script``, where it has what the stand-in
    needs (a Ray that renamed them keeps its own agent)."""
    import shlex
    import subprocess
    import sys

    from rnnbench.sweep import lean_agent

    try:
        words = shlex.split(agent_command)
    except ValueError:  # quoted in a way this cannot read
        return agent_command
    at = next((i for i, word in enumerate(words) if word.endswith(script)), None)
    given = {word[2:].split("=", 1)[0] for word in words if word.startswith("--")}
    if at is None or not set(needs) <= given:
        return agent_command
    # -S: the stand-in needs the standard library only, not the site-packages' start-up.
    return subprocess.list2cmdline([sys.executable, "-S", lean_agent.__file__, *words[at + 1 :]])


@functools.cache
def silence(logger: str, text: str) -> None:
    """Drop ``logger``'s records whose message contains ``text``: one filter per process, however many
    sweeps it runs (a filter added per sweep piled up in a process running many)."""
    logging.getLogger(logger).addFilter(lambda record: text not in record.getMessage())


def stop_on_sigterm() -> None:
    """SIGTERM stops the sweep as Ctrl-C does. Set after ray.init, whose core installs its own handler
    (a stack dump, then abort); Python sets handlers from the main thread only."""
    if threading.current_thread() is threading.main_thread():
        _saved_sigterm.append(signal.signal(signal.SIGTERM, stop_as_on_ctrl_c))


class RayStart:
    """``connect`` in a thread, so that the task's data and the cells are checked (in a forked child where
    the driver can fork: ``forked_check``) and the store opened while Ray's processes start: seconds each
    (docs/sweeps.md).

    ``begin`` starts it, ``wait`` (from the main thread) gives ``connect``'s answer, ``stop`` shuts down a
    Ray started here, once, waiting for the start first. Ctrl-C must be held while the thread runs
    (``held_interrupts``): it imports Ray, and an interrupt raised in the main thread during an import can
    leave CPython's import lock held (see ``driver._start_beside_ray``)."""

    def __init__(self) -> None:
        self._release = threading.Event()
        self._starting: Any = None
        self._sigterm_before: Any = None
        self._sigterm_set = False
        self._stopped = False

    def begin(self, settings: SweepSettings) -> None:
        from concurrent.futures import Future

        # Ray warns that it set no SIGTERM handler outside the main thread: stop_on_sigterm sets rnnbench's.
        silence("ray._private.worker", "SIGTERM handler is not set")
        self._sigterm_before = signal.getsignal(signal.SIGTERM)
        self._starting = Future()
        _head_processes.clear()  # an earlier start's, long shut down, are not this one's
        # A daemon thread: where the Ray it starts has died under it, the command exits without waiting
        # for ray.init's retries (``stop``).
        threading.Thread(target=self._connect, args=(settings,), name="rnnbench-ray", daemon=True).start()

    def _connect(self, settings: SweepSettings) -> None:
        try:
            self._starting.set_result(connect(settings))
        except BaseException as exc:  # handed to the main thread, which reports it
            self._starting.set_exception(exc)
        # Ray's processes were started from this thread with a parent-death signal, which Linux sends when
        # the thread exits, not the process (the GCS and raylet were killed): it ends once ``stop`` is done.
        self._release.wait()

    def poll(self) -> None:
        """Once Ray is up, SIGTERM stops the sweep again: Ray's core replaced the handler as it started."""
        if self._starting is not None and self._starting.done() and self._starting.exception() is None:
            self._handle_sigterm(self._starting.result())

    def wait(self) -> bool:
        """Whether this process started (or joined) Ray; Ray's own error if it could not."""
        started = self._answer()
        self._handle_sigterm(started)
        return started

    def _answer(self) -> bool:
        """The thread's answer, once it has one; a SweepError at once where the Ray it is starting lost its
        GCS or raylet: a SIGTERM to the command's process group (``timeout``, Slurm, systemd) ends them too,
        and ray.init then tried to reach the dead GCS for 15 s before failing (the command exited 17 s after
        the signal instead of 0.5 s)."""
        while True:
            try:
                return bool(self._starting.result(timeout=0.1))
            except TimeoutError:
                if head_died():
                    raise SweepError(
                        "the Ray this sweep started lost its GCS server or raylet while starting (a signal to "
                        "the command's process group, or the out-of-memory killer); Ray's own logs are under "
                        "its session folder (/tmp/ray/session_latest/logs by default)"
                    ) from None

    def _handle_sigterm(self, started: bool) -> None:
        if started and not self._sigterm_set:
            self._sigterm_set = True
            stop_on_sigterm()

    def stop(self, hand_on: bool = True) -> None:
        """Shut down the Ray started here (once); a Ctrl-C held meanwhile is handed on unless
        ``hand_on`` is false (an error already stops the sweep: it is the one to report)."""
        if self._starting is None or self._stopped:
            return
        self._stopped = True
        with held_interrupts() as held:  # the thread may still be importing Ray
            started = self._start_result()
            disconnect(started)
            if started and not self._sigterm_set and threading.current_thread() is threading.main_thread():
                # Stopped before rnnbench's handler came back: the one before Ray's start, not Ray's abort.
                before = self._sigterm_before
                signal.signal(signal.SIGTERM, before if before is not None else signal.SIG_DFL)
            self._release.set()
        handler = signal.getsignal(signal.SIGINT)
        if held and hand_on and callable(handler):  # to a hold around this one, or raised as Ctrl-C
            handler(signal.SIGINT, None)

    def _start_result(self) -> bool:
        """Whether the thread started Ray; False where it failed or its Ray died starting (``_answer``)."""
        try:
            return self._answer()
        except BaseException:  # nothing started; the error that stopped the sweep is the one to show
            return False

    def __enter__(self) -> RayStart:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        self.stop(hand_on=kind is None)


def head_died() -> bool:
    """Whether the GCS or the raylet of the Ray this process is starting (``lean_head``) has exited; never
    for a Ray joined, or one started whole (``RNNBENCH_LEAN_RAY=0``): that start takes ray.init's own answer."""
    try:
        return any(kind in VITAL and info.process.poll() is not None for kind, info in list(_head_processes))
    except Exception:  # Ray's private process record moved: wait for ray.init's own answer
        return False


def _refused(address: str | None, exc: ConnectionError) -> Exception:
    """The error to show when ray.init could not join ``address``: Ray's own says only that it failed."""
    from ray.exceptions import AuthenticationError

    # After Ray's last retry the refusal is an AuthenticationError; after an earlier one, its text.
    chain = error_chain(exc)
    if address and any(isinstance(e, AuthenticationError) or "InvalidAuthToken" in str(e) for e in chain):
        # Ray never sends this host's token to an address given explicitly (it could be anyone's): the
        # user opts in, as `ray start --address` requires.
        return SweepError(
            f"Ray address {address}: the cluster requires token authentication and this process sent no "
            "token; set RAY_AUTH_MODE=token, with the cluster's token in ~/.ray/auth_token, $RAY_AUTH_TOKEN_PATH "
            "or $RAY_AUTH_TOKEN (`ray get-auth-token` on the head node prints it)"
        )
    return SweepError(f"Ray address {address or 'local'}: could not connect ({root_cause(exc)})")


def tune_for_sweeps() -> None:
    """Set up this process's Ray Tune for sweeps, whether Ray is started here, joined, or already up (an
    in-process sweep on a session's Ray). Idempotent."""
    oom_kills_as_worker_deaths()
    trial_workers_without_runtime_env()
    # Tune keeps every checkpoint it is told of (num_to_keep=None: rnnbench's CheckpointDropper deletes the
    # older ones); its record of each then holds the checkpoint alone, not a copy of the epoch's metrics.
    os.environ.setdefault("TUNE_ONLY_STORE_CHECKPOINT_SCORE_ATTRIBUTE", "1")
    # Tune's own JSON and CSV logs of every result, in every trial's folder: nothing reads them (MLflow holds
    # the record), and writing them took 14 ms of the driver's CPU per trial. Without them, Tune's result
    # grid at the end finds no per-trial files to read and says so, once, for every trial.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    silence("ray.tune.analysis.experiment_analysis", "Failed to fetch metrics")


def trial_workers_without_runtime_env() -> None:
    """Start trial workers as plain Ray workers: drop the one variable Tune puts in every trainable's
    runtime env, ``PL_DISABLE_FORK`` (for PyTorch Lightning, which no trial uses).

    A worker with a runtime env is set up through Ray's runtime-env agent and a second Python process
    (``setup_worker.py``, then an exec of the worker). An actor importing torch came up in a median 3.6 s
    (3.3 s of its CPU) with Tune's runtime env, 2.8 s (2.6 s) without, 6 interleaved rounds a side (docs/
    sweeps.md). Variables Tune propagates from the driver (AWS credentials, Ray Train's) still make a
    runtime env where they are set. Idempotent."""
    from ray.tune.execution import class_cache

    class_cache.DEFAULT_ENV_VARS.pop("PL_DISABLE_FORK", None)


def oom_kills_as_worker_deaths() -> None:
    """Make Tune treat a trial worker killed by Ray's memory monitor as a worker death.

    Ray raises ``OutOfMemoryError`` for such a kill, which is neither of the two errors Tune's actor
    manager handles (``RayActorError``, ``RayTaskError``): Tune 2.5x then raises "Caught unexpected
    exception" out of ``Tuner.fit`` and the whole sweep stops. As an actor error, the trial is retried
    under ``max_failures`` and then recorded as failed, with Ray's reason in its error (measured with a
    real kill: tests/test_faults.py). Idempotent; changes nothing for any other error.
    """
    from ray.air.execution._internal.actor_manager import RayActorManager
    from ray.exceptions import OutOfMemoryError, RayActorError

    original = RayActorManager._actor_task_failed
    if getattr(original, "rnnbench_oom", False):
        return

    def _actor_task_failed(self: Any, tracked_actor_task: Any, exception: Exception) -> None:
        if isinstance(exception, OutOfMemoryError):
            lines = str(exception).splitlines()
            reason = " ".join(line for line in lines[:3] if not line.startswith("Object store"))
            exception = RayActorError(error_msg=f"OutOfMemoryError: {reason}")
        original(self, tracked_actor_task, exception)

    _actor_task_failed.rnnbench_oom = True  # type: ignore[attr-defined]
    RayActorManager._actor_task_failed = _actor_task_failed  # type: ignore[method-assign]


@contextmanager
def held_interrupts() -> Iterator[list[int]]:
    """Hold Ctrl-C (and SIGTERM, which acts as Ctrl-C) until the block ends: the list yielded holds the
    signals that arrived, for the caller to act on. Outside the main thread it holds nothing."""
    held: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield held
    finally:
        signal.signal(signal.SIGINT, previous)


def stop_as_on_ctrl_c(signum: int, frame: Any) -> None:
    """SIGTERM (timeout, systemd, Kubernetes, batch schedulers) stops a sweep as Ctrl-C does: runs cut
    short are KILLED and the resume command is printed."""
    terminated.set()
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):  # Tune's graceful stop while trials run, else Python's KeyboardInterrupt
        handler(signal.SIGINT, frame)
    else:  # SIGINT ignored (a background job) or left to the OS: stop all the same
        raise KeyboardInterrupt


def _embedded_environment() -> None:
    """Loopback only for a Ray started here; child processes inherit the environment, and this
    process's already imported Ray reads the constant it derived from it."""
    from ray._private import ray_constants

    for key, value in {**EMBEDDED_DEFAULTS, **EMBEDDED_ENV}.items():
        _saved_env.setdefault(key, os.environ.get(key))
        if key in EMBEDDED_ENV or key not in os.environ:
            os.environ[key] = value
    _saved_cluster.append(ray_constants.ENABLE_RAY_CLUSTER)
    ray_constants.ENABLE_RAY_CLUSTER = False
    logging.getLogger(TOKEN_NOTICE_LOGGER).setLevel(logging.ERROR)


def end_autoscaler_monitor() -> None:
    """Kill the autoscaler monitor of a Ray started here, just before ``ray.shutdown``.

    The shutdown ends the raylet and the GCS before the monitor, whose SIGTERM handler then writes to the
    GCS and waits for it until the shutdown's one-second grace runs out and kills it: 1.0 s of a
    1.2-1.4 s shutdown, 0.4 s with the monitor ended first (a local Ray, timed per process type, 3 runs
    a side). A local Ray's monitor has nothing to save, and SIGKILL skips the handler that would report
    its death to the driver. Ray's private node handle: where it changes, the shutdown is only slower."""
    try:
        from ray._private.worker import _global_node as node

        # Joined (an address): a connect-only node that started nothing, so it has no monitor of ours.
        if node is None or not node.head:
            return
        node.kill_monitor(check_alive=False)  # SIGKILL, reaped within a second, forgotten by the node
    except Exception as exc:  # a speed-up only
        logging.getLogger("rnnbench").debug("could not end Ray's autoscaler monitor early: %s", exc)


def disconnect(started: bool) -> None:
    """Shut down the Ray this process started, and give the environment back as it was."""
    import ray
    from ray._private import ray_constants

    if not started:
        return
    end_autoscaler_monitor()
    ray.shutdown()
    if _saved_sigterm:
        previous = _saved_sigterm.pop()  # None: Ray's handler, set from C, which Python cannot restore
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    if _saved_cluster:
        ray_constants.ENABLE_RAY_CLUSTER = _saved_cluster.pop()
    for key, value in _saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    _saved_env.clear()
