"""The network registry and what every network module provides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # Keras and the params are the caller's; importing them here would start a backend
    from alstudy.params import ModelParams


class NoOptions(BaseModel):
    """A network's options, validated from `network_options`; this one takes none."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# trunk(input_shape, model params, the network's validated options, the layers' dtype policy) -> the layers
# between the input and the head's Flatten, in order (a network with branches is one functional Model).
Trunk = Callable[[tuple, "ModelParams", Any, str], list]


@dataclass(frozen=True)
class Network:
    trunk: Trunk
    options: type[BaseModel]
    summary: str


NETWORKS: dict[str, Network] = {}


def register(name: str, *, options: type[BaseModel] = NoOptions, summary: str) -> Callable[[Trunk], Trunk]:
    def decorator(trunk: Trunk) -> Trunk:
        if name in NETWORKS:
            raise ValueError(f"network {name!r} is registered twice")
        NETWORKS[name] = Network(trunk, options, summary)
        return trunk

    return decorator


def names() -> list[str]:
    return list(NETWORKS)


def get(name: str) -> Network:
    try:
        return NETWORKS[name]
    except KeyError:
        raise ValueError(f"unknown network {name!r}; allowed: {', '.join(NETWORKS)}") from None
