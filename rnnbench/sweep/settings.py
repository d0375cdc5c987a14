"""Sweep settings: from flags, a TOML sweep file or a resumed sweep's state, validated with errors that
name the file, the key and the value."""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from rnnbench.errors import SweepConfigError
from rnnbench.sweep.state import DEFAULT_SWEEPS_DIR, load_state
from rnnbench.tracking.run_search import SWEEP_NAME
from rnnbench.training.config import MAX_SEED, parse_option, trainable_fields

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BUILTIN_CELLS = ("lstm", "gru", "peephole", "rnn")
# Greff et al.'s study: the vanilla LSTM (rnnbench's ``peephole``) and its eight variants.
ODYSSEY_CELLS = ("peephole", "nig", "nfg", "nog", "niaf", "noaf", "np", "cifg", "fgr")
CELL_GROUPS = {"all": BUILTIN_CELLS, "odyssey": ODYSSEY_CELLS}


@dataclass
class SweepSettings:
    """Everything a sweep needs; ``rnnbench sweep`` flags and sweep-file keys share these names."""

    task: str = "adding"
    cells: list[str] = field(default_factory=lambda: list(BUILTIN_CELLS))
    trials: int = 8  # per cell
    space: str = "default"
    seed: int = 0
    epochs: int = 10
    length: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None  # None: 1 when the cluster has GPUs, else 0
    max_concurrent: int | None = None  # None: as many as the resources allow
    address: str | None = None  # None: start Ray locally
    tracking_uri: str | None = None
    experiment: str = "rnnbench"
    name: str | None = None
    metric: str = "val_loss"  # minimised by TPE and ASHA; val_accuracy is maximised
    grace_period: int = 2  # ASHA: epochs every trial gets before it can be stopped
    reduction_factor: int = 3
    max_failures: int = 2  # Ray retries of a trial whose worker died
    sampler: str = "tpe"  # "random": a random-search baseline (with grace_period >= epochs: no pruning)
    startup_trials: int | None = None  # TPE's random start-up trials; None: min(10, max(3, trials // 4))
    reseed: int = 0  # after the search, re-train each cell's best configuration with K fresh seeds
    paired: bool | None = None  # every cell trains the same configurations; None: True for random search
    sweeps_dir: str = DEFAULT_SWEEPS_DIR
    cache_dir: str | None = None
    task_options: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)  # fixed TrainConfig values for every trial
    space_overrides: dict[str, Any] = field(default_factory=dict)  # the sweep file's [space_overrides]

    @property
    def tpe_startup_trials(self) -> int:
        """Optuna's default (10 random trials before TPE models) would leave small budgets all random."""
        return self.startup_trials or min(10, max(3, self.trials // 4))

    @property
    def is_paired(self) -> bool:
        """Every cell trains the same sequence of configurations (compared configuration by configuration)."""
        return self.paired if self.paired is not None else self.sampler == "random"

    @property
    def mode(self) -> str:
        return "max" if self.metric.endswith("accuracy") else "min"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


SCALARS: dict[str, tuple[type, ...]] = {
    "task": (str,), "trials": (int,), "space": (str,), "seed": (int,), "epochs": (int,),
    "length": (int,), "cpus_per_trial": (int, float), "gpus_per_trial": (int, float),
    "max_concurrent": (int,), "address": (str,), "tracking_uri": (str,), "experiment": (str,),
    "name": (str,), "metric": (str,), "grace_period": (int,), "reduction_factor": (int,),
    "max_failures": (int,), "sweeps_dir": (str,), "cache_dir": (str,), "sampler": (str,),
    "startup_trials": (int,), "reseed": (int,), "paired": (bool,),
}  # fmt: skip
TABLES = {"task_options": "task_options", "train": "train", "space_overrides": "space_overrides"}
METRICS = ("val_loss", "val_accuracy")
SAMPLERS = ("tpe", "random")


def parse_cells(value: Any, where: str) -> list[str]:
    """``all`` (the four classic cells), ``odyssey`` (Greff's nine), ``lstm,gru`` or a list of names."""
    if isinstance(value, str):
        group = CELL_GROUPS.get(value.strip())
        names = list(group) if group else [v.strip() for v in value.split(",")]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        names = [v.strip() for v in value]
    else:
        raise SweepConfigError(
            f"{where}: cells must be 'all', 'odyssey', a comma-separated string or a list of names, "
            f"got {value!r}"
        )
    if not names or any(not n for n in names):
        raise SweepConfigError(f"{where}: cells has an empty name in {value!r}")
    if len(set(names)) != len(names):
        raise SweepConfigError(f"{where}: cells lists a name twice in {value!r}")
    return names


def load_sweep_file(path: str | Path) -> dict[str, Any]:
    """Read and check a TOML sweep file; returns the SweepSettings keyword arguments it sets."""
    path = Path(path)
    if not path.is_file():
        raise SweepConfigError(f"sweep file {path} does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SweepConfigError(f"sweep file {path} is not valid TOML: {exc}") from None
    return check_values(raw, f"sweep file {path}")


def check_values(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """Check keys and value types of a sweep file (or flags); ``where`` names the source in errors."""
    valid = sorted([*SCALARS, "cells", *TABLES])
    values: dict[str, Any] = {}
    for key, value in raw.items():
        at = f"{where}, key {key!r}"
        if key == "cells":
            values["cells"] = parse_cells(value, at)
        elif key in TABLES:
            if not isinstance(value, dict):
                raise SweepConfigError(f"{at}: must be a table ([{key}]), got {type(value).__name__}")
            values[TABLES[key]] = dict(value)
        elif key in SCALARS:
            types = SCALARS[key]
            if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
                expected = " or ".join(
                    "integer" if t is int else "number" if t is float else "true or false" if t is bool
                    else "string" for t in types
                )  # fmt: skip
                raise SweepConfigError(f"{at}: must be {expected}, got {value!r}")
            values[key] = value
        else:
            raise SweepConfigError(f"{at}: unknown key; valid keys: {', '.join(valid)}")
    if "train" in values:
        _check_train(values["train"], where)
    return values


def _check_train(train: dict[str, Any], where: str) -> None:
    """The [train] table: TrainConfig fields a sweep may fix, each of its field's type."""
    types = trainable_fields()
    for key, value in train.items():
        if key not in types:
            raise SweepConfigError(
                f"{where}, key 'train.{key}': unknown; valid keys: {', '.join(sorted(types))}"
            )
        kind = types[key]
        ok = (
            isinstance(value, str)
            if kind is str
            else isinstance(value, (int, float)) and not isinstance(value, bool)
        )
        if kind is int:
            ok = ok and float(value).is_integer()
        if not ok:
            raise SweepConfigError(f"{where}, key 'train.{key}': must be {kind.__name__}, got {value!r}")


def validate(settings: SweepSettings, where: str = "sweep") -> None:
    """Range checks that need no plugin, cluster or store."""

    def fail(key: str, rule: str) -> None:
        raise SweepConfigError(f"{where}, key {key!r}: must be {rule}, got {getattr(settings, key)!r}")

    for key in ("trials", "epochs", "grace_period", "max_failures"):
        value = getattr(settings, key)
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or value < (0 if key == "max_failures" else 1)
        ):
            fail(key, "a non-negative integer" if key == "max_failures" else "a positive integer")
    if not 0 <= settings.seed <= MAX_SEED:
        fail("seed", f"an integer in [0, {MAX_SEED}] (numpy's seed range)")
    if not isinstance(settings.reseed, int) or isinstance(settings.reseed, bool) or settings.reseed < 0:
        fail("reseed", "0 (no reseeds) or a positive integer")
    if settings.reduction_factor < 2:
        fail("reduction_factor", "an integer >= 2")
    if settings.length is not None and settings.length < 1:
        fail("length", "a positive integer")
    if not (isinstance(settings.cpus_per_trial, (int, float)) and math.isfinite(settings.cpus_per_trial)
            and settings.cpus_per_trial > 0):  # fmt: skip
        fail("cpus_per_trial", "a positive number")
    if settings.gpus_per_trial is not None and not (
        math.isfinite(settings.gpus_per_trial) and settings.gpus_per_trial >= 0
    ):
        fail("gpus_per_trial", "a non-negative number (fractions pack trials on one GPU)")
    if (
        settings.gpus_per_trial
        and settings.gpus_per_trial > 1
        and not float(settings.gpus_per_trial).is_integer()
    ):
        fail("gpus_per_trial", "a fraction up to 1, or a whole number of GPUs")
    if settings.max_concurrent is not None and settings.max_concurrent < 1:
        fail("max_concurrent", "a positive integer")
    if settings.metric not in METRICS:
        fail("metric", f"one of {', '.join(METRICS)}")
    if settings.name is not None and not SWEEP_NAME.fullmatch(settings.name):
        fail("name", "letters, digits, '.', '_' or '-' (a folder name)")
    if not settings.cells:
        fail("cells", "at least one cell")
    if settings.sampler not in SAMPLERS:
        fail("sampler", f"one of {', '.join(SAMPLERS)}")
    if settings.startup_trials is not None and (
        not isinstance(settings.startup_trials, int) or settings.startup_trials < 1
    ):
        fail("startup_trials", "a positive integer")


def fields_of_settings() -> set[str]:
    return {f.name for f in fields(SweepSettings)}


# Flags that may change on --resume: where the cluster and the store are, not what the sweep is.
RESUME_FLAGS = ("address", "tracking_uri")


def resolve_settings(
    sweep_file: str | Path | None,
    flags: dict[str, Any],
    options: list[str] | None = None,
    resume: str | None = None,
) -> SweepSettings:
    """The settings of ``rnnbench sweep``: a resumed sweep's own (only RESUME_FLAGS may change, and
    ``trials`` may grow), else
    the sweep file's with the flags and ``-o KEY=VALUE`` task options on top (flags win)."""
    given = check_values({k: v for k, v in flags.items() if v is not None}, "command line")
    if resume is not None:
        state = load_state(resume, given.get("sweeps_dir") or DEFAULT_SWEEPS_DIR)
        values = dict(state["settings"])
        values.update({k: v for k, v in given.items() if k in RESUME_FLAGS})
        if "trials" in given:  # growing a sweep: each cell's study goes on to the new budget
            if given["trials"] < values["trials"]:
                raise SweepConfigError(
                    f"--trials {given['trials']}: sweep {resume!r} has {values['trials']} trials per cell; "
                    "a resumed sweep can grow, not shrink"
                )
            values["trials"] = given["trials"]
        return SweepSettings(**values)
    values = load_sweep_file(sweep_file) if sweep_file is not None else {}
    values.update(given)
    if options:
        values["task_options"] = {**values.get("task_options", {}), **dict(parse_option(o) for o in options)}
    settings = SweepSettings(**values)
    validate(settings, f"sweep file {sweep_file}" if sweep_file else "command line")
    return settings
