"""The learner interface: what the loop needs from a model, and nothing about how it is built.

The loop never builds the CNN itself; it re-initialises, fits and queries a
``Learner``. ``alstudy.learning.model.CNN`` is the real one; loop tests use a fake that
returns hand-made outputs with no training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Inference:
    """One batched pass over some rows: what was asked for, None for the rest."""

    proba: np.ndarray  # N x C
    embeddings: np.ndarray | None = None  # N x H, penultimate activations
    mc_proba: np.ndarray | None = None  # N x C x T, T MC-dropout passes


class Learner(Protocol):
    def reinitialize(self, seed: int) -> None:
        """Fresh weights, as a model newly built under `seed` would have."""

    def last_layer(self) -> tuple[np.ndarray, np.ndarray]:
        """The output layer's weights (H x C) and bias (C): logits = embeddings @ weights + bias."""

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int) -> int:
        """Train on the labelled images (one-hot y); return the epochs run."""

    def infer(
        self,
        images: np.ndarray,
        rows: np.ndarray | None = None,
        *,
        embeddings: bool = False,
        mc_passes: int = 0,
        mc_seed: int = 0,
    ) -> Inference:
        """Outputs for images[rows] (all images when rows is None) in one pass; MC masks seeded by mc_seed."""
