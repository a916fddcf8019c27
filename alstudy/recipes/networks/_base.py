"""The network registry and what every network module provides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from pydantic import BaseModel

from alstudy.recipes._registry import NoOptions, Registry

if TYPE_CHECKING:  # Keras and the params are the caller's; importing them here would start a backend
    from alstudy.params import ModelParams


# trunk(input_shape, model params, the network's validated options, the layers' dtype policy) -> the layers
# between the input and the head's Flatten, in order (a network with branches is one functional Model).
Trunk = Callable[[tuple, "ModelParams", Any, str], list]


@dataclass(frozen=True)
class Network:
    trunk: Trunk
    options: type[BaseModel]
    summary: str


_REGISTRY: Registry[Network] = Registry("network")
NETWORKS = _REGISTRY.entries
names, get = _REGISTRY.names, _REGISTRY.get


def register(name: str, *, options: type[BaseModel] = NoOptions, summary: str) -> Callable[[Trunk], Trunk]:
    def decorator(trunk: Trunk) -> Trunk:
        _REGISTRY.add(name, Network(trunk, options, summary))
        return trunk

    return decorator
