"""Curve-level verdicts, Holm's correction and the seeds-needed estimate, against hand-computed values,
scipy and a Monte-Carlo simulation."""

import json

import numpy as np
import pytest
from mlflow.utils.validation import _validate_metric_name
from scipy import stats

from alstudy.study.verdicts import (
    Family,
    dataset_metrics,
    equivalence_power,
    from_metrics,
    holm,
    mlflow_metrics,
    pairs,
    power,
    seeds_needed,
    study_verdicts,
)

N = np.arange(100, 700, 100)  # round 0 + 5 query rounds


def trapezoid_mean(row):
    """AUBC by hand: the trapezoid area over the budget span."""
    return sum((row[i] + row[i + 1]) / 2 * (N[i + 1] - N[i]) for i in range(len(N) - 1)) / (N[-1] - N[0])


def study(curves_by_dataset, alpha=0.05, metrics=("accuracy",)):
    """aubcs as the verdicts stage reads them, from hand-made (seeds, rounds) accuracy arrays."""
    aubcs = {
        ds: {m: {s: [trapezoid_mean(r) for r in c] for s, c in by_strategy.items()} for m in metrics}
        for ds, by_strategy in curves_by_dataset.items()
    }
    names = list(next(iter(curves_by_dataset.values())))
    return study_verdicts(aubcs, pairs(names, "random"), alpha)


# --------------------------------------------------------------------------- Holm


def test_holm_on_a_known_list_gives_the_hand_computed_adjusted_p_values():
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> max(0.06, 0.04) = 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # 0.001 x 3 = 0.003, 0.2 x 2 = 0.4, 0.9 x 1 = 0.9
    assert holm([0.2, 0.9, 0.001]) == pytest.approx([0.4, 0.9, 0.003])
    assert holm([0.5, 0.6]) == [1.0, 1.0]  # 0.5 x 2 = 1.0, capped; 0.6 < 1.0 keeps it monotone
    assert holm([0.4, 0.7, 0.9]) == [1.0, 1.0, 1.0]  # 1.2 capped at 1
    assert holm([0.02, 0.02]) == pytest.approx([0.04, 0.04])
    assert holm([0.03]) == [0.03] and holm([]) == []


def test_holm_is_monotone_capped_and_rejects_what_the_step_down_procedure_rejects():
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = rng.uniform(0, 0.2, size=rng.integers(1, 12)) ** 2
        adjusted = np.array(holm(p.tolist()))
        order = np.argsort(p)
        assert np.all(np.diff(adjusted[order]) >= 0) and np.all(adjusted <= 1) and np.all(adjusted >= p)
        for alpha in (0.01, 0.05, 0.1):
            # Holm 1979: walk up the sorted p-values, reject while p_(k) <= alpha / (m - k + 1)
            rejected = set()
            for k, i in enumerate(order):
                if p[i] > alpha / (len(p) - k):
                    break
                rejected.add(int(i))
            assert {int(i) for i in np.flatnonzero(adjusted <= alpha)} == rejected


# --------------------------------------------------------------------------- curve-level tests


def test_identical_curves_are_never_significant():
    base = np.random.default_rng(1).uniform(0.6, 0.9, size=(3, 6))
    [v] = study({"d": {"random": base, "margin": base.copy()}})
    assert v.differences == [0.0] * 3 and v.p_value is None and v.p_holm == 1.0
    assert v.p_equivalence == 0.0 and v.decision == "equivalent" and v.seeds_needed is None and v.replication == 1.0


