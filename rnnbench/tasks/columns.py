"""A cached task's splits as plain column arrays, read without datasets.

A trial's worker needs the data as tensors only: importing datasets to read them cost its first trial half a
second of a start of about five (measured in the one-trial sweep's worker, where torch and Ray Tune were
already imported). Beside each cache entry that datasets wrote, the folder ``columns`` holds the same
columns as numpy files (``SPLIT.COLUMN.npy``), read memory-mapped as datasets' Arrow files are; tensors made
from them are those datasets' torch format gives (its dtype rules included). The folder is written whole
or not at all, and is only an aid: where it is missing or unreadable the worker reads datasets' files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

COLUMNS_FOLDER = "columns"


class Columns(dict[str, np.ndarray]):
    """One split: column name -> array, the first axis the examples."""

    def tensors(self, rows: int | None = None, device: Any = None) -> dict[str, torch.Tensor]:
        """The columns (their first ``rows``) as datasets' torch format gives them: integers as int64, floats
        as float32 (torch's default dtype), booleans as they are. Copies: the arrays stay as read."""
        import torch

        out = {}
        for name, array in self.items():
            kind = array.dtype.kind
            dtype = torch.int64 if kind in "iu" else torch.float32 if kind == "f" else None
            part = array[:rows]
            out[name] = torch.tensor(
                part.astype(np.int64) if kind == "u" else part, dtype=dtype, device=device
            )
        return out


def split_tensors(split: Any, rows: int | None = None, device: Any = None) -> dict[str, torch.Tensor]:
    """A split's columns (their first ``rows``) as tensors, whether kept columns or a datasets split."""
    if isinstance(split, Columns):
        return split.tensors(rows=rows, device=device)
    found = split.with_format("torch")[slice(rows)]
    return {k: v.to(device) for k, v in found.items()} if device is not None else dict(found)


def split_column(split: Any, name: str) -> np.ndarray:
    """One column of a split as a numpy array, whether kept columns or a datasets split."""
    return split[name] if isinstance(split, Columns) else split.with_format("numpy")[name]


def write_columns(folder: Path, splits: Mapping[str, Any]) -> None:
    """Keep ``splits`` (datasets) as ``folder/columns``, written whole or not at all. Columns that are not
    plain numbers or booleans (ragged, text) are not kept: their worker reads datasets."""
    arrays = {(split, name): np.asarray(values) for split, data in splits.items()
              for name, values in data.with_format("numpy")[:].items()}  # fmt: skip
    if any(array.dtype.kind not in "biuf" for array in arrays.values()):
        return
    target = folder / COLUMNS_FOLDER
    staging = folder / f".{COLUMNS_FOLDER}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir()
        for (split, name), array in arrays.items():
            np.save(staging / f"{split}.{name}.npy", array, allow_pickle=False)
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():  # else another process kept them first: its copy stays
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_columns(folder: Path) -> dict[str, Columns] | None:
    """The splits kept in ``folder/columns``, memory-mapped, or None where there are none (or they cannot be
    read: the caller reads datasets' files)."""
    found: dict[str, Columns] = {}
    with contextlib.suppress(OSError, ValueError):
        for path in sorted((folder / COLUMNS_FOLDER).glob("*.npy")):
            split, name = path.name.removesuffix(".npy").split(".", 1)
            found.setdefault(split, Columns())[name] = np.load(path, mmap_mode="r", allow_pickle=False)
        return found or None
    return None
