"""Stabilising predictions: Cohen's kappa against hand-computed values, the stop set, the stopping round."""

from __future__ import annotations

import numpy as np
import pytest

from alstudy.learning.stopping import cohen_kappa, stop_set, stopping_round


def test_kappa_of_identical_labellings_is_one_and_of_chance_agreement_zero():
    assert cohen_kappa([0, 1, 2, 1], [0, 1, 2, 1]) == 1.0
    # a says 0,0,1,1 and b says 0,1,0,1: agreement 1/2, chance 1/2 -> 0
    assert cohen_kappa([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.0)


def test_kappa_against_a_hand_computed_table():
    # 10 items; each says class 0 six times and class 1 four times; they agree on 8.
    a = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
    b = [0, 0, 0, 0, 0, 1, 1, 1, 1, 0]
    observed, expected = 0.8, 0.6 * 0.6 + 0.4 * 0.4
    assert cohen_kappa(a, b) == pytest.approx((observed - expected) / (1 - expected))  # 0.5833


def test_kappa_when_both_say_one_class_only():
    assert cohen_kappa([3, 3, 3], [3, 3, 3]) == 1.0
    assert cohen_kappa([3, 3, 3], [3, 3, 2]) == pytest.approx(0.0)


def test_kappa_needs_two_labellings_of_one_set():
    with pytest.raises(ValueError, match="got 3 and 2"):
        cohen_kappa([0, 1, 2], [0, 1])


def test_the_stop_set_is_fixed_by_the_seed_and_leaves_the_loops_draws_alone():
    first, again, other = stop_set(10_000, 500, seed=3), stop_set(10_000, 500, seed=3), stop_set(10_000, 500, seed=4)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert len(np.unique(first)) == 500 and first.max() < 10_000
    assert len(stop_set(40, 500, seed=0)) == 40  # a small pool: all of it


@pytest.mark.parametrize(
    "agreements, expected",
    [
        ([None, 0.5, 0.995, 0.999, 0.991, 0.999], 4),  # rounds 2, 3, 4 in a row
        ([None, 0.995, 0.999, 0.98, 0.995, 0.996], None),  # broken at round 3, two since
        ([None, 0.99, 0.99, 0.99], 3),  # the threshold itself counts
        ([None], None),
    ],
)
def test_stopping_round_wants_the_window_in_a_row(agreements, expected):
    assert stopping_round(agreements, threshold=0.99, window=3) == expected
