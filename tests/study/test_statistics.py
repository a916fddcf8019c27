"""Paired statistics on hand-made curves whose answer is known."""

import numpy as np
import pytest
from scipy import stats

from alstudy.study.statistics import compare_all, enough_seeds, paired_rounds, penalty_matrix
from helpers.fakes import curves

N = np.arange(100, 700, 100)  # round 0 + 5 query rounds
ALPHA = 0.05


def test_identical_curves_are_never_significant():
    a = np.random.default_rng(0).uniform(0.6, 0.9, size=(5, 6))
    result = paired_rounds(a, a.copy(), N)
    assert result.wins(ALPHA) == result.losses(ALPHA) == 0
    assert result.mean == [0.0] * 5 and result.p_value == [None] * 5


def test_a_constant_gap_with_small_noise_is_significant_in_every_round():
    rng = np.random.default_rng(1)
    b = rng.uniform(0.6, 0.8, size=(5, 6))
    a = b + 0.03 + rng.normal(0, 0.002, size=(5, 6))
    a[:, 0] = b[:, 0]  # round 0 is shared
    result = paired_rounds(a, b, N)
    assert result.wins(ALPHA) == 5 and result.losses(ALPHA) == 0
    assert all(low > 0 for low in result.ci_low)
    assert paired_rounds(b, a, N).losses(ALPHA) == 5


def test_a_gap_identical_for_every_seed_is_significant_in_every_round():
    b = np.random.default_rng(3).uniform(0.6, 0.8, size=(3, 6))
    a = b + 0.02
    a[:, 0] = b[:, 0]
    result = paired_rounds(a, b, N)  # no spread in the differences: certain, not untestable
    assert result.p_value == [0.0] * 5 and result.wins(ALPHA) == 5
    assert paired_rounds(b, a, N).losses(ALPHA) == 5


def test_a_gap_inside_the_noise_is_not_significant():
    rng = np.random.default_rng(2)
    b = rng.uniform(0.6, 0.8, size=(3, 6))
    a = b + 0.005 + rng.normal(0, 0.03, size=(3, 6))
    result = paired_rounds(a, b, N)
    assert result.wins(ALPHA) == 0 and result.losses(ALPHA) == 0
    assert all(low < 0 < high for low, high in zip(result.ci_low, result.ci_high))


def test_p_values_and_intervals_match_scipy():
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0.5, 0.9, size=(4, 6)), rng.uniform(0.5, 0.9, size=(4, 6))
    result = paired_rounds(a, b, N)
    for r in range(1, 6):
        assert result.p_value[r - 1] == pytest.approx(stats.ttest_rel(a[:, r], b[:, r]).pvalue)
        low, high = stats.t.interval(0.95, 3, loc=(a - b)[:, r].mean(), scale=stats.sem((a - b)[:, r]))
        assert (result.ci_low[r - 1], result.ci_high[r - 1]) == pytest.approx((low, high))
    assert result.n_labeled == [200, 300, 400, 500, 600]


def test_penalty_matrix_counts_significant_wins_per_ordered_pair():
    rng = np.random.default_rng(4)
    base = rng.uniform(0.6, 0.7, size=(5, 4))
    noise = lambda: rng.normal(0, 0.002, size=(5, 4))  # noqa: E731
    good, bad = base + 0.05 + noise(), base - 0.05 + noise()
    for x in (good, bad):
        x[:, 0] = base[:, 0]
    grid = {"random": curves(base), "good": curves(good), "bad": curves(bad)}
    comparisons = compare_all(grid, "accuracy")
    matrix = penalty_matrix(comparisons, list(grid), ALPHA)
    assert matrix.tolist() == [[0, 0, 3], [3, 0, 3], [0, 0, 0]]


def test_fewer_than_two_seeds_allow_no_test():
    one = {"random": curves([[0.5, 0.6, 0.7, 0.8]]), "margin": curves([[0.5, 0.7, 0.8, 0.9]])}
    assert not enough_seeds(one)
    with pytest.raises(ValueError, match="at least 2"):
        paired_rounds(one["margin"].accuracy, one["random"].accuracy, one["margin"].n_labeled)


def test_strategies_with_different_seeds_cannot_be_paired():
    a, b = curves([[0.5] * 4, [0.6] * 4]), curves([[0.5] * 4, [0.6] * 4])
    b = type(b)(**{**b.__dict__, "seeds": [0, 7]})
    with pytest.raises(ValueError, match="different seeds"):
        compare_all({"a": a, "b": b}, "accuracy")
