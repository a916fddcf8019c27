"""least_confidence: uncertainty sampling through modAL's `uncertainty_sampling` (Settles 2009, a survey).

`uncertainty` is another name for it (modAL's), accepted where a strategy is named outside the grid.
"""

from __future__ import annotations

from modAL.uncertainty import uncertainty_sampling

from alstudy.strategies._base import Need, register
from alstudy.strategies._scores import from_modal

least_confidence = register(
    "least_confidence",
    needs={Need.PROBA},
    summary="lowest top-class probability (modAL's uncertainty_sampling)",
    score=lambda proba, mc_proba: 1.0 - proba.max(axis=1),
)(from_modal(uncertainty_sampling))
