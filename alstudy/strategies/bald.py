"""bald: Bayesian active learning by disagreement, from MC-dropout passes."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from alstudy.strategies._base import BatchOptions, Need, QueryInputs, register
from alstudy.strategies._scores import draw_of, drawn, entropy


class BaldOptions(BatchOptions):
    mc_passes: int = Field(
        20, ge=2, description=("MC-dropout forward passes per candidate (Gal et al. 2017 used 20 on MNIST)")
    )


@register(
    "bald",
    needs={Need.MC_PROBA},
    options=BaldOptions,
    summary="mutual information from MC-dropout passes (Houlsby et al. 2011; Gal et al. 2017)",
    score=lambda proba, mc_proba: mutual_information(mc_proba),
)
def bald(inputs: QueryInputs) -> np.ndarray:
    """BALD: mutual information between the prediction and the weights, estimated from T MC-dropout
    passes (Houlsby et al. 2011; Gal et al. 2017): H[mean_t p_t] - mean_t H[p_t]. High where the
    passes disagree; zero where every pass is equally unsure in the same way. With a stochastic `batch`
    option, PowerBALD and its kin (Kirsch et al. 2023)."""
    return drawn(mutual_information(inputs.mc_proba), inputs.n_instances, inputs.rng, *draw_of(inputs.options))


def mutual_information(mc_proba: np.ndarray) -> np.ndarray:
    """Each candidate's BALD score from its N x C x T passes: entropy of the mean minus mean entropy."""
    mc = np.asarray(mc_proba, dtype=np.float64)
    return entropy(mc.mean(axis=2)) - entropy(mc, axis=1).mean(axis=1)
