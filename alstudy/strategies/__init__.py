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

BASELINE = "random"  # the comparison every study makes; first, so it is the grey first line of each plot


def _strategy_modules() -> list[str]:
    """The strategy modules on disk: the baseline, then the others by name. The registry, and so the
    plots' colours and the stage's choices, follow this order; no list of names is kept anywhere."""
    found = {m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")}
    return sorted(found, key=lambda name: (name != BASELINE, name))


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
