"""torch.optim's optimizers without the import of TorchDynamo that their first use triggers.

torch.optim marks ``step``, ``zero_grad``, ``add_param_group`` and the state-dict methods to be
skipped by ``torch.compile``, and doing so imports ``torch._dynamo`` (and SymPy) on the first call:
1.8 s of CPU to create one Adam optimizer in a fresh process on this project's 2-core host, paid by
every Ray trial, each a fresh process. rnnbench never compiles its training step, so ``eager(cls)``
runs torch's own update without that: ``step`` is torch's step under ``torch.no_grad()`` (what its
decorator does for a non-differentiable optimizer, less the graph breaks), and the marked methods are
told that their compile-exempt version is themselves, through the cache attribute the marker itself
reads. A process that has already imported Dynamo (it compiles something) keeps torch's classes; one
that imports it later and compiles code calling those methods would have Dynamo trace into them.
"""

from __future__ import annotations

import functools
import inspect
import sys
import types
from collections.abc import Iterable, Iterator

import torch

_CACHE = "__dynamo_disable"  # where torch._compile._disable_dynamo caches the exempt version


@functools.cache
def eager(cls: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """``cls`` with the same update and state dict, usable without importing Dynamo; named
    ``Eager<cls>`` in this module (an optimizer pickles and unpickles by that name)."""
    if "torch._dynamo" in sys.modules or not hasattr(cls.step, "__wrapped__"):
        return cls
    _mark_optim_functions()
    # Unwrapped to torch's own step: once an instance of ``cls`` exists, torch has also wrapped its
    # class's step in the profiling hook, around the decorator that imports Dynamo.
    torch_step = inspect.unwrap(cls.step)
    decorated = cls.step.__wrapped__ if getattr(cls.step, "hooked", False) else cls.step

    def step(self, closure=None):
        if self.defaults.get("differentiable"):  # never rnnbench's: torch's way, graph breaks and all
            return decorated(self, closure)
        with torch.no_grad():
            return torch_step(self, closure)

    step.__doc__ = cls.step.__doc__
    name = f"Eager{cls.__name__}"
    namespace = {"step": step, "__module__": __name__, "__qualname__": name, "__doc__": cls.__doc__}
    return type(name, (cls,), namespace)


def __getattr__(name: str) -> type[torch.optim.Optimizer]:
    """``EagerAdam`` and the like, for unpickling in a process that has not built them yet."""
    base = getattr(torch.optim, name.removeprefix("Eager"), None) if name.startswith("Eager") else None
    if isinstance(base, type) and issubclass(base, torch.optim.Optimizer):
        return eager(base)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _mark_optim_functions() -> int:
    """Tell torch.optim's compile-exempt functions that they are their own exempt version."""
    probe = torch._disable_dynamo(lambda: None).__code__
    marked = 0
    for name, module in list(sys.modules.items()):
        if name == "torch.optim" or name.startswith("torch.optim."):
            for function in _functions(vars(module).values(), module.__name__):
                if function.__code__ is probe and hasattr(function, "__wrapped__"):
                    setattr(function.__wrapped__, _CACHE, function.__wrapped__)
                    marked += 1
    return marked


def _functions(objects: Iterable[object], module: str, depth: int = 0) -> Iterator[types.FunctionType]:
    """The functions among ``objects``, the methods of classes defined in ``module``, and the functions
    their closures hold (torch.optim's ``maybe_fallback`` wrapper holds the marked one)."""
    for obj in objects:
        if isinstance(obj, type) and obj.__module__ == module:
            yield from _functions(vars(obj).values(), module, depth)
        elif isinstance(obj, types.FunctionType):
            yield obj
            if depth < 2 and obj.__closure__:
                yield from _functions(_cell_contents(obj.__closure__), module, depth + 1)


def _cell_contents(cells: Iterable[types.CellType]) -> Iterator[object]:
    for cell in cells:
        try:
            yield cell.cell_contents
        except ValueError:  # an empty cell
            continue
