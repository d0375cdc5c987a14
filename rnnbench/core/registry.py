"""Typed registries that plugins fill through the register_* hooks, and the specs they hold."""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from rnnbench.errors import (
    CellContractError,
    DuplicateNameError,
    InvalidRegistrationError,
    RnnbenchError,
    TaskOptionError,
    UnknownCellError,
    UnknownNameError,
    UnknownSearchSpaceError,
    UnknownTaskError,
)

if TYPE_CHECKING:
    import torch

# Names travel through CLI lists ("lstm,gru"), MLflow params and file names: keep them plain.
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,63}")  # matched in full (fullmatch)


@dataclass(frozen=True)
class Spec:
    """One registered thing: its name, the plugin's function and the metadata shown to users."""

    name: str
    function: Callable[..., Any]
    description: str
    reference: str
    plugin: str


@dataclass(frozen=True)
class CellSpec(Spec):
    """A recurrent cell backend; ``build`` returns a batch-first stack (B, T, I) -> (B, T, H)."""

    def build(
        self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0
    ) -> torch.nn.Module:
        for arg, value in (
            ("input_size", input_size),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise CellContractError(
                    f"cell {self.name!r}: {arg} must be a positive integer, got {value!r}"
                )
        if (
            isinstance(dropout, bool)
            or not isinstance(dropout, (int, float))
            or not math.isfinite(dropout)
            or not 0.0 <= dropout < 1.0
        ):
            raise CellContractError(f"cell {self.name!r}: dropout must be in [0, 1), got {dropout!r}")
        module = self.function(
            input_size=input_size, hidden_size=hidden_size, num_layers=num_layers, dropout=float(dropout)
        )
        import torch

        if not isinstance(module, torch.nn.Module):
            raise CellContractError(
                f"cell {self.name!r} from plugin {self.plugin} returned {type(module).__name__}, "
                "not a torch.nn.Module"
            )
        return module

    def preflight(self, input_size: int, num_layers: int = 2) -> None:
        """Build a tiny stack and run one forward and backward pass: a broken cell fails here, naming
        its plugin, before a sweep or training run spends time on it."""
        import torch

        hidden, batch, steps = 5, 3, 4
        culprit = f"cell {self.name!r} from plugin {self.plugin}"
        try:
            with torch.random.fork_rng(devices=[]):  # the caller's random state stays as it was
                module = self.build(input_size, hidden, num_layers, 0.0)
            x = torch.randn(batch, steps, input_size, generator=torch.Generator().manual_seed(0))
            out = module(x)
        except RnnbenchError:  # a contract error already names the cell; others are not the plugin's
            raise
        except Exception as exc:
            raise CellContractError(
                f"{culprit} failed a trial forward pass: {type(exc).__name__}: {exc}"
            ) from exc
        expected = (batch, steps, hidden)
        if not isinstance(out, torch.Tensor):
            raise CellContractError(
                f"{culprit} returned {type(out).__name__}, not a tensor of shape {expected}"
            )
        if tuple(out.shape) != expected:
            raise CellContractError(
                f"{culprit} broke the cell contract: input (batch={batch}, time={steps}, {input_size}) "
                f"with hidden_size={hidden} gave shape {tuple(out.shape)}, expected {expected} (B, T, H)"
            )
        if not out.requires_grad:
            raise CellContractError(f"{culprit}: its output does not depend on trainable parameters")
        try:
            out.sum().backward()
        except Exception as exc:
            raise CellContractError(
                f"{culprit} failed a trial backward pass: {type(exc).__name__}: {exc}"
            ) from exc


@dataclass(frozen=True)
class TaskSpec(Spec):
    """A benchmark task; ``build(**options)`` returns the task object."""

    def build(self, **options: Any) -> Any:
        """The task with these options; an option it does not take is a TaskOptionError naming it."""
        valid = _option_names(self.function)
        unknown = sorted(set(options) - set(valid)) if valid is not None else []
        if unknown:
            raise TaskOptionError(
                f"task {self.name!r} has no option {unknown[0]!r}; its options: {', '.join(valid or [])}"
            )
        return self.function(**options)


def _option_names(function: Callable[..., Any]) -> list[str] | None:
    """The keyword options a task's builder takes, following ``**options`` passed on to a base class's
    constructor; None when it takes any keyword."""
    targets = (
        [c.__init__ for c in function.__mro__ if "__init__" in vars(c)]
        if isinstance(function, type)
        else [function]
    )
    names: list[str] = []
    for target in targets:
        parameters = inspect.signature(target).parameters
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        names += [n for n, p in parameters.items() if p.kind in kinds and n != "self" and n not in names]
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            return names
    return None


@dataclass(frozen=True)
class SearchSpaceSpec(Spec):
    """An Optuna define-by-run search space; ``suggest(trial)`` returns the sampled configuration."""

    def suggest(self, trial: Any) -> dict[str, Any]:
        return self.function(trial)


S = TypeVar("S", bound=Spec)


class Registry(Generic[S]):
    """Collects one kind of spec; plugins receive it as the ``register`` hook argument and call it."""

    kind: ClassVar[str]
    spec_type: ClassVar[type[Spec]]
    unknown_error: ClassVar[type[UnknownNameError]]
    # Keyword arguments the function must accept; None skips the signature check.
    probe_call: ClassVar[tuple[tuple[Any, ...], dict[str, Any]] | None] = None

    def __init__(self) -> None:
        self._specs: dict[str, S] = {}
        self._plugin = "(direct call)"
        self._labels: dict[str, str] = {self._plugin: self._plugin}  # plugin name -> how errors name it

    def __call__(self, name: str, function: Callable[..., Any], *, description: str, reference: str) -> None:
        self._specs[name] = self._validate(name, function, description, reference)

    def _validate(self, name: Any, function: Any, description: Any, reference: Any) -> S:
        who = f"plugin {self._labels[self._plugin]}"
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise InvalidRegistrationError(
                f"{who} registered {self.kind} name {name!r}: a name must match "
                f"{NAME_PATTERN.pattern} (lowercase letter first, then letters, digits, _ or -)"
            )
        if name in self._specs:
            first = self._labels[self._specs[name].plugin]
            raise DuplicateNameError(self.kind, name, first, self._labels[self._plugin])
        if not callable(function):
            raise InvalidRegistrationError(
                f"{who} registered {self.kind} {name!r} with {function!r}, which is not callable"
            )
        for field, value in (("description", description), ("reference", reference)):
            if not isinstance(value, str) or not value.strip():
                raise InvalidRegistrationError(
                    f"{who} registered {self.kind} {name!r} without a {field} "
                    f"(got {value!r}); pass {field}='...' to register()"
                )
        self._check_signature(name, function, who)
        return self.spec_type(  # type: ignore[return-value]
            name=name,
            function=function,
            description=description.strip(),
            reference=reference.strip(),
            plugin=self._plugin,
        )

    def _check_signature(self, name: str, function: Callable[..., Any], who: str) -> None:
        if self.probe_call is None:
            return
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError):  # some builtins and C callables have none to read
            return
        args, kwargs = self.probe_call
        try:
            signature.bind(*args, **kwargs)
        except TypeError as exc:
            expected = ", ".join([*("trial" for _ in args), *kwargs])
            raise InvalidRegistrationError(
                f"{who} registered {self.kind} {name!r} with {getattr(function, '__name__', function)}"
                f"{signature}, which cannot be called as ({expected}): {exc}"
            ) from None

    @contextmanager
    def registering_for(self, plugin: str, label: str | None = None) -> Iterator[list[str]]:
        """Attribute registrations made inside the block to ``plugin`` (named ``label`` in errors).

        Yields a list that holds the names the block added once it ends.
        """
        before = set(self._specs)
        added: list[str] = []
        self._labels[plugin] = label or plugin
        previous, self._plugin = self._plugin, plugin
        try:
            yield added
        finally:
            self._plugin = previous
            added.extend(n for n in self._specs if n not in before)

    def get(self, name: str) -> S:
        try:
            return self._specs[name]
        except KeyError:
            raise self.unknown_error(name, self._specs) from None

    def names(self) -> list[str]:
        return list(self._specs)

    def __iter__(self) -> Iterator[S]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs


class CellRegistry(Registry[CellSpec]):
    """``register(name, build, *, description, reference)``; build(input_size, hidden_size, num_layers, dropout)."""

    kind = "cell"
    spec_type = CellSpec
    unknown_error = UnknownCellError
    probe_call = ((), {"input_size": 1, "hidden_size": 1, "num_layers": 1, "dropout": 0.0})


class TaskRegistry(Registry[TaskSpec]):
    """``register(name, build, *, description, reference)``; build(**options) returns the task."""

    kind = "task"
    spec_type = TaskSpec
    unknown_error = UnknownTaskError


class SearchSpaceRegistry(Registry[SearchSpaceSpec]):
    """``register(name, suggest, *, description, reference)``; suggest(trial) returns a config dict."""

    kind = "search space"
    spec_type = SearchSpaceSpec
    unknown_error = UnknownSearchSpaceError
    probe_call = ((object(),), {})
