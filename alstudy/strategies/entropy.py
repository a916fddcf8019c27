"""entropy: uncertainty sampling through modAL's `entropy_sampling` (Settles 2009, a survey)."""

from __future__ import annotations

from alstudy.strategies._base import BatchOptions, Need, register
from alstudy.strategies._scores import entropy as class_entropy
from alstudy.strategies._scores import from_modal

entropy = register(
    "entropy",
    needs={Need.PROBA},
    options=BatchOptions,
    summary="highest entropy of the class probabilities (modAL)",
    score=lambda proba, mc_proba: class_entropy(proba),
)(from_modal("entropy_sampling", class_entropy))
