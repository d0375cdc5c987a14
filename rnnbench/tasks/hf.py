"""Any sequence-classification data set, loaded with ``datasets.load_dataset``.

``path`` is a Hugging Face hub name (when online), a builder (``csv``, ``json``, ``parquet``) with
``data_files``, or a local data file whose extension names the builder. Splits that the data set
lacks are carved from ``train`` with the seed (10% each for validation and test).

Sequences may be lists of numbers (fed linearly, one feature per step), lists of lists (one
vector per step), lists of integer tokens (one-hot), strings of numbers separated by spaces or
commas (as CSV files hold them; fed linearly), or other strings (UTF-8 bytes, one-hot). Sequences
are left-padded, or cut to their last ``max_length`` steps. Without annotations of what each label
depends on, the distance of an example is its length minus one (the whole sequence).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rnnbench import hookimpl
from rnnbench.core.registry import TaskRegistry
from rnnbench.errors import TaskOptionError
from rnnbench.tasks.base import SPLITS, Sizes, Task, default_cache_dir

BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
NUMBERS = re.compile(r"^\s*[-+0-9.eE]+([\s,;]+[-+0-9.eE]+)*\s*$")
# Numbers, some of them not finite: a numeric column with a hole, never text to one-hot encode.
NUMBERS_OR_NOT_FINITE = re.compile(
    r"^\s*([-+0-9.eE]+|[-+]?(?:nan|inf|infinity))([\s,;]+([-+0-9.eE]+|[-+]?(?:nan|inf|infinity)))*\s*$", re.I
)
Encoding = Literal["auto", "linear", "one-hot", "chars"]


class HFSequence(Task):
    name = "hf"
    description = "Any sequence-classification data set via datasets.load_dataset (hub name or local files)"
    reference = "Hugging Face datasets (Lhoest et al. 2021)"
    data_version = "hf-1"
    output = "classes"
    head = "last"
    default_length = 0  # the longest sequence, unless max_length is given
    default_sizes = Sizes(train=0, validation=0, test=0)  # 0: every example the split has

    def __init__(
        self,
        path: str | None = None,
        data_files: str | None = None,
        name: str | None = None,
        sequence_column: str = "sequence",
        label_column: str = "label",
        max_length: int | None = None,
        length: int | None = None,
        encoding: Encoding = "auto",
        train_size: int | None = None,
        validation_size: int | None = None,
        test_size: int | None = None,
        label: str | None = None,
    ) -> None:
        self.path, self.data_files, self.config = path, data_files, name
        if label is not None and not (isinstance(label, str) and label.strip()):
            raise TaskOptionError(f"task 'hf': label must be a non-empty name, got {label!r}")
        self.label = label  # how the leaderboard names this data set (default: the file's stem)
        self.sequence_column, self.label_column = sequence_column, label_column
        if encoding not in ("auto", "linear", "one-hot", "chars"):
            raise TaskOptionError(
                f"task 'hf': encoding must be auto, linear, one-hot or chars, got {encoding!r}"
            )
        self.requested_encoding = encoding
        limit = max_length if max_length is not None else length
        self.max_length = None if limit is None else self._positive("max_length", limit)
        self.length = self.max_length or 0
        # 0, as options() records the default, is every example the split has: a run is rebuilt from its
        # options (rnnbench reseed).
        self.sizes = Sizes(
            *(0 if v is None or (v == 0 and not isinstance(v, bool)) else self._positive(k, v) for k, v in
              (("train_size", train_size), ("validation_size", validation_size), ("test_size", test_size)))
        )  # fmt: skip
        self.encoding = "linear"
        self._meta: dict[str, Any] | None = None

    # Known once the data is loaded.
    def _known(self, key: str) -> Any:
        if self._meta is None:
            raise TaskOptionError("task 'hf': load() the data before asking for its sizes")
        return self._meta[key]

    @property
    def input_size(self) -> int:
        return self._known("input_size")

    @property
    def output_size(self) -> int:
        return self._known("classes")

    @property
    def chance(self) -> float:
        return self._known("chance")

    def options(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "data_files": self.data_files,
            "name": self.config,
            "sequence_column": self.sequence_column,
            "label_column": self.label_column,
            "max_length": self.max_length,
            "encoding": self.requested_encoding,
            **self.sizes.options(),
            "label": self.label,
        }

    def _load_raw(self, cache_dir: Path) -> Any:
        import datasets

        if not self.path:
            raise TaskOptionError(
                "task 'hf' needs the option path: a hub data set name, a builder (csv, json, parquet) "
                "with data_files, or a local file such as data/train.csv"
            )
        builder, files = self.path, self._data_files()
        local = Path(self.path).expanduser()
        if local.suffix.lower() in BUILDERS:
            if not local.is_file():
                raise TaskOptionError(f"task 'hf': data file {self.path} does not exist")
            builder, files = BUILDERS[local.suffix.lower()], files or {"train": str(local)}
        for split_files in (files or {}).values():
            for file in split_files if isinstance(split_files, list) else [split_files]:
                if not Path(file).expanduser().is_file():
                    raise TaskOptionError(f"task 'hf': data file {file} does not exist")
        # datasets logs an unreadable CSV with its absolute path before raising; rnnbench reports it itself.
        logging.getLogger("datasets.packaged_modules.csv.csv").setLevel(logging.CRITICAL)
        try:
            raw = datasets.load_dataset(
                builder, name=self.config, data_files=files, cache_dir=str(cache_dir / "hf")
            )
        except (FileNotFoundError, datasets.exceptions.DatasetNotFoundError, ConnectionError) as exc:
            raise TaskOptionError(
                f"task 'hf': could not load {self.path!r}: {exc} "
                "(without network, name local csv / json / parquet files)"
            ) from exc
        except (datasets.exceptions.DatasetGenerationError, ValueError) as exc:  # ragged rows, an empty file
            from rnnbench.errors import root_cause

            where = ", ".join(str(f) for f in (files or {}).values()) or self.path
            if "corresponds to no data" in str(exc):
                raise TaskOptionError(f"task 'hf': {where} holds no examples (only a header?)") from exc
            raise TaskOptionError(f"task 'hf': {where} could not be read: {root_cause(exc)}") from exc
        if not isinstance(raw, datasets.DatasetDict):
            raw = datasets.DatasetDict({"train": raw})
        return raw

    def _data_files(self) -> dict[str, str] | None:
        """``a.csv`` (train only) or ``train=a.csv,test=b.csv``."""
        if not self.data_files:
            return None
        if "=" not in self.data_files:
            return {"train": self.data_files}
        files = {}
        for part in self.data_files.split(","):
            split, _, file = part.partition("=")
            if split.strip() not in SPLITS or not file.strip():
                raise TaskOptionError(
                    f"task 'hf': data_files entry {part!r} must be SPLIT=FILE with SPLIT one of {', '.join(SPLITS)}"
                )
            files[split.strip()] = file.strip()
        return files

    def _check_columns(self, raw: Any) -> None:
        files = self._data_files() or {}
        for split, data in raw.items():
            if len(data) == 0:
                where = files.get(split) or self.path
                raise TaskOptionError(
                    f"task 'hf': {where} (split {split}) holds no examples (only a header?)"
                )
            for column in (self.sequence_column, self.label_column):
                if column not in data.column_names:
                    where = files.get(split) or self.path
                    option = "sequence_column" if column == self.sequence_column else "label_column"
                    raise TaskOptionError(
                        f"task 'hf': {where} (split {split}) has no column {column!r} (option {option}); "
                        f"its columns are: {', '.join(data.column_names)}"
                    )

    def _split(self, raw: Any, seed: int) -> dict[str, Any]:
        splits = {s: raw[s] for s in SPLITS if s in raw}
        if "validation" not in splits and "valid" in raw:
            splits["validation"] = raw["valid"]
        missing = [s for s in ("validation", "test") if s not in splits]
        if missing and len(splits["train"]) < 10 * len(missing):
            raise TaskOptionError(
                f"task 'hf': the train split has {len(splits['train'])} examples, too few to carve "
                f"{' and '.join(missing)} from (10 % each); give more examples or a {missing[0]} file"
            )
        if missing:
            carved = splits["train"].train_test_split(test_size=0.1 * len(missing), seed=seed)
            splits["train"] = carved["train"]
            rest = carved["test"]
            if len(missing) == 2:
                halves = rest.train_test_split(test_size=0.5, seed=seed)
                splits["validation"], splits["test"] = halves["train"], halves["test"]
            else:
                splits[missing[0]] = rest
        for split in SPLITS:
            wanted = self.sizes.of(split)
            if wanted:
                if wanted > len(splits[split]):
                    raise TaskOptionError(
                        f"task 'hf': {split}_size {wanted} is larger than the {split} split ({len(splits[split])})"
                    )
                splits[split] = splits[split].shuffle(seed=seed).select(range(wanted))
        return splits

    def _sequences(self, values: list[Any], split: str) -> tuple[list[np.ndarray], str]:
        first = next((v for v in values if v is not None), None)
        mode = self.requested_encoding
        missing = next((i for i, v in enumerate(values) if v is None), None)
        if missing is not None:
            raise TaskOptionError(
                f"task 'hf': column {self.sequence_column!r} of split {split} has no value in row {missing}"
            )
        if isinstance(first, str):
            if mode in ("auto", "linear") and all(NUMBERS_OR_NOT_FINITE.match(v) for v in values):
                bad = next((i for i, v in enumerate(values) if not NUMBERS.match(v)), None)
                if bad is not None:
                    raise TaskOptionError(
                        f"task 'hf': column {self.sequence_column!r} of split {split}, row {bad}, holds a number that "
                        f"is not finite ({values[bad][:60]!r}); sequences of numbers must be finite"
                    )
                numbers = [
                    np.array(re.split(r"[\s,;]+", v.strip()), dtype=np.float32)[:, None] for v in values
                ]
                overflow = next((i for i, n in enumerate(numbers) if not np.isfinite(n).all()), None)
                if overflow is not None:  # 1e400 is a number, but not one a float32 holds
                    raise TaskOptionError(
                        f"task 'hf': column {self.sequence_column!r} of split {split}, row {overflow}, holds a "
                        f"number that is not finite as float32 ({values[overflow][:60]!r})"
                    )
                return numbers, "linear"
            return [np.frombuffer(v.encode(), dtype=np.uint8).astype(np.int64) + 1 for v in values], "chars"
        arrays = [np.asarray(v) for v in values]
        if mode in ("auto", "one-hot") and all(a.ndim == 1 and a.dtype.kind in "iu" for a in arrays):
            if mode == "one-hot" or all(a.min(initial=0) >= 0 for a in arrays):
                return [a.astype(np.int64) + 1 for a in arrays], "one-hot"
        return [a.astype(np.float32).reshape(len(a), -1) for a in arrays], "linear"

    def load(self, seed: int = 0, cache_dir: Any = None) -> Any:
        import datasets

        datasets.disable_progress_bars()
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        raw = self._load_raw(root)
        self._check_columns(raw)
        splits = self._split(raw, seed)
        sequences, labels, kinds = {}, {}, set()
        for split, data in splits.items():
            sequences[split], kind = self._sequences(data[self.sequence_column], split)
            kinds.add(kind)
            labels[split] = data[self.label_column]
            self._check_labels(labels[split], split)
        if len(kinds) > 1:
            raise TaskOptionError(
                f"task 'hf': the splits hold different kinds of sequences ({sorted(kinds)})"
            )
        kind = kinds.pop()
        classes = sorted({label for split in labels.values() for label in split})
        if all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) and c >= 0 for c in classes):
            index = {c: int(c) for c in classes}
            n_classes = int(max(classes)) + 1
        else:
            index = {c: i for i, c in enumerate(classes)}
            n_classes = len(classes)
        longest = max(len(s) for split in sequences.values() for s in split)
        steps = self.max_length or longest
        width = 1 if kind != "linear" else sequences["train"][0].shape[1]
        self._check_memory_of(sum(len(s) for s in sequences.values()), steps, width, longest)
        result = {}
        for split in SPLITS:
            result[split] = self._pack(sequences[split], labels[split], index, steps, width, kind, split)
        train_targets = np.asarray(result["train"]["target"])
        self.encoding = "linear" if kind == "linear" else "one-hot"
        vocab = (
            257 if kind == "chars" else 1 + max(int(s.max(initial=0)) for x in sequences.values() for s in x)
        )
        self._meta = {
            "input_size": width if kind == "linear" else vocab,
            "classes": n_classes,
            "chance": float(np.bincount(train_targets, minlength=n_classes).max() / len(train_targets)),
        }
        self.length = steps
        return datasets.DatasetDict(result)

    def _check_labels(self, labels: list[Any], split: str) -> None:
        for row, label in enumerate(labels):
            if label is None or (isinstance(label, float) and not np.isfinite(label)):
                raise TaskOptionError(
                    f"task 'hf': column {self.label_column!r} of split {split} has no label in row {row} ({label!r})"
                )

    def _check_memory_of(self, count: int, steps: int, width: int, longest: int) -> None:
        """Sequences are padded to the longest: refuse, before padding, what cannot fit in memory."""
        from rnnbench.tasks import base

        needed = count * steps * width * 4
        total = base.physical_memory()
        if total is not None and needed > total // 2:
            raise TaskOptionError(
                f"task 'hf': {count} sequences padded to {steps} steps (the longest has {longest}) need "
                f"{base.human_size(needed)}, more than half of this machine's {base.human_size(total)}; "
                "set -o max_length=N"
            )

    def _pack(self, seqs, labels, index, steps, width, kind, split) -> Any:
        import datasets

        count = len(seqs)
        if kind == "linear":
            inputs = np.zeros((count, steps, width), dtype=np.float32)
        else:
            inputs = np.zeros((count, steps), dtype=np.int64)
        lengths = np.zeros(count, dtype=np.int32)
        for i, seq in enumerate(seqs):
            seq = seq[-steps:]
            if kind == "linear" and seq.shape[1] != width:
                raise TaskOptionError(
                    f"task 'hf': example {i} of split {split} has {seq.shape[1]} features per step, "
                    f"the first has {width}"
                )
            inputs[i, steps - len(seq) :] = seq
            lengths[i] = len(seq)
        columns = {
            "inputs": inputs,
            "target": np.array([index[label] for label in labels], dtype=np.int64),
            "distance": np.maximum(lengths - 1, 0).astype(np.int32),
            "length": lengths,
        }
        return datasets.Dataset.from_dict(columns, features=self.features(columns), split=split)


@hookimpl
def register_tasks(register: TaskRegistry) -> None:
    register("hf", HFSequence, description=HFSequence.description, reference=HFSequence.reference)
