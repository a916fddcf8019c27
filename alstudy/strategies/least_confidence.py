"""least_confidence: uncertainty sampling through modAL's `uncertainty_sampling` (Settles 2009, a survey).

`uncertainty` is another name for it (modAL's), accepted where a strategy is named outside the grid.
"""

from __future__ import annotations

from alstudy.strategies._base import BatchOptions, Need, register
from alstudy.strategies._scores import from_modal


def uncertainty(proba):
    """1 - the top class's probability: high where the model is least confident."""
    return 1.0 - proba.max(axis=1)


least_confidence = register(
    "least_confidence",
    needs={Need.PROBA},
    options=BatchOptions,
    summary="lowest top-class probability (modAL's uncertainty_sampling)",
    score=lambda proba, mc_proba: uncertainty(proba),
)(from_modal("uncertainty_sampling", uncertainty))
