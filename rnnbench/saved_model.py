"""Where models pickled before the layered packages find their rebuild: MLflow's PyTorch flavour of a
model logged by rnnbench 0.11 or earlier names ``rnnbench.saved_model.rebuild``. New code imports
``rnnbench.training.model.rebuild``, ``rnnbench.training.recipe`` and ``rnnbench.tracking.models``."""

from __future__ import annotations

from rnnbench.training.model import rebuild

__all__ = ["rebuild"]
