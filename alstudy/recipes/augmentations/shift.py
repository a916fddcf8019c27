"""Random shifts: pad each image by `pixels` and crop it back at a random offset (the CIFAR "random crop")."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from alstudy.recipes.augmentations._base import NoOptions, register


class ShiftOptions(NoOptions):
    pixels: int = Field(2, ge=1, description="the largest shift, in pixels, each way")
    fill: str = Field("zero", pattern="^(zero|reflect)$", description="`zero` (black borders) or `reflect`")


@register("shift", options=ShiftOptions, summary="a random shift of up to `pixels` each way (pad and crop)")
def apply(images: np.ndarray, rng: np.random.Generator, options: ShiftOptions) -> np.ndarray:
    p = options.pixels
    n, h, w = images.shape[:3]
    padded = np.pad(images, ((0, 0), (p, p), (p, p), (0, 0)), mode="constant" if options.fill == "zero" else "reflect")
    dy, dx = rng.integers(0, 2 * p + 1, size=(2, n))
    # One gather for the whole batch: row r of image i comes from padded row dy[i] + r, column likewise.
    rows = dy[:, None] + np.arange(h)[None, :]
    cols = dx[:, None] + np.arange(w)[None, :]
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