def test_a_constant_gap_with_small_noise_is_significant_after_correction():
    rng = np.random.default_rng(2)
    base = rng.uniform(0.6, 0.8, size=(5, 6))
    noise = lambda: rng.normal(0, 0.002, size=(5, 6))  # noqa: E731
    grid = {"random": base, "margin": base + 0.03 + noise(), "bald": base + noise()}
    verdicts = study({"one": grid, "two": {k: v + 0.01 for k, v in grid.items()}}, metrics=("accuracy", "f1_macro"))
    assert len(verdicts) == 2 * 2 * 3 and all(v.family.size == 12 for v in verdicts)  # datasets x metrics x pairs
    margin = [v for v in verdicts if (v.a, v.b) == ("margin", "random")]
    assert len(margin) == 4
    for v in margin:
        assert v.p_holm < 0.05 and v.decision == "better" and v.ci_low > 0 and v.seeds_needed is None
        assert v.mean == pytest.approx(0.03, abs=0.003)
    behind = [v for v in verdicts if (v.a, v.b) == ("margin", "bald")]
    assert all(v.decision == "better" for v in behind)


def test_p_values_intervals_and_holm_match_scipy_on_hand_computed_aubc():
    rng = np.random.default_rng(3)
    grid = {
        "random": rng.uniform(0.5, 0.9, size=(4, 6)),
        "margin": rng.uniform(0.5, 0.9, size=(4, 6)),
        "badge": rng.uniform(0.5, 0.9, size=(4, 6)),
    }
    verdicts = study({"d": grid})
    assert [(v.a, v.b) for v in verdicts] == [("margin", "random"), ("badge", "random"), ("margin", "badge")]
    raw = []
    for v in verdicts:
        a, b = (np.array([trapezoid_mean(r) for r in grid[name]]) for name in (v.a, v.b))
        assert v.differences == pytest.approx((a - b).tolist())
        assert v.p_value == pytest.approx(stats.ttest_rel(a, b).pvalue)
        low, high = stats.t.interval(0.95, 3, loc=(a - b).mean(), scale=stats.sem(a - b))
        assert (v.ci_low, v.ci_high) == pytest.approx((low, high)) and v.sd == pytest.approx((a - b).std(ddof=1))
        raw.append(stats.ttest_rel(a, b).pvalue)
    # TOST by hand with scipy: the two one-sided one-sample tests against -margin and +margin.
    equivalence = []
    for v in verdicts:
        d = np.asarray(v.differences)
        above = stats.ttest_1samp(d, -v.family.margin, alternative="greater").pvalue
        below = stats.ttest_1samp(d, v.family.margin, alternative="less").pvalue
        assert v.p_equivalence == pytest.approx(max(above, below))
        equivalence.append(max(above, below))
    # Shaffer's step-down by hand over the six: each step multiplies by the comparisons that still hold a
    # hypothesis not rejected before it (at most one true per comparison), kept monotone.
    p_all, group = raw + equivalence, [0, 1, 2, 0, 1, 2]
    order, left, running, expected = np.argsort(p_all, kind="stable"), [2, 2, 2], 0.0, {}
    for i in order:
        running = max(running, min(1.0, sum(1 for n in left if n) * p_all[i]))
        expected[i] = running
        left[group[i]] -= 1
    assert [v.p_holm for v in verdicts] == pytest.approx([expected[i] for i in range(3)])
    assert [v.p_equivalence_holm for v in verdicts] == pytest.approx([expected[i] for i in range(3, 6)])


def test_shaffers_groups_never_adjust_more_than_plain_holm_and_equal_it_for_singletons():
    rng = np.random.default_rng(8)
    for _ in range(100):
        p = (rng.uniform(0, 0.3, size=8) ** 2).tolist()
        groups = [0, 1, 2, 3] * 2
        assert np.all(np.array(holm(p, groups)) <= np.array(holm(p)) + 1e-12)
        assert holm(p, list(range(8))) == pytest.approx(holm(p))


def test_a_gap_inside_the_noise_is_undecided_and_names_the_seeds_needed():
    rng = np.random.default_rng(4)
    base = rng.uniform(0.6, 0.8, size=(3, 6))
    seed_effect = rng.normal(0, 0.02, size=(3, 1))  # a seed's whole curve moves: AUBC does not average it out
    [v] = study({"d": {"random": base, "margin": base + 0.01 + seed_effect}})
    assert v.decision == "undecided" and v.p_holm >= 0.05 and v.ci_low < 0 < v.ci_high
    # The observed mean (-0.24 points) is inside the 0.5-point margin: equivalence is what more seeds would
    # likely show, and TOST gets there before the t-test would find the difference.
    assert abs(v.mean) < v.family.margin and v.likely == "equivalent"
    d, margin_d = v.mean / v.sd, v.family.margin / v.sd
    assert (
        equivalence_power(v.seeds_needed, d, margin_d, 0.05)
        >= 0.8
        > equivalence_power(v.seeds_needed - 1, d, margin_d, 0.05)
    )
    assert 3 < v.seeds_needed < seeds_needed(d, 0.05)


