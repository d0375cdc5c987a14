"""Domain exceptions: each message names the culprit and, where there is one, the valid choices."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class RnnbenchError(Exception):
    """Base class of every error rnnbench raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as it is, not rebuilt through __init__ (whose arguments several subclasses change): a sweep's
        # checks raise them in a forked child (rnnbench.sweep.forked_check) and the driver raises the copy.
        return _rebuilt, (type(self), self.args, self.__dict__)


def _rebuilt(cls: type[RnnbenchError], args: tuple[Any, ...], state: dict[str, Any]) -> RnnbenchError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class PluginError(RnnbenchError):
    """A plugin could not be loaded or registered something it should not have."""


class PluginLoadError(PluginError):
    """A plugin failed to import, or one of its hooks raised."""


class InvalidRegistrationError(PluginError):
    """A plugin registered something malformed (bad name, not callable, missing metadata)."""


class DuplicateNameError(PluginError):
    """Two plugins registered the same name for the same kind of thing."""

    def __init__(self, kind: str, name: str, first: str, second: str) -> None:
        self.kind, self.name, self.first, self.second = kind, name, first, second
        super().__init__(
            f"{kind} {name!r} is registered twice: first by plugin {first}, "
            f"again by plugin {second}. Rename one of them or uninstall one plugin."
        )


class UnknownNameError(RnnbenchError, LookupError):
    """A name was looked up that no plugin registered."""

    kind = "name"

    def __init__(self, name: str, valid: Iterable[str]) -> None:
        self.name = name
        self.valid = sorted(valid)
        choices = ", ".join(self.valid) if self.valid else "(none registered)"
        super().__init__(f"unknown {self.kind} {name!r}; valid {self.kind}s: {choices}")

    def __str__(self) -> str:  # LookupError would otherwise quote the message
        return str(self.args[0])


class UnknownCellError(UnknownNameError):
    kind = "cell"


class UnknownTaskError(UnknownNameError):
    kind = "task"


class UnknownSearchSpaceError(UnknownNameError):
    kind = "search space"


class CellContractError(RnnbenchError, ValueError):
    """A cell was built with invalid arguments or returned something that breaks the cell contract."""


class TaskOptionError(RnnbenchError, ValueError):
    """A task was given an invalid option (size, length, file, column)."""


class TaskCacheError(RnnbenchError):
    """A task's data cannot be written to its cache folder (a full disk, a read-only folder)."""


class TrainingConfigError(RnnbenchError, ValueError):
    """A training configuration value is out of range."""


class MissingPluginError(PluginError):
    """A saved model's cell is not registered in this Python (its plugin is not installed)."""


class SweepConfigError(RnnbenchError, ValueError):
    """A sweep file or flag is malformed: the message names the file, the key and the problem."""


def error_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the errors it was raised from or during, outermost first (a cycle is followed once)."""
    chain = [exc]
    while True:
        inner = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        if inner is None or any(inner is seen for seen in chain):
            return chain
        chain.append(inner)
        exc = inner


def root_cause(exc: BaseException) -> str:
    """The innermost error of a chain, on one line: ``OperationalError: database or disk is full``."""
    exc = error_chain(exc)[-1]
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def portable(exc: BaseException, where: str) -> BaseException:
    """``exc`` as it can cross to another process (``where`` names the one it was raised in). Pickling keeps
    its type and message but not its traceback or chain: an error other than rnnbench's own (whose message
    is complete) carries that process's traceback as a note. One that does not pickle, or whose copy reads
    differently (an ``__init__`` that rewrites its arguments), becomes a RuntimeError (or RnnbenchError)
    naming its type."""
    import pickle
    import traceback

    text = "".join(traceback.format_exception(exc)).rstrip()
    try:
        copy = pickle.loads(pickle.dumps(exc))
        if str(copy) != str(exc):
            raise ValueError("the copy reads differently")
    except Exception:
        copy = (RnnbenchError if isinstance(exc, RnnbenchError) else RuntimeError)(
            f"{type(exc).__name__}: {exc}"
        )
    if not isinstance(copy, (KeyboardInterrupt, RnnbenchError)):
        copy.add_note(f"raised in {where}:\n{text}")
    return copy
