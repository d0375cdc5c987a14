"""Building and loading rnnbench's compiled C++ kernels (one torch op extension per cell).

A kernel is one ``.cpp`` file next to this module (including the shared ``kernel_math.h``), compiled with torch.utils.cpp_extension on first
use and cached on disk under ``$RNNBENCH_KERNEL_DIR`` (else torch's extension cache). The cache entry
is named after a hash of the source, torch, Python, the machine and the flags, so a stale build is
never reused. An OS file lock makes processes that start together (Ray workers) build once: the
first builds, the others wait and then load. Each cell picks its path with its own environment
variable (``auto``, ``cpp``, ...); ``auto`` falls back with one warning per process when the kernel
cannot be built, ``cpp`` turns the same problem into an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from rnnbench.errors import RnnbenchError

KERNEL_DIR_ENV = "RNNBENCH_KERNEL_DIR"
# No -march=native: the cache directory may be shared by machines with different CPUs. Without
# -fno-trapping-math GCC 12 would not vectorise the pointwise loops at all ("control flow in loop":
# it may not compute both sides of a select that could raise a floating-point exception); torch itself
# is built with these two flags.
KERNEL_CFLAGS = ["-O3", "-fno-trapping-math", "-fno-math-errno"]
KERNEL_DTYPES = (torch.float32, torch.float64)
SHARED_HEADER = Path(__file__).with_name("kernel_math.h")  # included by every kernel
# torch.utils.cpp_extension's LIB_EXT and get_default_build_root(), restated: that module imports setuptools
# (0.2-0.3 s), which loading a kernel already built needs nothing of; every trial worker of a GRU, peephole or
# LSTM-family cell on the CPU loads one.
LIB_EXT = ".pyd" if sys.platform == "win32" else ".so"


def default_build_root() -> str:
    """torch's extension cache, as ``cpp_extension.get_default_build_root()`` names it."""
    import torch._appdirs

    return os.path.realpath(torch._appdirs.user_cache_dir(appname="torch_extensions"))


class KernelError(RnnbenchError, RuntimeError):
    """A compiled kernel was required but cannot be built, loaded or used."""


class KernelChoiceError(RnnbenchError, ValueError):
    """A kernel-choice environment variable holds a value that is not one of the choices."""


GEMM_ENV = "RNNBENCH_CPU_GEMM"
GEMM_CHOICES = ("auto", "mkl", "onednn")


def gemm_choice() -> str:
    """Which library the kernels' float32 GEMMs use, as ``RNNBENCH_CPU_GEMM`` asks (handed to each kernel as it
    loads): ``auto`` (unset) takes oneDNN where MKL leaves AVX-512 unused (non-Intel CPUs with AVX-512), else MKL."""
    raw = os.environ.get(GEMM_ENV, "")
    value = raw.strip(" \t\n\r\f\v").lower() or "auto"  # ASCII only: "m\u212al" is not "mkl"
    if not raw.isascii() or value not in GEMM_CHOICES:
        raise KernelChoiceError(
            f"{GEMM_ENV}={raw!r} is not a valid choice; use one of: {', '.join(GEMM_CHOICES)}"
        )
    return value


