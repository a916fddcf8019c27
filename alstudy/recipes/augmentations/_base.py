"""The augmentation registry and what every augmentation module provides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from pydantic import BaseModel, ConfigDict


class NoOptions(BaseModel):
    """An augmentation's options; this one takes none."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# apply(images N x H x W x C float32 in [0, 1], generator, validated options) -> new images, same shape.
Apply = Callable[[np.ndarray, np.random.Generator, Any], np.ndarray]


@dataclass(frozen=True)
class Augmentation:
    apply: Apply
    options: type[BaseModel]
    summary: str


AUGMENTATIONS: dict[str, Augmentation] = {}


def register(name: str, *, options: type[BaseModel] = NoOptions, summary: str) -> Callable[[Apply], Apply]:
    def decorator(apply: Apply) -> Apply:
        if name in AUGMENTATIONS:
            raise ValueError(f"augmentation {name!r} is registered twice")
        AUGMENTATIONS[name] = Augmentation(apply, options, summary)
        return apply

    return decorator


def names() -> list[str]:
    return list(AUGMENTATIONS)


def get(name: str) -> Augmentation:
    try:
        return AUGMENTATIONS[name]
    except KeyError:
        raise ValueError(f"unknown augmentation {name!r}; allowed: {', '.join(AUGMENTATIONS)}") from None
