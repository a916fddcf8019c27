"""Group-sequential verdicts: the boundaries against published values, the error rate under repeated looks,
and a study of a fixed number of seeds unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from alstudy.study.sequential import Looks, boundaries, final_nominal, nominal_levels, sequential_p
from alstudy.study.verdicts import pairs, power, study_verdicts

FIVE_EQUAL = (0.2, 0.4, 0.6, 0.8, 1.0)


def test_boundaries_are_the_published_lan_demets_obrien_fleming_ones():
    # Two-sided 0.05 (0.025 a side), five equally spaced looks: the values gsDesign and ldbounds print.
    published = [4.877, 3.357, 2.680, 2.290, 2.031]
    assert boundaries(FIVE_EQUAL, 0.05, two_sided=True) == pytest.approx(published, abs=1e-3)
    assert boundaries(FIVE_EQUAL, 0.025, two_sided=False) == pytest.approx(published, abs=1e-3)
    # One look at the end: the fixed-design critical value.
    assert boundaries((1.0,), 0.05, two_sided=True) == pytest.approx([stats.norm.isf(0.025)])


def test_a_single_look_is_the_fixed_design():
    assert sequential_p([0.0123], Looks.fixed(5), two_sided=True) == 0.0123
    assert final_nominal(Looks.fixed(5), 0.01, two_sided=False) == 0.01
    rng = np.random.default_rng(3)
    base = rng.uniform(0.6, 0.8, size=5)
    aubcs = {"d": {"accuracy": {"random": base.tolist(), "margin": (base + rng.normal(0.01, 0.01, 5)).tolist()}}}
    fixed = study_verdicts(aubcs, pairs(["random", "margin"], "random"), 0.05)
    planned_now = study_verdicts(aubcs, pairs(["random", "margin"], "random"), 0.05, sequential=(5, 5))
    assert [v.to_dict()["p_holm"] for v in fixed] == [v.to_dict()["p_holm"] for v in planned_now]


def test_the_sequential_p_is_the_level_at_which_a_look_crosses():
    looks = Looks.every(5, 10, 15)
    assert looks.seeds == (5, 10) and looks.fractions == pytest.approx((1 / 3, 2 / 3))
    for level in (0.001, 0.01, 0.05):
        first, second = nominal_levels(looks.fractions, level, two_sided=True)
        assert sequential_p([first, 0.9], looks, two_sided=True) == pytest.approx(level, rel=1e-3)
        assert sequential_p([0.9, second], looks, two_sided=True) == pytest.approx(level, rel=1e-3)
    # a p well under 0.05 at an early look is not yet a verdict at 0.05
    assert sequential_p([0.01, 0.9], looks, two_sided=True) > 0.05


def simulated_p(differences: np.ndarray, looks: Looks) -> np.ndarray:
    """Studies x looks: the paired t-test's two-sided p on each look's first n seeds."""
    out = []
    for n in looks.seeds:
        x = differences[:, :n]
        t = x.mean(axis=1) / (x.std(axis=1, ddof=1) / np.sqrt(n))
        out.append(2 * stats.t.sf(np.abs(t), n - 1))
    return np.stack(out, axis=1)


def test_looking_after_every_five_seeds_keeps_the_error_rate_that_naive_looks_double():
    """4,000 studies with no true difference, looking after 5, 10 and 15 seeds and stopping at the first
    verdict: rejecting whenever a look's plain p < 0.05 errs about twice as often as 0.05; the sequential
    p keeps it at 0.05 (within three standard errors of the simulation)."""
    looks = Looks.every(5, 15, 15)
    p = simulated_p(np.random.default_rng(1).normal(0, 1, size=(4000, 15)), looks)
    naive = np.mean(p.min(axis=1) < 0.05)
    sequential = np.mean([sequential_p(list(row), looks, two_sided=True) < 0.05 for row in p])
    tolerance = 3 * np.sqrt(0.05 * 0.95 / 4000)
    assert naive > 0.08
    assert sequential < 0.05 + tolerance


def test_a_clear_difference_stops_at_the_first_look_and_a_small_one_waits():
    rng = np.random.default_rng(5)
    base = rng.uniform(0.6, 0.8, size=15)
    clear = base + 0.05 + rng.normal(0, 0.002, 15)  # 25 sd: decided at any look
    small = base + 0.006 + rng.normal(0, 0.002, 15)  # p about 0.001 at 5 seeds
    aubcs = {"d": {"accuracy": {"random": base[:5].tolist(), "clear": clear[:5].tolist(), "small": small[:5].tolist()}}}
    names = ["random", "clear", "small"]
    fixed = {(v.a, v.b): v for v in study_verdicts(aubcs, pairs(names, "random"), 0.05, margin=0.001)}
    looked = {
        (v.a, v.b): v for v in study_verdicts(aubcs, pairs(names, "random"), 0.05, margin=0.001, sequential=(5, 15))
    }
    assert fixed["clear", "random"].decision == looked["clear", "random"].decision == "better"
    assert looked["clear", "random"].family.looks == (5,) and looked["clear", "random"].family.planned == 15
    # a fixed study of 5 seeds calls it; one planning up to 15 waits for more at its first look (O'Brien-Fleming)
    assert fixed["small", "random"].decision == "better" and looked["small", "random"].decision == "undecided"
    assert looked["small", "random"].p_sequential > 0.05 > 0.01 > looked["small", "random"].p_value


def test_the_seeds_needed_of_a_study_in_steps_are_those_of_its_next_look_at_its_boundary():
    """At the first look of three the boundary is far stricter than a fixed design's, so the seeds that
    would decide a comparison there are a later look's, never the seeds the study already has."""
    rng = np.random.default_rng(7)
    base = rng.uniform(0.6, 0.8, size=5)
    names = ["random", "margin"]
    aubcs = {"d": {"accuracy": {"random": base.tolist(), "margin": (base + 0.02 + rng.normal(0, 0.006, 5)).tolist()}}}
    fixed = study_verdicts(aubcs, pairs(names, "random"), 0.001, margin=0.001)[0]
    (looked,) = study_verdicts(aubcs, pairs(names, "random"), 0.001, margin=0.001, sequential=(5, 15))
    assert fixed.decision == looked.decision == "undecided"
    assert fixed.seeds_needed == 6  # a fixed design at that level: 6 seeds
    assert looked.seeds_needed == 10  # the next look's boundary, after 10 seeds (then 15)
    d = looked.mean / looked.sd
    level = nominal_levels(Looks.every(5, looked.seeds_needed, 15).fractions, 0.001, two_sided=True)[-1]
    assert power(looked.seeds_needed, d, level) >= 0.8
    if looked.seeds_needed == 15:
        level_10 = nominal_levels(Looks.every(5, 10, 15).fractions, 0.001, two_sided=True)[-1]
        assert power(10, d, level_10) < 0.8
