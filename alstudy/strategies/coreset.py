"""coreset: k-center greedy on penultimate embeddings."""

from __future__ import annotations

import numpy as np

from alstudy.strategies._base import Need, QueryInputs, register
from alstudy.strategies._scores import min_sq_distances, sq_distances


@register(
    "coreset",
    needs={Need.EMBEDDINGS, Need.LABELED_EMBEDDINGS},
    summary="k-center greedy on penultimate embeddings (Sener and Savarese 2018)",
)
def coreset(inputs: QueryInputs) -> np.ndarray:
    """Core-set (Sener and Savarese 2018), k-center greedy on penultimate embeddings: the labelled set
    is the first set of centres, and each pick is the candidate farthest from every centre so far.
    One vector of N distances is updated per pick: no N x N matrix."""
    x = np.asarray(inputs.embeddings, dtype=np.float64)
    norms = np.einsum("ij,ij->i", x, x)
    nearest = min_sq_distances(x, np.asarray(inputs.labeled_embeddings, dtype=np.float64))
    picks = []
    for _ in range(inputs.n_instances):
        nxt = int(np.argmax(nearest))
        picks.append(nxt)
        nearest = np.minimum(nearest, sq_distances(norms, norms[nxt], x @ x[nxt]))
        nearest[nxt] = -1.0  # never again, even when every distance left is 0
    return np.sort(np.asarray(picks))
