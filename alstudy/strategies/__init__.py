"""Query strategies: one module per strategy, registered by name, with what it needs and its options.

Each public module of this package is one strategy, named as the strategy (``margin.py`` is
``margin``); ``_base.py`` holds the registry and the types every strategy shares, ``_scores.py``
the arithmetic several share. Importing the package imports every strategy module, found on
disk, so adding a strategy is adding one file: nothing else is edited, and a DVC cell depends
only on the shared modules and its own strategy's file (changing one strategy reruns its cells
alone). Params validation, the stage's choices, plot colours and the benchmarks read the registry.

No strategy builds an N x N matrix: the distance-based ones keep one vector of N distances and
update it per pick.
"""

from __future__ import annotations

import importlib
import pkgutil

from alstudy.strategies._base import (
    ALIASES,
    STRATEGIES,
    GradientEmbeddings,
    Need,
    NoOptions,
    QueryInputs,
    Strategy,
    canonical,
    get,
    names,
    register,
)
from alstudy.strategies._scores import min_sq_distances

# `random` first: it is the baseline, and its place fixes the colour order of the plots.
_FIRST = (
    "random",
    "least_confidence",
    "margin",
    "entropy",
    "bald",
    "badge",
    "coreset",
    "class_balanced",
    "base",
    "f1_deficit",
)


def _strategy_modules() -> list[str]:
    found = {m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")}
    return [name for name in _FIRST if name in found] + sorted(found - set(_FIRST))


for _module in _strategy_modules():
    importlib.import_module(f"{__name__}.{_module}")

__all__ = [
    "ALIASES",
    "STRATEGIES",
    "GradientEmbeddings",
    "Need",
    "NoOptions",
    "QueryInputs",
    "Strategy",
    "canonical",
    "get",
    "min_sq_distances",
    "names",
    "register",
]
