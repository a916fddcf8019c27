"""Derive a class-imbalanced dataset by keeping a seeded share of each class."""

from __future__ import annotations

import numpy as np

from alstudy.data.preprocess import Split


def retention_profile(ratio: float, n_classes: int, fractions: list[float] | None = None) -> np.ndarray:
    """Share of each class to keep: explicit fractions, or a long tail from the imbalance ratio.

    The long tail decays geometrically, ratio ** (-c / (n - 1)): class 0 keeps
    everything and the last class keeps 1 / ratio (Cui et al., 2019).
    """
    if fractions is not None:
        return np.asarray(fractions, dtype=np.float64)
    return ratio ** (-np.arange(n_classes) / (n_classes - 1))


def subsample_indices(labels: np.ndarray, fractions: np.ndarray, seed: int) -> np.ndarray:
    """Sorted indices that keep round(fraction * count) (at least one) of each class, chosen at random."""
    rng = np.random.default_rng(seed)
    kept = []
    for cls, fraction in enumerate(fractions):
        members = np.flatnonzero(labels == cls)
        if members.size == 0:
            continue
        n_keep = max(1, int(round(fraction * members.size)))
        kept.append(rng.choice(members, size=n_keep, replace=False))
    return np.sort(np.concatenate(kept))


def imbalance_split(split: Split, fractions: np.ndarray, seed: int) -> Split:
    keep = subsample_indices(split.labels, fractions, seed)
    return Split(np.asarray(split.x[keep]), np.asarray(split.y[keep]))
