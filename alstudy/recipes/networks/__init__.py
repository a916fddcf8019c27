"""Networks a recipe trains: one module per network, registered by name, with its options.

Every network is a trunk (images in, a feature map or vector out) under the same head: Flatten
(`flatten`), dropout, the hidden Dense layer (`hidden`), dropout and the softmax output (`output`)
(alstudy/learning/model.py builds it). So one-pass inference, MC-dropout passes for BALD, BADGE's
gradient embeddings and Core-set's embeddings work the same on every network. Adding a network is
adding one module here; `model.network` and a recipe's `network` name it. Modules import Keras only
inside `trunk`, so that params validation reads this registry without starting a backend.
"""

from __future__ import annotations

import importlib
import pkgutil

from alstudy.recipes.networks._base import NETWORKS, Network, NoOptions, get, names, register

DEFAULT = "cnn"  # the seed's CNN: the default recipe, its numbers bit for bit those before networks existed


def _network_modules() -> list[str]:
    found = {m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")}
    return sorted(found, key=lambda name: (name != DEFAULT, name))


for _module in _network_modules():
    importlib.import_module(f"{__name__}.{_module}")

__all__ = ["DEFAULT", "NETWORKS", "Network", "NoOptions", "get", "names", "register"]