def test_a_gap_beyond_the_margin_needs_the_seeds_of_the_t_test():
    rng = np.random.default_rng(4)
    base = rng.uniform(0.6, 0.8, size=(3, 6))
    [v] = study({"d": {"random": base, "margin": base + 0.02 + rng.normal(0, 0.02, size=(3, 1))}})
    assert v.decision == "undecided" and abs(v.mean) > v.family.margin and v.likely == "better"
    assert v.seeds_needed == seeds_needed(v.mean / v.sd, 0.05 / 1)


@pytest.mark.parametrize(("n", "d", "margin_d"), [(10, 0.0, 1.0), (20, 0.2, 0.8), (6, -0.1, 1.5)])
def test_equivalence_power_matches_a_monte_carlo_simulation(n, d, margin_d):
    """Differences with mean d and sd 1, many times; count how often both one-sided tests reject."""
    rng = np.random.default_rng(9)
    draws = rng.normal(d, 1.0, size=(40_000, n))
    mean, se = draws.mean(axis=1), draws.std(axis=1, ddof=1) / np.sqrt(n)
    p = np.maximum(stats.t.sf((mean + margin_d) / se, n - 1), stats.t.cdf((mean - margin_d) / se, n - 1))
    simulated = np.mean(p < 0.05)
    # P1 + P2 - 1 is a lower bound, close where the power matters (it is exact when one side never fails).
    assert equivalence_power(n, d, margin_d, 0.05) == pytest.approx(simulated, abs=0.02)


def test_the_seeds_needed_use_the_bonferroni_level_of_the_whole_family():
    rng = np.random.default_rng(5)
    base = rng.uniform(0.6, 0.8, size=(3, 6))
    grid = {"random": base, **{name: base + 0.01 + rng.normal(0, 0.02, size=(3, 1)) for name in "abc"}}
    verdicts = study({"d": grid})
    assert verdicts[0].family.size == 6 and verdicts[0].family.power_alpha == pytest.approx(0.05 / 6)
    for v in verdicts:
        if v.decision == "undecided" and abs(v.mean) >= v.family.margin:  # no equivalence to reach
            assert v.seeds_needed == seeds_needed(abs(v.mean) / v.sd, 0.05 / 6)


def test_datasets_with_one_seed_are_left_out_of_the_family():
    two = np.array([[0.5, 0.6, 0.7, 0.7, 0.8, 0.8], [0.5, 0.62, 0.7, 0.72, 0.8, 0.81]])
    verdicts = study(
        {"one": {"random": two[:1], "margin": two[:1] + 0.01}, "two": {"random": two, "margin": two + 0.01}}
    )
    assert {v.dataset for v in verdicts} == {"two"} and verdicts[0].family.size == 1


def test_pairs_put_the_baseline_first_and_each_other_pair_once():
    assert pairs(["random", "margin", "bald", "badge"], "random") == [
        ("margin", "random"),
        ("bald", "random"),
        ("badge", "random"),
        ("margin", "bald"),
        ("margin", "badge"),
        ("bald", "badge"),
    ]
    assert pairs(["margin", "bald"], "random") == [("margin", "bald")]  # no baseline in the grid


# --------------------------------------------------------------------------- power


def test_power_matches_the_published_table_for_the_paired_t_test():
    # Cohen (1988); G*Power: paired two-sided t-test, dz = 1, alpha = 0.05, power 0.8 -> n = 10 (power 0.803)
    assert power(10, 1.0, 0.05) == pytest.approx(0.803, abs=0.001)
    assert seeds_needed(1.0, 0.05) == 10
    assert seeds_needed(-1.0, 0.05) == 10
    assert seeds_needed(0.5, 0.05) == 34  # dz = 0.5: n = 34 (G*Power)


