"""class_balanced: this project's imbalance-aware strategy."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from alstudy.strategies._base import Need, NoOptions, QueryInputs, register


class ClassBalancedOptions(NoOptions):
    power: float = Field(
        1.0,
        ge=0,
        description=(
            "a class's share of the batch ~ (its labelled count + 1) ** -power: 0 spreads the batch evenly over "
            "the predicted classes, 1 in inverse proportion to their counts"
        ),
    )


@register(
    "class_balanced",
    needs={Need.PROBA, Need.LABELED_CLASS_COUNTS},
    options=ClassBalancedOptions,
    summary="batch shared over predicted classes, rare-in-labelled first; margin within",
)
def class_balanced(inputs: QueryInputs) -> np.ndarray:
    """The batch is shared out over the classes the model predicts for the candidates, in proportion
    to (labelled count + 1) ** -power, so classes that are rare in the labelled set get more of it
    (D'Hondt apportionment: each slot goes to the class with the highest weight / (slots taken + 1);
    a class with no candidates left drops out). Within a class, candidates are taken by margin,
    smallest first."""
    proba = np.asarray(inputs.proba)
    counts = np.asarray(inputs.labeled_class_counts, dtype=np.float64)
    weights = (counts + 1.0) ** -inputs.options.power
    predicted = proba.argmax(axis=1)
    top2 = np.sort(proba, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    queues = [np.flatnonzero(predicted == c) for c in range(proba.shape[1])]
    queues = [q[np.argsort(margin[q], kind="stable")] for q in queues]
    taken = np.zeros(len(queues), dtype=np.int64)
    picks = []
    while len(picks) < inputs.n_instances:
        open_ = np.array([taken[c] < len(q) for c, q in enumerate(queues)])
        priority = np.where(open_, weights / (taken + 1), -np.inf)
        c = int(np.argmax(priority))
        picks.append(int(queues[c][taken[c]]))
        taken[c] += 1
    return np.sort(np.asarray(picks))
