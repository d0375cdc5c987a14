"""Narrow or fix any define-by-run space's parameters by name, from a sweep file's [space] table.

[space]
depth = 2                                  # fixed: not searched
width = { low = 32, high = 128 }           # narrowed (log scale kept from the space)
lr = { low = 1e-3, high = 1e-2, log = true }
clipping = { choices = ["norm"] }
                                           # width = { choices = [32, 64] }: chosen among values
"""

from __future__ import annotations

from typing import Any

from rnnbench.core.registry import SearchSpaceSpec
from rnnbench.errors import RnnbenchError

RANGE_KEYS = {"low", "high", "log", "step", "choices"}
DISCOVERY_SAMPLES = 64


class SpaceOverrideError(RnnbenchError, ValueError):
    """A [space_overrides] entry names no parameter of the space, or gives an invalid range."""


class FixedValueError(ValueError):
    """A parameter fixed to a value of the wrong kind (a string for an integer, a value not among the
    choices)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def _check_fixed(name: str, value: Any, kind: str, choices: list[Any] | None = None) -> Any:
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        raise FixedValueError(name, f"fixed to {value!r}, but the space samples it as an integer")
    if kind == "float" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise FixedValueError(name, f"fixed to {value!r}, but the space samples it as a number")
    if kind == "categorical" and value not in (choices or []):
        raise FixedValueError(name, f"fixed to {value!r}, not one of the space's choices {choices!r}")
    return value


KINDS = {"int": "an integer", "float": "a number", "categorical": "a categorical"}


class OverriddenTrial:
    """An Optuna trial whose suggest_* calls apply the overrides; everything else is delegated."""

    def __init__(self, trial: Any, overrides: dict[str, Any]) -> None:
        self._trial = trial
        self._overrides = overrides
        self.seen: set[str] = set()

    def _range(self, name: str, kind: str, **defaults: Any) -> tuple[bool, Any]:
        """(True, the value) where the override fixes it, else (False, the suggest_* arguments, ``choices``
        among them where an integer or number is to be chosen from a list). A field the parameter's kind does
        not take is an error: dropped, it left the space as it was without a word."""
        self.seen.add(name)
        override = self._overrides.get(name)
        if override is None:
            return False, defaults
        if not isinstance(override, dict):
            return True, override
        takes = set(defaults) | {"choices"}
        if misplaced := sorted(set(override) - takes):
            raise FixedValueError(name, f"{', '.join(misplaced)} does not apply to {KINDS[kind]} parameter; it takes "
                                        f"{', '.join(sorted(takes))}, or a single value")  # fmt: skip
        if kind != "categorical" and "choices" in override:
            if len(override) > 1:
                raise FixedValueError(
                    name, "choices replace the range: give choices, or low and high, not both"
                )
            for value in override["choices"]:
                _check_fixed(name, value, kind)
        return False, {**defaults, **override}

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> Any:
        return self._number(name, "int", self._trial.suggest_int, low=low, high=high, step=step, log=log)

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> Any:
        return self._number(name, "float", self._trial.suggest_float, low=low, high=high, step=step, log=log)

    def _number(self, name: str, kind: str, suggest: Any, **defaults: Any) -> Any:
        """An integer or a number: fixed, chosen among values, or drawn from its (narrowed) range."""
        fixed, args = self._range(name, kind, **defaults)
        if fixed:
            return _check_fixed(name, args, kind)
        if "choices" in args:
            return self._trial.suggest_categorical(name, args["choices"])
        return suggest(name, **args)

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        fixed, args = self._range(name, "categorical", choices=list(choices))
        if fixed:
            return _check_fixed(name, args, "categorical", list(choices))
        for value in args["choices"]:
            if value not in list(choices):
                raise FixedValueError(
                    name, f"choice {value!r} is not one of the space's choices {list(choices)!r}"
                )
        return self._trial.suggest_categorical(name, args["choices"])

    def __getattr__(self, item: str) -> Any:
        return getattr(self._trial, item)


def apply_overrides(space: SearchSpaceSpec, overrides: dict[str, Any]) -> Any:
    """The space as a define-by-run function with the overrides applied."""
    if not overrides:
        return space.suggest

    def overridden(trial: Any) -> dict[str, Any]:
        return space.suggest(OverriddenTrial(trial, overrides))

    overridden.__name__ = f"{space.name}_overridden"
    return overridden


# Parameters that act on real-valued inputs only: training ignores input noise on one-hot inputs.
LINEAR_ONLY = ("input_noise",)


def for_task(space: SearchSpaceSpec, overrides: dict[str, Any], encoding: str) -> Any:
    """The space with the overrides applied, for a task with this input encoding: a parameter that
    cannot act on the task (input noise on one-hot inputs) is neither sampled nor returned, so it is
    never recorded and fANOVA cannot credit it."""
    if encoding == "linear":
        return apply_overrides(space, overrides)
    suggest = apply_overrides(space, {**overrides, **dict.fromkeys(LINEAR_ONLY, 0.0)})

    def without_inert(trial: Any) -> dict[str, Any]:
        return {k: v for k, v in suggest(trial).items() if k not in LINEAR_ONLY}

    without_inert.__name__ = f"{space.name}_for_{encoding}"
    return without_inert


def check_overrides(space: SearchSpaceSpec, overrides: dict[str, Any], where: str) -> set[str]:
    """Fail, naming the key, on an override that is malformed, out of range or names no parameter.

    Parameters are discovered by sampling the space at random (conditional ones included). Returns
    the training settings the space sets for every trial (the keys of what it returns).
    """
    import optuna

    for name, override in overrides.items():
        if isinstance(override, dict):
            unknown = set(override) - RANGE_KEYS
            if unknown:
                raise SpaceOverrideError(
                    f"{where}, key 'space_overrides.{name}': unknown field(s) {', '.join(sorted(unknown))}; "
                    f"use {', '.join(sorted(RANGE_KEYS))}, or a single value to fix the parameter"
                )
            if "choices" in override and not (isinstance(override["choices"], list) and override["choices"]):
                raise SpaceOverrideError(
                    f"{where}, key 'space_overrides.{name}': choices must be a non-empty list"
                )
        elif not isinstance(override, (int, float, str, bool)):
            raise SpaceOverrideError(
                f"{where}, key 'space_overrides.{name}': must be a value or a table, got {override!r}"
                + (f" (a list of values to choose from is {{ choices = {override!r} }})" if isinstance(override, list)
                   else "")
            )  # fmt: skip
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen: set[str] = set()
    returned: set[str] = set()
    for _ in range(DISCOVERY_SAMPLES):
        trial = study.ask()
        wrapped = OverriddenTrial(trial, overrides)
        try:
            returned |= set(space.suggest(wrapped))
        except FixedValueError as exc:
            raise SpaceOverrideError(f"{where}, key 'space_overrides.{exc.name}': {exc}") from None
        except (ValueError, TypeError) as exc:
            culprit = next((n for n in overrides if n in wrapped.seen), "?")
            raise SpaceOverrideError(f"{where}, key 'space_overrides.{culprit}': {exc}") from None
        seen |= wrapped.seen
        study.tell(trial, 0.0)
    unknown = sorted(set(overrides) - seen)
    if unknown:
        raise SpaceOverrideError(
            f"{where}, key 'space_overrides.{unknown[0]}': search space {space.name!r} has no parameter "
            f"{unknown[0]!r}; its parameters: {', '.join(sorted(seen))}"
        )
    return returned