@pytest.mark.parametrize(("n", "d", "alpha"), [(10, 1.0, 0.05), (9, 1.0, 0.05), (5, 4.67, 0.05 / 60), (6, 2.0, 0.01)])
def test_power_matches_a_monte_carlo_simulation(n, d, alpha):
    """Draw n paired differences with mean d and sd 1, many times; count how often ttest_rel rejects."""
    rng = np.random.default_rng(6)
    differences = rng.normal(d, 1.0, size=(40_000, n))
    t = differences.mean(axis=1) / (differences.std(axis=1, ddof=1) / np.sqrt(n))
    simulated = np.mean(2 * stats.t.sf(np.abs(t), n - 1) < alpha)
    assert power(n, d, alpha) == pytest.approx(simulated, abs=0.01)


def test_seeds_needed_caps_and_handles_no_spread_or_no_difference():
    assert seeds_needed(0.05, 0.05) is None  # more than 100
    assert seeds_needed(0.05, 0.05, max_seeds=5000) == 3142
    assert seeds_needed(np.inf, 0.05) == 2  # a gap without spread: p = 0 already
    assert seeds_needed(0.0, 0.05) is None
    # The cap is inclusive: an effect that needs exactly max_seeds seeds gets that number, one fewer gets None.
    needed = seeds_needed(0.5, 0.05, max_seeds=1000)
    assert seeds_needed(0.5, 0.05, max_seeds=needed) == needed
    assert seeds_needed(0.5, 0.05, max_seeds=needed - 1) is None
    assert not np.isnan(power(8, 4.67, 0.05 / 60))  # nct.cdf's far lower tail is nan here


# --------------------------------------------------------------------------- files and MLflow


def test_metrics_files_round_trip_and_mlflow_names_are_valid():
    rng = np.random.default_rng(7)
    base = rng.uniform(0.6, 0.8, size=(3, 6))
    grid = {"random": base, "class_balanced": base + 0.01 + rng.normal(0, 0.02, size=(3, 1)), "margin": base}
    verdicts = study({"d": grid}, metrics=("accuracy", "f1_macro"))
    family = verdicts[0].family
    data = json.loads(json.dumps(dataset_metrics(verdicts, "d", family)))
    assert data["family"] == {
        "alpha": 0.05,
        "comparisons": 6,
        "hypotheses": 12,
        "equivalence_margin": 0.005,
        "power": 0.8,
        "power_alpha": 0.05 / 6,
        "max_seeds": 100,
        "looks": [],
        "planned_seeds": 0,
    }
    assert data["margin"]["vs_random"]["accuracy"]["verdict"] == "equivalent"
    assert set(data["class_balanced"]["vs_random"]) == {"accuracy", "f1_macro"}
    assert data["margin"]["vs_random"]["accuracy"]["p"] is None  # identical: no test
    back = from_metrics(data, "d")
    key = lambda v: (v.a, v.b, v.metric)  # noqa: E731
    assert sorted(back, key=key) == sorted(verdicts, key=key)
    names = mlflow_metrics(verdicts)
    assert names["class_balanced.aubc_accuracy_vs_random"] == verdicts[0].mean
    assert "class_balanced.aubc_f1_macro_vs_margin_p_holm" in names
    assert np.isnan(names["margin.aubc_accuracy_vs_random_p"])  # no test: NaN, so no stale value stays
    assert np.isnan(names["margin.aubc_accuracy_vs_random_seeds_needed"])
    assert names["class_balanced.aubc_accuracy_vs_random_significant"] == 0.0
    assert names["class_balanced.aubc_accuracy_vs_random_seeds_needed"] == verdicts[0].seeds_needed
    assert len(names) == 11 * len(verdicts)
    for name in names:
        _validate_metric_name(name)
    assert isinstance(family, Family)