def autocast_enabled(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except (TypeError, RuntimeError):  # torch < 2.4, or a device autocast does not know (meta)
        return False


def autocast_off(device_type: str) -> contextlib.AbstractContextManager[Any]:
    """Turn autocast off around a kernel's recurrence: its in-place steps keep one dtype throughout."""
    if autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def missing_tools() -> str | None:
    """Why kernels cannot be compiled here (no C++ compiler or no ninja), or None when they can."""
    from torch.utils import cpp_extension

    compiler = os.environ.get("CXX", "cl" if sys.platform == "win32" else "c++")
    if shutil.which(compiler) is None:
        return f"no C++ compiler: {compiler!r} is not on PATH (install g++ or set CXX)"
    if not cpp_extension.is_ninja_available():
        return "ninja is not installed (pip install ninja)"
    return None


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[bool]:
    """Hold an OS file lock (released by the OS if the holder dies, unlike torch's lock file);
    yields False where there is none (Windows), and torch's own lock file must serialise the build."""
    try:
        import fcntl
    except ImportError:
        yield False
        return
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class CompiledKernel:
    """One cell's kernel: its source, its choice variable, and its build, load and fallback state."""

    def __init__(
        self,
        cell: str,
        source: Path,
        env: str,
        choices: Sequence[str],
        fallback: tuple[str, str],
        error: type[KernelError] = KernelError,
        choice_error: type[KernelChoiceError] = KernelChoiceError,
    ) -> None:
        """``fallback``: what ``auto`` runs when the kernel cannot be built, as (words, choice)."""
        self.cell, self.source, self.env, self.choices = cell, source, env, tuple(choices)
        self.fallback, self.fallback_choice = fallback
        self.error, self.choice_error = error, choice_error
        self._lock = threading.Lock()
        self._ops: Any = None  # the torch.ops namespace of the loaded kernel
        self._failure: str | None = None  # why the kernel could not be loaded, once that was tried
        self._warned_fallback = False

    def choice(self) -> str:
        """The path the environment variable asks for; empty or unset means ``auto``."""
        raw = os.environ.get(self.env, "")
        value = raw.strip().lower() or "auto"
        if value not in self.choices:
            raise self.choice_error(
                f"{self.env}={raw!r} is not a valid choice; use one of: {', '.join(self.choices)}"
            )
        return value

    def name(self) -> str:
        """Extension name; it hashes everything the binary depends on, so stale builds are never reused."""
        digest = hashlib.sha256(self.source.read_bytes() + b"\0" + SHARED_HEADER.read_bytes())
        for part in (torch.__version__, sys.version, platform.machine(), " ".join(KERNEL_CFLAGS)):
            digest.update(b"\0" + part.encode())
        return f"rnnbench_{self.cell}_{digest.hexdigest()[:16]}"

    def build_dir(self, name: str | None = None) -> Path:
        """``$RNNBENCH_KERNEL_DIR/<name>``, else torch's extension cache (``$TORCH_EXTENSIONS_DIR``)."""
        root = os.environ.get(KERNEL_DIR_ENV) or os.environ.get("TORCH_EXTENSIONS_DIR")
        base = Path(root).expanduser() if root else Path(default_build_root())
        return base / (name or self.name())

    def _build_and_load(self) -> Any:
        name = self.name()
        build_dir = self.build_dir(name)
        library = build_dir / f"{name}{LIB_EXT}"
        done = build_dir / "rnnbench-build-done"  # written only after a build that loaded
        if not (done.exists() and library.exists()):
            build_dir.mkdir(parents=True, exist_ok=True)
            # Ray workers starting together queue here; the first builds, the others then just load.
            with _exclusive(build_dir / "rnnbench.lock") as locked:
                if not (done.exists() and library.exists()):
                    missing = missing_tools()
                    if missing:
                        raise self.error(missing)
                    # Every build goes through the lock above, so a torch lock file seen here was left
                    # by a build that died; torch would wait on it forever.
                    if locked:
                        (build_dir / "lock").unlink(missing_ok=True)
                    from torch.utils import cpp_extension

                    cpp_extension.load(
                        name,
                        [str(self.source)],
                        extra_cflags=KERNEL_CFLAGS,
                        extra_include_paths=[str(SHARED_HEADER.parent)],
                        build_directory=str(build_dir),
                        is_python_module=False,
                        verbose=False,
                    )
                    done.write_text(f"{name} built for torch {torch.__version__}\n")
                    return getattr(torch.ops, name)
        torch.ops.load_library(str(library))
        return getattr(torch.ops, name)

    def _failure_reason(self, exc: Exception) -> str:
        """One line on why a build or load failed: the compiler's first error rather than its command line."""
        if isinstance(exc, KernelError):
            return str(exc)
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        errors = [line for line in lines if "error:" in line]
        reason = f"{type(exc).__name__}: {(errors or lines or [''])[0]}"
        if len(reason) > 300:
            reason = reason[:297] + "..."
        with contextlib.suppress(Exception):  # the cause may be that the source cannot be read
            reason += f"; build directory {self.build_dir()}"
        return reason

    def load(self) -> Any:
        """Build (first use only; cached on disk) and load the kernel, or raise ``self.error``."""
        if self._ops is not None:
            return self._ops
        choice = gemm_choice()  # a bad value is the user's error, never a reason to fall back
        with self._lock:
            if self._ops is None:
                if self._failure is not None:  # do not pay for a failing compiler call at every forward
                    raise self.error(self._failure)
                try:
                    ops = self._build_and_load()
                except Exception as exc:
                    self._failure = (
                        f"the compiled {self.cell} kernel is unavailable ({self._failure_reason(exc)})"
                    )
                    raise self.error(self._failure) from exc
                if choice == "onednn" and (missing := ops.brgemm_missing()):
                    raise KernelChoiceError(
                        f"{GEMM_ENV}=onednn, but oneDNN's float32 brgemm does not run here: {missing}"
                    )
                ops.set_gemm_choice(choice)  # the kernel's engine, fixed at its first GEMM
                self._ops = ops
        return self._ops

    def vector_clone(self) -> str:
        """Which copy of the kernel's pointwise loops runs on this CPU (AVX-512, AVX2 or the baseline)."""
        return str(self.load().vector_clone())

    def available(self) -> bool:
        """Whether the kernel is cached here or can be built (a failing build is still an error)."""
        built = (self.build_dir() / "rnnbench-build-done").exists()
        return built or missing_tools() is None

    def for_tensors(self, tensors: Sequence[torch.Tensor], forced: bool) -> Any | None:
        """The loaded kernel for these tensors, or None where the caller takes its fallback path.

        ``forced`` (the variable says ``cpp``) raises ``self.error`` for tensors the kernel cannot take
        (it wants CPU float32 or float64 tensors of one dtype) or when it cannot be built. Otherwise
        such tensors get None, and a kernel that cannot be built gets None and one warning per process.
        """
        dtype = tensors[0].dtype
        fits = all(t.device.type == "cpu" and t.dtype == dtype for t in tensors) and dtype in KERNEL_DTYPES
        if forced:
            if not fits:
                found = sorted({f"{t.dtype} on {t.device}" for t in tensors})
                raise self.error(
                    f"{self.env}=cpp, but the compiled kernel takes CPU float32 or float64 tensors "
                    f"of one dtype; got {', '.join(found)}"
                )
            return self.load()
        if not fits:  # CUDA, half precision, or mixed dtypes (which PyTorch then reports)
            return None
        try:
            return self.load()
        except KernelError as exc:
            if not self._warned_fallback:
                self._warned_fallback = True
                warnings.warn(
                    f"{exc}; the {self.cell} cell falls back to {self.fallback}. Set "
                    f"{self.env}={self.fallback_choice} to choose that path and silence this warning.",
                    RuntimeWarning,
                    stacklevel=3,
                )
            return None
