"""f1_deficit: this project's strategy for macro-F1 under class imbalance.

`class_balanced` shared the batch by how rare each class is in the labelled set, and lost to margin
on imbalanced Fashion-MNIST: it spent the batch on rare classes that are easy (bags, boots) while the
macro-F1 points were lost on confusable ones (shirt, coat, pullover). This strategy shares the batch by
where macro-F1 is lost instead: each class's F1 on a balanced test set is estimated from the model's
own probabilities over the candidates, and each class gets a share of the batch in proportion to its
deficit, 1 - F1. Within a class's share it takes the candidates nearest that class's decision
boundary: those whose two most probable classes include it, by margin, smallest first (the images
whose label would move the boundary, including the class's missed members, predicted as another
class with it as runner-up).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from alstudy.strategies._base import Need, NoOptions, QueryInputs, register


class F1DeficitOptions(NoOptions):
    power: float = Field(
        1.0,
        ge=0,
        description=(
            "a class's share of the batch ~ (1 - its estimated F1) ** power: 0 shares the batch evenly over the "
            "classes, larger powers put more of it on the weakest classes"
        ),
    )


def balanced_f1_estimate(proba: np.ndarray) -> np.ndarray:
    """Each class's F1 on a balanced test set, estimated without labels from the probabilities of the
    candidates: the model's probabilities stand in for the truth, and each class's probability mass is
    weighted to one, as if every class were as frequent (the test set the study scores on is balanced).

    recall_c = sum over images predicted c of p_c / mass_c; predicted_c = sum over images predicted c of
    sum_k p_k / mass_k; F1_c = 2 recall_c / (1 + predicted_c)."""
    proba = np.asarray(proba, dtype=np.float64)
    n_classes = proba.shape[1]
    mass = np.maximum(proba.sum(axis=0), 1e-12)
    weighted = proba / mass  # each class's column sums to one
    predicted = proba.argmax(axis=1)
    recall = np.bincount(predicted, weights=weighted[np.arange(len(proba)), predicted], minlength=n_classes)
    predicted_mass = np.bincount(predicted, weights=weighted.sum(axis=1), minlength=n_classes)
    return 2 * recall / (1 + predicted_mass)


def apportion(weights: np.ndarray, queues: list[np.ndarray], n: int, n_candidates: int) -> list[int]:
    """`n` distinct candidates: each slot goes to the class with the highest weight / (slots taken + 1)
    (D'Hondt), which takes the next candidate of its queue not taken yet; a class whose queue is spent
    drops out."""
    taken = np.zeros(n_candidates, dtype=bool)
    slots = np.zeros(len(queues), dtype=np.int64)
    position = np.zeros(len(queues), dtype=np.int64)
    picks: list[int] = []
    while len(picks) < n:
        for c, queue in enumerate(queues):  # skip what other classes took
            while position[c] < len(queue) and taken[queue[position[c]]]:
                position[c] += 1
        open_ = np.array([position[c] < len(q) for c, q in enumerate(queues)])
        if not open_.any():
            break
        c = int(np.argmax(np.where(open_, weights / (slots + 1), -np.inf)))
        candidate = int(queues[c][position[c]])
        taken[candidate] = True
        picks.append(candidate)
        slots[c] += 1
    return picks


@register(
    "f1_deficit",
    needs={Need.PROBA},
    options=F1DeficitOptions,
    summary="batch shared over classes by estimated F1 deficit; each share nearest its class's boundary",
)
def f1_deficit(inputs: QueryInputs) -> np.ndarray:
    """Shares of the batch in proportion to (1 - estimated balanced F1) ** power per class (see the
    module's docstring for why); within a share, the candidates with that class among their two most
    probable, by margin, smallest first. Every candidate is in its most probable class's queue, so the
    batch is always filled."""
    proba = np.asarray(inputs.proba, dtype=np.float64)
    deficit = np.clip(1.0 - balanced_f1_estimate(proba), 1e-6, None)
    weights = deficit**inputs.options.power
    order = np.argsort(proba, axis=1)
    first, second = order[:, -1], order[:, -2]
    rows = np.arange(len(proba))
    margin = proba[rows, first] - proba[rows, second]
    by_margin = np.argsort(margin, kind="stable")
    queues = [by_margin[(first[by_margin] == c) | (second[by_margin] == c)] for c in range(proba.shape[1])]
    picks = apportion(weights, queues, inputs.n_instances, inputs.n_candidates)
    return np.sort(np.asarray(picks, dtype=np.int64))
