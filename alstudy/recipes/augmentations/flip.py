"""Random horizontal flips: each image mirrored left to right with probability one half."""

from __future__ import annotations

import numpy as np

from alstudy.recipes.augmentations._base import NoOptions, register


@register("flip", summary="a horizontal flip of half the images, drawn per image")
def apply(images: np.ndarray, rng: np.random.Generator, options: NoOptions) -> np.ndarray:
    flipped = rng.random(len(images)) < 0.5
    out = images.copy()
    out[flipped] = images[flipped, :, ::-1]
    return out
