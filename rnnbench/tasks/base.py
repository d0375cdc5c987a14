"""The task contract: what a task declares, how its data is generated, cached and scored."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from rnnbench.errors import TaskCacheError, TaskOptionError
from rnnbench.tasks.columns import COLUMNS_FOLDER, Columns, read_columns, write_columns

SPLITS = ("train", "validation", "test")
IGNORE_INDEX = -100  # targets at steps that carry no loss (padding, inputs of a sequence head)
CACHE_ENV = "RNNBENCH_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$RNNBENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/rnnbench``, else ``~/.cache/rnnbench``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rnnbench"


@dataclass(frozen=True)
class Sizes:
    train: int
    validation: int
    test: int

    def of(self, split: str) -> int:
        return int(getattr(self, split))

    def options(self) -> dict[str, int]:
        """As the task's constructor takes them (``train_size=...``)."""
        return {f"{split}_size": self.of(split) for split in SPLITS}


class Task(ABC):
    """A benchmark task. Subclasses set the class attributes and implement ``generate``.

    Columns of every split: ``inputs`` (float32 (T, input_size), or int64 token ids (T,) when the
    encoding is one-hot), ``target`` (float32 or int64 scalar for a last-step head; int64 (T,) with
    ``IGNORE_INDEX`` at unscored steps for a sequence head), ``distance`` (int32: steps between the
    earliest input the target depends on and the step where the prediction is made) and ``length``
    (int32: steps before left padding).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    reference: ClassVar[str]
    data_version: ClassVar[str]  # bump when the generator changes: it keys the cache and is logged
    output: ClassVar[Literal["regression", "classes"]]
    head: ClassVar[Literal["last", "sequence"]]
    encoding: ClassVar[Literal["one-hot", "linear"]]
    default_length: ClassVar[int]
    default_sizes: ClassVar[Sizes]
    min_length: ClassVar[int] = 1

    def __init__(
        self,
        length: int | None = None,
        train_size: int | None = None,
        validation_size: int | None = None,
        test_size: int | None = None,
    ) -> None:
        self.length = self._positive("length", self.default_length if length is None else length)
        if self.length < self.min_length:
            raise TaskOptionError(
                f"task {self.name!r}: length {self.length} is too short; the minimum is {self.min_length}"
            )
        d = self.default_sizes
        self.sizes = Sizes(
            self._positive("train_size", d.train if train_size is None else train_size),
            self._positive("validation_size", d.validation if validation_size is None else validation_size),
            self._positive("test_size", d.test if test_size is None else test_size),
        )
        self._check_memory()

    def _check_memory(self) -> None:
        """Refuse, before anything is generated, data that cannot fit in this machine's memory."""
        examples = self.sizes.train + self.sizes.validation + self.sizes.test
        needed = self.length * examples * BYTES_PER_STEP
        total = physical_memory()
        if total is not None and needed > total // 2:
            raise TaskOptionError(
                f"task {self.name!r}: length {self.length} with {examples} examples needs at least "
                f"{human_size(needed)} for its data, more than half of this machine's {human_size(total)}; "
                "use a shorter length or fewer examples"
            )

    def _spread(self, spread: Any) -> float:
        """Example lengths are spread log-uniformly over [length / spread, length]."""
        if isinstance(spread, bool) or not isinstance(spread, (int, float)) or not spread >= 1.0:
            raise TaskOptionError(f"task {self.name!r}: spread must be a number >= 1, got {spread!r}")
        return float(spread)

    def _positive(self, option: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise TaskOptionError(f"task {self.name!r}: {option} must be a positive integer, got {value!r}")
        return int(value)

    # --- what the model needs to know ------------------------------------------------------------
    @property
    @abstractmethod
    def input_size(self) -> int:
        """Features per step fed to the cell (the vocabulary size for a one-hot encoding)."""

    @property
    @abstractmethod
    def output_size(self) -> int:
        """Outputs of the head: 1 for regression, the number of classes otherwise."""

    @property
    @abstractmethod
    def chance(self) -> float:
        """Accuracy of the best input-independent predictor (the LRD score's floor)."""

    # --- loss and accuracy --------------------------------------------------------------------------
    tolerance: ClassVar[float] = 0.04  # a regression prediction succeeds when |error| < tolerance

    def loss(self, output: Any, target: Any) -> Any:
        """Mean squared error for regression; cross-entropy (ignoring unscored steps) for classes."""
        from torch.nn import functional as F

        if self.output == "regression":
            return F.mse_loss(output, target)
        if self.head == "sequence":
            return F.cross_entropy(output.flatten(0, 1), target.flatten(), ignore_index=IGNORE_INDEX)
        return F.cross_entropy(output, target)

    def scored_steps(self, target: Any) -> Any:
        """For a sequence head: the steps whose predictions count towards accuracy."""
        return target != IGNORE_INDEX

    def example_scores(self, output: Any, target: Any) -> Any:
        """Per-example accuracy in [0, 1]: success within tolerance, a correct class, or the share
        of scored steps predicted correctly."""
        if self.output == "regression":
            return ((output - target).abs() < self.tolerance).double()
        correct = output.argmax(-1) == target
        if self.head == "sequence":
            scored = self.scored_steps(target)
            return (correct & scored).sum(1).double() / scored.sum(1).clamp(min=1).double()
        return correct.double()

    def baseline_loss(self, lengths: np.ndarray) -> float | None:
        """The loss of a reference strategy on examples of these lengths, logged beside the loss."""
        return None

    def options(self) -> dict[str, Any]:
        """Everything that determines the data, as the constructor takes it: the cache key, the MLflow
        params, and what a run is rebuilt from (``rnnbench reseed``)."""
        return {"length": self.length, **self.sizes.options()}

    # --- data -------------------------------------------------------------------------------------
    def generate(self, split: str, size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Generate ``size`` examples as column arrays, vectorised, from ``rng`` only.

        Synthetic tasks implement this; tasks on fixed data override ``build_split`` instead.
        """
        raise NotImplementedError(f"task {self.name!r} implements neither generate nor build_split")

    def build_split(self, split: str, seed: int) -> Any:
        import datasets

        # One independent stream per split, so that changing one split's size leaves the others.
        rng = np.random.default_rng([seed, SPLITS.index(split)])
        columns = self.generate(split, self.sizes.of(split), rng)
        return datasets.Dataset.from_dict(columns, features=self.features(columns), split=split)

    def features(self, columns: dict[str, np.ndarray]) -> Any:
        import datasets

        def feature(array: np.ndarray) -> Any:
            dtype = str(array.dtype)
            if array.ndim == 1:
                return datasets.Value(dtype)
            if array.ndim == 2:
                return datasets.Sequence(datasets.Value(dtype), length=array.shape[1])
            return datasets.Array2D(array.shape[1:], dtype)

        return datasets.Features({key: feature(value) for key, value in columns.items()})

    def cache_key(self, seed: int) -> str:
        blob = json.dumps([self.name, self.data_version, self.options(), seed], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def cache_path(self, seed: int = 0, cache_dir: str | os.PathLike[str] | None = None) -> Path:
        """The folder that holds the data of ``seed`` once built."""
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        return root / "tasks" / self.name / self.data_version / self.cache_key(seed)

    def ensure_cached(self, seed: int = 0, cache_dir: str | os.PathLike[str] | None = None) -> None:
        """Build and cache the data unless they are: a sweep's driver checks them for its workers. Data already
        cached are not read again (nor datasets imported: a second of the driver's start) unless the task's
        ``load`` does more than read them (``hf`` learns its encoding and sizes there)."""
        path = self.cache_path(seed, cache_dir)
        if not self._load_reads_its_cache_only() or not (path / "dataset_dict.json").is_file():
            self.load(seed=seed, cache_dir=cache_dir)
        elif not (path / COLUMNS_FOLDER).is_dir():  # an entry cached before columns were kept beside it
            import datasets

            splits = datasets.load_from_disk(str(path))  # a damaged entry fails here, before any trial
            with contextlib.suppress(OSError):  # a read-only cache: the workers read it with datasets
                write_columns(path, splits)

    def load_columns(
        self, seed: int = 0, cache_dir: str | os.PathLike[str] | None = None
    ) -> dict[str, Columns] | None:
        """The cached splits as column arrays, without datasets (``rnnbench.tasks.columns``), or None where
        this task's data are not kept so (not cached yet, ragged, or a task whose ``load`` does more)."""
        if not self._load_reads_its_cache_only():
            return None
        return read_columns(self.cache_path(seed, cache_dir))

    def _load_reads_its_cache_only(self) -> bool:
        """Whether this task's ``load`` is this class's: it only builds and reads the cache, and sets nothing
        on the task (``hf``'s learns its encoding and sizes, so it must run)."""
        return type(self).load is Task.load

    def load(self, seed: int = 0, cache_dir: str | os.PathLike[str] | None = None) -> Any:
        """The train / validation / test ``datasets.DatasetDict``, generated once and cached on disk."""
        import datasets

        datasets.disable_progress_bars()
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        path = self.cache_path(seed, cache_dir)
        if (path / "dataset_dict.json").is_file():
            return datasets.load_from_disk(str(path))
        data = datasets.DatasetDict({split: self.build_split(split, seed) for split in SPLITS})
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write beside the final place, then rename: a crash never leaves a half-written cache entry.
            staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=path.parent))
        except OSError as exc:
            raise self._cache_error(root, exc) from None
        try:
            data.save_to_disk(str(staging))
            with contextlib.suppress(OSError):  # an aid only (a full disk): the workers then read datasets'
                write_columns(staging, data)
            try:
                staging.rename(path)
            except OSError:  # another process won the race: keep its copy
                shutil.rmtree(staging, ignore_errors=True)
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, OSError):
                raise self._cache_error(root, exc) from None
            raise
        return datasets.load_from_disk(str(path))

    def _cache_error(self, root: Path, exc: OSError) -> TaskCacheError:
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        return TaskCacheError(
            f"task {self.name!r}: its data could not be written to the cache folder {root} "
            f"({exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}); "
            f"{'free space there, or ' if full else ''}give another folder (--cache-dir, cache_dir in a "
            f"sweep file, or ${CACHE_ENV})"
        )


# The least a step of an example takes in memory (one int64 token, or two float32 channels).
BYTES_PER_STEP = 8


def physical_memory() -> int | None:
    """This machine's memory in bytes, None where the OS does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def human_size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if count < 1024 or unit == "PB":
            return f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} PB"


def log_uniform_lengths(rng: np.random.Generator, size: int, low: int, high: int) -> np.ndarray:
    """Integer lengths in [low, high], log-uniform, so that distances cover several log2 buckets."""
    if low >= high:
        return np.full(size, high, dtype=np.int64)
    u = rng.uniform(math.log(low), math.log(high + 1), size)
    return np.minimum(np.exp(u).astype(np.int64), high)


def spread_low(length: int, spread: float, floor: int) -> int:
    """Shortest example length for a task of maximum ``length`` with lengths spread over ``spread``x."""
    return max(floor, min(length, math.ceil(length / spread)))
