"""The augmentation registry and what every augmentation module provides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from pydantic import BaseModel

from alstudy.recipes._registry import NoOptions, Registry

# apply(images N x H x W x C float32 in [0, 1], generator, validated options) -> new images, same shape.
Apply = Callable[[np.ndarray, np.random.Generator, Any], np.ndarray]


@dataclass(frozen=True)
class Augmentation:
    apply: Apply
    options: type[BaseModel]
    summary: str


_REGISTRY: Registry[Augmentation] = Registry("augmentation")
AUGMENTATIONS = _REGISTRY.entries
names, get = _REGISTRY.names, _REGISTRY.get


def register(name: str, *, options: type[BaseModel] = NoOptions, summary: str) -> Callable[[Apply], Apply]:
    def decorator(apply: Apply) -> Apply:
        _REGISTRY.add(name, Augmentation(apply, options, summary))
        return apply

    return decorator
