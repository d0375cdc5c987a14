"""Implementations behind the built-in cell plugins, and helpers for cell authors."""

from __future__ import annotations

import torch


def check_input(x: torch.Tensor, input_size: int, cell: str) -> None:
    """Raise a ValueError unless ``x`` is a batch-first float tensor (B, T, input_size)."""
    if x.dim() != 3:
        raise ValueError(
            f"cell {cell!r} expects a batch-first input (batch, time, {input_size}), "
            f"got a {x.dim()}-d tensor of shape {tuple(x.shape)}"
        )
    if x.size(-1) != input_size:
        raise ValueError(
            f"cell {cell!r} was built for input_size={input_size}, "
            f"got inputs with {x.size(-1)} features (shape {tuple(x.shape)})"
        )
    if not x.is_floating_point():
        raise ValueError(f"cell {cell!r} expects a floating-point input, got {x.dtype}")
