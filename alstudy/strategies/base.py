"""base: Balanced Selection (BASE), Emam et al. 2021, "Active learning at the ImageNet scale".

(The module is named after the strategy, as every strategy's is; `_base.py` is the shared code.)
"""

from __future__ import annotations

import numpy as np

from alstudy.strategies._base import Need, QueryInputs, register


def boundary_distances(embeddings: np.ndarray, weights: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """N x C: each candidate's distance, in the penultimate feature space, to the decision boundary of
    each class. For a candidate predicted as class p and a class c != p, the boundary between p and c is
    the hyperplane where their logits are equal, at distance (z_p - z_c) / ||w_p - w_c||. For c = p
    itself, the nearest of c's boundaries with the other classes."""
    logits = embeddings @ weights + bias  # N x C
    n, n_classes = logits.shape
    predicted = logits.argmax(axis=1)
    # ||w_a - w_b|| for every pair of classes (C x C); the diagonal never divides anything.
    gaps = np.linalg.norm(weights[:, :, None] - weights[:, None, :], axis=0)
    np.fill_diagonal(gaps, np.inf)
    rows = np.arange(n)
    top = logits[rows, predicted][:, None]
    distances = (top - logits) / np.maximum(gaps[predicted], 1e-12)  # N x C; 0 at c = p (an infinite gap)
    others = distances.copy()
    others[rows, predicted] = np.inf
    distances[rows, predicted] = others.min(axis=1)
    return distances


@register(
    "base",
    needs={Need.EMBEDDINGS, Need.LAST_LAYER},
    summary="an equal share of the batch per class, nearest its decision boundary (Emam et al. 2021)",
)
def base(inputs: QueryInputs) -> np.ndarray:
    """BASE (Emam et al. 2021): every class gets an equal share of the batch, filled with the candidates
    closest, in the penultimate feature space, to that class's decision boundary (from either side).
    Popular strategies pick batches as imbalanced as the pool; BASE balances them by construction while
    still taking the uncertain candidates of each class.

    Classes take turns, one candidate each, in class order, so the shares differ by at most one; a
    candidate already taken by another class is skipped."""
    weights, bias = inputs.last_layer
    distances = boundary_distances(np.asarray(inputs.embeddings, np.float64), weights, bias)
    order = np.argsort(distances, axis=0, kind="stable")  # per class, nearest first
    taken = np.zeros(inputs.n_candidates, dtype=bool)
    position = np.zeros(distances.shape[1], dtype=np.int64)
    picks: list[int] = []
    while len(picks) < inputs.n_instances:
        for c in range(distances.shape[1]):
            if len(picks) == inputs.n_instances:
                break
            while taken[order[position[c], c]]:
                position[c] += 1
            candidate = int(order[position[c], c])
            taken[candidate] = True
            picks.append(candidate)
    return np.sort(np.asarray(picks))
