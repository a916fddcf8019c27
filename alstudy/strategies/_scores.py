"""Arithmetic several strategies share: top-k, entropy, squared distances, and modAL's samplers."""

from __future__ import annotations

import importlib
from typing import Callable

import numpy as np

from alstudy.strategies._base import QueryInputs


def top(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n highest scores; ties go to the lower index."""
    return np.sort(np.argsort(-scores, kind="stable")[:n])


def draw_of(options) -> tuple[str, float]:
    """A strategy's batch draw and its beta (BatchOptions); the top scores for options without them."""
    return getattr(options, "batch", "top"), getattr(options, "beta", 1.0)


def drawn(scores: np.ndarray, n: int, rng: np.random.Generator, batch: str, beta: float) -> np.ndarray:
    """n candidates drawn without replacement, each with a chance that grows with its score (Kirsch et al.
    2023): `power` p ~ score^beta (scores >= 0; a score of 0 only once the rest are drawn), `softmax`
    p ~ exp(beta x score), `softrank` p ~ rank^-beta; `top` the n highest. The draw is Gumbel-top-k (Kool et
    al. 2019): the n largest of log p + Gumbel noise, one draw of `rng` per candidate."""
    scores = np.asarray(scores, dtype=np.float64)
    if batch == "top":
        return top(scores, n)
    if batch == "power":
        with np.errstate(divide="ignore"):
            log_p = beta * np.log(np.clip(scores, 0.0, None))
    elif batch == "softmax":
        log_p = beta * scores
    elif batch == "softrank":
        ranks = np.empty(len(scores))
        ranks[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
        log_p = -beta * np.log(ranks)
    else:
        raise ValueError(f"unknown batch draw {batch!r}")
    keys = log_p + rng.gumbel(size=len(scores))
    return np.sort(np.argsort(-keys, kind="stable")[:n])


def top_two_margin(proba: np.ndarray) -> np.ndarray:
    """The gap between each row's two highest probabilities: small where the model hesitates."""
    top2 = np.sort(proba, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def entropy(proba: np.ndarray, axis: int = 1) -> np.ndarray:
    return -np.sum(proba * np.log(np.clip(proba, 1e-12, None)), axis=axis)


def sq_distances(norms: np.ndarray, norm_j: float, dots_j: np.ndarray) -> np.ndarray:
    """||x_i - x_j||^2 for every i from norms and dot products; rounding below zero is clipped."""
    return np.maximum(norms + norm_j - 2.0 * dots_j, 0.0)


def min_sq_distances(x: np.ndarray, centres: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """For each row of x, the squared distance to its nearest centre, in chunks of both, so memory
    stays at chunk x chunk however large the pool and the labelled set are."""
    x_norms = np.einsum("ij,ij->i", x, x)
    c_norms = np.einsum("ij,ij->i", centres, centres)
    nearest = np.full(len(x), np.inf)
    for i in range(0, len(x), chunk):
        block = x[i : i + chunk]
        for j in range(0, len(centres), chunk):
            d = x_norms[i : i + chunk, None] + c_norms[None, j : j + chunk] - 2.0 * block @ centres[j : j + chunk].T
            nearest[i : i + chunk] = np.minimum(nearest[i : i + chunk], d.min(axis=1))
    return np.maximum(nearest, 0.0)


class _PrecomputedProba:
    """Stands in for a classifier in modAL: X is a vector of row numbers into the probabilities."""

    def __init__(self, proba: np.ndarray):
        self.proba = proba

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        return self.proba[rows]


def from_modal(sampler: str, acquisition: Callable[[np.ndarray], np.ndarray]) -> Callable[[QueryInputs], np.ndarray]:
    """A selection function that runs modAL's sampler `sampler` (a name in modAL.uncertainty) on the
    probabilities the loop computed, or, with a stochastic `batch` option (BatchOptions), draws by
    `acquisition` (the same measure, higher first). modAL is imported at the first query: it brings
    scikit-learn along (1.4 s), which params validation, and so every stage, would otherwise pay."""

    def select(inputs: QueryInputs) -> np.ndarray:
        batch, beta = draw_of(inputs.options)
        if batch != "top":
            return drawn(acquisition(inputs.proba), inputs.n_instances, inputs.rng, batch, beta)
        sampling_function = getattr(importlib.import_module("modAL.uncertainty"), sampler)
        rows = np.arange(len(inputs.proba))
        # random_tie_break=False keeps modAL off numpy's global generator: picks depend only on proba.
        query_idx, _ = sampling_function(_PrecomputedProba(inputs.proba), rows, n_instances=inputs.n_instances)
        return np.sort(np.asarray(query_idx))

    select.__name__ = sampler
    select.__doc__ = (
        f"modAL's {sampler} on the probabilities the loop computed (uncertainty sampling as surveyed by Settles 2009)."
    )
    return select
