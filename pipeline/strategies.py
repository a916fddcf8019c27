"""Query strategies: a registry from name to a function of class probabilities.

A strategy takes the model's class probabilities for the candidate pool, the
number of instances to query and a seeded generator, and returns candidate
indices; it keeps no state. The uncertainty-based ones are modAL's own
sampling functions, fed probabilities the loop has already computed in
compiled batches, so the pool is never scored twice or copied whole.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from modAL.uncertainty import entropy_sampling, margin_sampling, uncertainty_sampling

Strategy = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


class _PrecomputedProba:
    """Stands in for a classifier in modAL: X is a vector of row numbers into the probabilities."""

    def __init__(self, proba: np.ndarray):
        self.proba = proba

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        return self.proba[rows]


def _from_modal(sampling_function) -> Strategy:
    def strategy(proba: np.ndarray, n_instances: int, rng: np.random.Generator) -> np.ndarray:
        rows = np.arange(len(proba))
        # random_tie_break=False keeps modAL off numpy's global generator: picks depend only on proba.
        query_idx, _ = sampling_function(_PrecomputedProba(proba), rows, n_instances=n_instances)
        return np.sort(np.asarray(query_idx))

    strategy.__name__ = sampling_function.__name__
    return strategy


def random_sampling(proba: np.ndarray, n_instances: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform without replacement; the probabilities are ignored (and need not be computed)."""
    return np.sort(rng.choice(len(proba), size=n_instances, replace=False))


STRATEGIES: dict[str, Strategy] = {
    "random": random_sampling,
    "uncertainty": _from_modal(uncertainty_sampling),  # least confidence: lowest top probability
    "margin": _from_modal(margin_sampling),            # smallest gap between the top two
    "entropy": _from_modal(entropy_sampling),          # highest entropy
}

# Strategies that need the model's probabilities on the pool; random does not.
NEEDS_SCORES = {name for name in STRATEGIES if name != "random"}
