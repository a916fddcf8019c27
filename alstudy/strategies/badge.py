"""badge: batch active learning by diverse gradient embeddings."""

from __future__ import annotations

import numpy as np

from alstudy.strategies._base import Need, QueryInputs, register
from alstudy.strategies._scores import sq_distances


@register(
    "badge",
    needs={Need.GRADIENT_EMBEDDINGS},
    summary="k-means++ seeding on last-layer gradient embeddings (Ash et al. 2020)",
)
def badge(inputs: QueryInputs) -> np.ndarray:
    """BADGE (Ash et al. 2020): k-means++ seeding on last-layer gradient embeddings, so the batch is
    both uncertain (long gradients) and diverse (far apart). The first pick is the longest gradient,
    as in the authors' code; each next one is drawn with probability proportional to its squared
    distance from the nearest pick, so an exact duplicate of a pick is never drawn.

    The embeddings stay factored (probabilities x penultimate activations), never expanded, and
    one vector of N distances is updated per pick: no N x N matrix."""
    g = inputs.gradient_embeddings
    norms = g.sq_norms()
    first = int(np.argmax(norms))
    picks = [first]
    nearest = sq_distances(norms, norms[first], g.dot_with(first))
    while len(picks) < inputs.n_instances:
        total = nearest.sum()
        if total > 0:
            nxt = int(inputs.rng.choice(len(g), p=nearest / total))
        else:  # every candidate left duplicates a pick: fall back to uniform over the rest
            rest = np.setdiff1d(np.arange(len(g)), picks)
            nxt = int(inputs.rng.choice(rest))
        picks.append(nxt)
        nearest = np.minimum(nearest, sq_distances(norms, norms[nxt], g.dot_with(nxt)))
        nearest[picks] = 0.0
    return np.sort(np.asarray(picks))
