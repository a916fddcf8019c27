"""Cutout (DeVries and Taylor 2017): one square per image set to zero, centred anywhere in the image (so it
may be clipped by the border), a strong regulariser on top of shifts and flips."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from alstudy.recipes.augmentations._base import NoOptions, register


class CutoutOptions(NoOptions):
    size: int = Field(8, ge=1, description="the square's side in pixels (DeVries and Taylor use 16 on 32x32 CIFAR-10)")


@register("cutout", options=CutoutOptions, summary="one `size` x `size` square per image set to zero")
def apply(images: np.ndarray, rng: np.random.Generator, options: CutoutOptions) -> np.ndarray:
    n, h, w = images.shape[:3]
    cy, cx = rng.integers(0, h, size=n), rng.integers(0, w, size=n)
    half = options.size // 2
    rows, cols = np.arange(h)[None, :], np.arange(w)[None, :]
    inside_rows = (rows >= (cy - half)[:, None]) & (rows < (cy - half + options.size)[:, None])
    inside_cols = (cols >= (cx - half)[:, None]) & (cols < (cx - half + options.size)[:, None])
    mask = inside_rows[:, :, None] & inside_cols[:, None, :]
    return np.where(mask[..., None], np.float32(0), images).astype(images.dtype, copy=False)
