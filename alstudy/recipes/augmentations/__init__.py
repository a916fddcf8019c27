"""Training-time augmentations: one module per augmentation, registered by name, with its options.

A recipe's `augmentation` lists them in the order they apply, each with its options
(`{shift: {pixels: 2}, flip: {}}`). They transform the labelled images of each training epoch
in NumPy, from a generator seeded by (run seed, round seed, epoch), before the epoch is handed
to the backend: the same images on every backend, and the same again after a resume. Evaluation,
pool scoring and the validation slice see the images as they are.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable

import numpy as np

from alstudy.recipes.augmentations._base import AUGMENTATIONS, Augmentation, NoOptions, get, names, register

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
    importlib.import_module(f"{__name__}.{_module}")


def pipeline(spec: dict[str, dict]) -> Callable[[np.ndarray, np.random.Generator], np.ndarray] | None:
    """The augmentations of a recipe as one function (images, generator) -> images; None for none."""
    if not spec:
        return None
    steps = [(get(name).apply, get(name).options.model_validate(options or {})) for name, options in spec.items()]

    def augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for apply, options in steps:
            images = apply(images, rng, options)
        return images

    return augment


__all__ = ["AUGMENTATIONS", "Augmentation", "NoOptions", "get", "names", "pipeline", "register"]
