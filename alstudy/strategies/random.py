"""random: the baseline every other strategy is measured against."""

from __future__ import annotations

import numpy as np

from alstudy.strategies._base import QueryInputs, register


@register("random", summary="uniform over the candidates: the baseline")
def random_sampling(inputs: QueryInputs) -> np.ndarray:
    """Uniform without replacement over the candidates. It needs nothing from the model, so the loop
    scores nothing for it."""
    return np.sort(inputs.rng.choice(inputs.n_candidates, size=inputs.n_instances, replace=False))
