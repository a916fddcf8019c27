"""When to stop labelling: stabilising predictions (Bloodgood and Vijay-Shanker 2009).

A fixed sample of unlabelled images, the stop set, is predicted by each round's model; the
agreement of two successive models on it is Cohen's kappa. Once the models stop changing their
minds (kappa at or above a threshold for a window of rounds in a row), more labels from the same
strategy are unlikely to change the predictions much, and labelling can stop. The authors use
a window of 3 and a threshold of 0.99; a lower threshold stops earlier at some cost in accuracy.
It needs no labels at all, so it works where a held-out labelled set does not exist.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np


def stop_set(n_pool: int, size: int, seed: int) -> np.ndarray:
    """The stop set: `size` pool indices drawn once per run (its own stream: the loop's draws are unchanged)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5709]))
    return np.sort(rng.choice(n_pool, size=min(size, n_pool), replace=False))


def stable_sample(names: Sequence[str], size: int, seed: int) -> list[str]:
    """A stop set of a folder: the `size` names that hash lowest with the seed. Adding images to the
    folder changes it only where a new image hashes lower, so successive batches watch the same images."""
    ranked = sorted(names, key=lambda name: hashlib.sha256(f"{seed}:{name}".encode()).digest())
    return sorted(ranked[:size])


def cohen_kappa(a: Sequence[int], b: Sequence[int]) -> float:
    """Agreement of two labellings beyond chance: 1 identical, 0 no more than chance.

    Two labellings that agree completely on a single class give 1 (no disagreement to correct for)."""
    a, b = np.asarray(a), np.asarray(b)
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"two labellings of one set are needed, got {len(a)} and {len(b)} labels")
    observed = float(np.mean(a == b))
    classes = np.union1d(a, b)
    expected = float(sum(np.mean(a == c) * np.mean(b == c) for c in classes))
    if expected >= 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return (observed - expected) / (1.0 - expected)


def stable_run(agreements: Sequence[float | None], threshold: float) -> int:
    """How many of the latest agreements, in a row, are at or above `threshold`."""
    run = 0
    for kappa in reversed(agreements):
        if kappa is None or kappa < threshold:
            break
        run += 1
    return run


def stopping_round(agreements: Sequence[float | None], threshold: float, window: int) -> int | None:
    """The first round at which the last `window` agreements (each round's model against the one
    before) were all at or above `threshold`; None if that never happened. `agreements[r]` belongs
    to round r (None for round 0, which has no model before it)."""
    run = 0
    for round_, kappa in enumerate(agreements):
        run = run + 1 if kappa is not None and kappa >= threshold else 0
        if run >= window:
            return round_
    return None
