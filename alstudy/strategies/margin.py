"""margin: uncertainty sampling through modAL's `margin_sampling` (Settles 2009, a survey)."""

from __future__ import annotations

from alstudy.strategies._base import BatchOptions, Need, register
from alstudy.strategies._scores import from_modal, top_two_margin

margin = register(
    "margin",
    needs={Need.PROBA},
    options=BatchOptions,
    summary="smallest gap between the two most likely classes (modAL)",
    score=lambda proba, mc_proba: top_two_margin(proba),
    low_first=True,
)(from_modal("margin_sampling", lambda proba: 1.0 - top_two_margin(proba)))  # a draw wants high = pick first
