"""Paired comparisons between strategies over seeds.

The same seed gives every strategy the same initial set and the same round-0
model, so runs pair by seed: per round, the difference between two strategies
is taken seed by seed, and tested with a paired two-sided t-test
(scipy.stats.ttest_rel; Lüth et al. 2023 use the same at alpha = 0.05). The
pairwise penalty matrix (Ash et al. 2020) counts, for each ordered pair, the
query rounds in which the first is significantly better. Round 0 is left out:
it is identical for every strategy by construction.

The tests are per round and uncorrected for the number of rounds and pairs: at
alpha = 0.05 about one round in twenty shows a "significant" gap by chance.
They are the report's detail; its headline verdicts compare whole curves
(alstudy/study/verdicts.py). alpha is study.alpha in params.yaml, passed in by the
stages: no default here, so that no figure or count silently uses another.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from alstudy.study.summary import Curves, t_half_width

MIN_SEEDS = 2


@dataclass(frozen=True)
class PairedRounds:
    """Per query round: the mean of (a - b) over seeds, its 95% CI and the paired t-test's p-value."""

    n_labeled: list[int]
    mean: list[float]
    ci_low: list[float]
    ci_high: list[float]
    p_value: list[float | None]  # None where the differences do not vary (identical runs): no test

    def significant(self, alpha: float) -> list[bool]:
        return [p is not None and p < alpha for p in self.p_value]

    def wins(self, alpha: float) -> int:
        """Rounds in which a is significantly better than b."""
        return sum(s and m > 0 for s, m in zip(self.significant(alpha), self.mean))

    def losses(self, alpha: float) -> int:
        return sum(s and m < 0 for s, m in zip(self.significant(alpha), self.mean))

    def to_dict(self) -> dict:
        return {
            "n_labeled": self.n_labeled,
            "mean": self.mean,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": self.p_value,
        }


def enough_seeds(curves: dict[str, Curves]) -> bool:
    return min(len(c.seeds) for c in curves.values()) >= MIN_SEEDS


def paired_rounds(a: np.ndarray, b: np.ndarray, n_labeled: np.ndarray, confidence: float = 0.95) -> PairedRounds:
    """a, b: (seeds, rounds) of the same seeds in the same order; rounds 1.. only (round 0 is shared)."""
    if a.shape != b.shape or a.shape[0] < MIN_SEEDS:
        raise ValueError(f"paired tests need the same seeds on both sides, at least {MIN_SEEDS}")
    diff = (a - b)[:, 1:]
    mean = diff.mean(axis=0)
    half = t_half_width(diff, confidence)
    p_values = []
    for r in range(1, a.shape[1]):
        column = diff[:, r - 1]
        if np.ptp(column) == 0:  # no spread: the t statistic is undefined (0/0) or infinite (c/0)
            p_values.append(None if column[0] == 0 else 0.0)
        else:
            p_values.append(float(stats.ttest_rel(a[:, r], b[:, r]).pvalue))
    return PairedRounds(
        n_labeled=[int(x) for x in n_labeled[1:]],
        mean=mean.tolist(),
        ci_low=(mean - half).tolist(),
        ci_high=(mean + half).tolist(),
        p_value=p_values,
    )


def compare_all(curves: dict[str, Curves], metric: str) -> dict[tuple[str, str], PairedRounds]:
    """Every ordered pair of different strategies, on one metric."""
    names = list(curves)
    _check_same_seeds(curves)
    return {
        (a, b): paired_rounds(curves[a].metric(metric), curves[b].metric(metric), curves[a].n_labeled)
        for a in names
        for b in names
        if a != b
    }


def penalty_matrix(comparisons: dict[tuple[str, str], PairedRounds], names: list[str], alpha: float) -> np.ndarray:
    """P[i, j] = query rounds in which strategy i is significantly better than strategy j."""
    matrix = np.zeros((len(names), len(names)), dtype=int)
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if a != b:
                matrix[i, j] = comparisons[(a, b)].wins(alpha)
    return matrix


def _check_same_seeds(curves: dict[str, Curves]) -> None:
    seeds = {tuple(c.seeds) for c in curves.values()}
    if len(seeds) > 1:
        raise ValueError(f"strategies ran different seeds ({sorted(seeds)}); paired tests need the same ones")
