"""A cached task's splits as plain column arrays, read without datasets.

A trial's worker needs the data as tensors only: importing datasets to read them cost its first trial half a
second of a start of about five (measured in the one-trial sweep's worker, where torch and Ray Tune were
already imported). Beside each cache entry that datasets wrote, ``columns.npz`` holds the same columns as
numpy arrays; tensors made from them are those datasets' torch format gives (its dtype rules included).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

COLUMNS_FILE = "columns.npz"


class Columns(dict[str, np.ndarray]):
    """One split: column name -> array, the first axis the examples."""

    def numpy(self, name: str) -> np.ndarray:
        return self[name]

    def tensors(self, rows: int | None = None, device: Any = None) -> dict[str, torch.Tensor]:
        """The columns (their first ``rows``) as datasets' torch format gives them: integers as int64, floats
        as float32 (torch's default dtype), others as they are."""
        import torch

        out = {}
        for name, array in self.items():
            kind = array.dtype.kind
            dtype = torch.int64 if kind in "iu" else torch.float32 if kind == "f" else None
            out[name] = torch.tensor(array[:rows], dtype=dtype, device=device)
        return out


def write_columns(folder: Path, splits: Mapping[str, Any]) -> None:
    """Keep ``splits`` (datasets) as ``folder/columns.npz``, written whole or not at all; ragged columns (arrays
    of objects) are not kept, and their worker reads datasets."""
    arrays = {f"{split}/{name}": np.asarray(values) for split, data in splits.items()
              for name, values in data.with_format("numpy")[:].items()}  # fmt: skip
    if any(array.dtype == object for array in arrays.values()):  # ragged: left to datasets
        return
    staging = folder / f".{COLUMNS_FILE}.{os.getpid()}-{uuid.uuid4().hex[:8]}.npz"
    try:
        np.savez(staging, **arrays)
        os.replace(staging, folder / COLUMNS_FILE)
    finally:
        staging.unlink(missing_ok=True)


def read_columns(folder: Path) -> dict[str, Columns] | None:
    """The splits kept in ``folder/columns.npz``, or None when there is none."""
    try:
        with np.load(folder / COLUMNS_FILE, allow_pickle=False) as kept:
            found: dict[str, Columns] = {}
            for key in kept.files:
                split, _, name = key.partition("/")
                found.setdefault(split, Columns())[name] = kept[key]
            return found
    except FileNotFoundError:
        return None
