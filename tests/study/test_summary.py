"""Summary numbers against hand-computed values."""

from dataclasses import replace

import numpy as np
import pytest

from alstudy.study.summary import (
    Curves,
    aubc,
    aubc_per_seed,
    labels_needed,
    labels_saved,
    labels_to_reach,
    mean_ci,
    summarise,
    where_stopped,
)
from helpers.fakes import curves


def test_aubc_is_the_trapezoid_mean_over_the_whole_budget():
    # trapezoids: (0.5+0.6)/2*100 + (0.6+0.8)/2*100 + (0.8+0.9)/2*100 = 55 + 70 + 85 = 210, over 300
    assert aubc(np.array([100, 200, 300, 400]), np.array([0.5, 0.6, 0.8, 0.9])) == pytest.approx(0.7)
    # the last round counts: dropping it would give (55 + 70) / 200 = 0.625
    assert aubc(np.array([100, 200, 300]), np.array([0.5, 0.6, 0.8])) == pytest.approx(0.625)
    assert aubc(np.array([100]), np.array([0.4])) == 0.4


def test_aubc_per_seed_is_one_area_per_seed_in_seed_order():
    c = curves([[0.5, 0.6, 0.8, 0.9], [0.5, 0.6, 0.8, 0.6]], f1=[[0.1, 0.1, 0.1, 0.1], [0.2, 0.2, 0.2, 0.2]])
    # second seed: (55 + 70 + 70) / 300 = 0.65
    assert aubc_per_seed(c, "accuracy").tolist() == pytest.approx([0.7, 0.65])
    assert aubc_per_seed(c, "f1_macro").tolist() == pytest.approx([0.1, 0.2])
    # the mean of the per-seed areas is the area of the mean curve (what summarise reports)
    assert aubc_per_seed(c, "accuracy").mean() == pytest.approx(aubc(c.n_labeled, c.accuracy.mean(axis=0)))


def test_labels_to_reach_is_the_first_round_at_or_above_the_target():
    n = np.array([100, 200, 300, 400])
    assert labels_to_reach(n, np.array([0.5, 0.7, 0.65, 0.9]), 0.7) == 200
    assert labels_to_reach(n, np.array([0.5, 0.7, 0.65, 0.9]), 0.95) is None


def test_labels_needed_interpolates_between_rounds():
    n = np.array([100, 200, 300, 400])
    scores = np.array([0.5, 0.6, 0.8, 0.9])
    assert labels_needed(n, scores, 0.7) == pytest.approx(250)  # halfway from 0.6 to 0.8
    assert labels_needed(n, scores, 0.85) == pytest.approx(350)
    assert labels_needed(n, scores, 0.9) == pytest.approx(400)
    assert labels_needed(n, scores, 0.4) == 100  # already there at the start
    assert labels_needed(n, scores, 0.91) is None  # more than the budget


def test_labels_saved_against_random():
    random = curves([[0.5, 0.6, 0.8, 0.9], [0.5, 0.6, 0.8, 0.9]])
    better = curves([[0.5, 0.7, 0.8, 0.85], [0.5, 0.7, 0.8, 0.85]])
    saved = labels_saved(random, better)
    assert saved["random_needs"] == pytest.approx(350) and saved["ratio"] == pytest.approx(350 / 400)
    best = curves([[0.5, 0.8, 0.9, 0.95], [0.5, 0.8, 0.9, 0.93]])
    out = labels_saved(random, best)
    assert out["random_needs"] is None and out["ratio"] is None  # more than random's budget


def test_mean_ci_is_the_t_interval_and_undefined_for_one_seed():
    mean, half = mean_ci(np.array([0.8, 0.82, 0.84]))
    # sd = 0.02, sem = 0.02 / sqrt(3), t(0.975, 2) = 4.302653
    assert mean == pytest.approx(0.82) and half == pytest.approx(4.302653 * 0.02 / np.sqrt(3), rel=1e-5)
    assert mean_ci(np.array([0.7])) == (0.7, None)


def test_summarise_reports_final_scores_aubc_and_labels_saved():
    grid = {
        "random": curves([[0.5, 0.6, 0.8, 0.9], [0.5, 0.6, 0.8, 0.9]]),
        "margin": curves([[0.5, 0.7, 0.8, 0.84], [0.5, 0.7, 0.8, 0.86]]),
    }
    summary = summarise(grid, target_fraction=0.9)
    m = summary["margin"]
    assert m["final_accuracy"] == pytest.approx(0.85) and m["final_accuracy_std"] == pytest.approx(0.01)
    assert m["final_balanced_accuracy"] == pytest.approx(0.84)
    assert m["aubc_accuracy"] == pytest.approx((60 + 75 + 82.5) / 300)
    assert m["labels_random_needs"] == pytest.approx(350) and m["labels_saved_ratio"] == pytest.approx(350 / 400)
    # target = 0.9 x best final mean (0.9) = 0.81: random reaches it at 400, margin at 400 (0.85 >= 0.81)
    assert summary["random"]["labels_to_target_accuracy"] == 400 and m["labels_to_target_accuracy"] == 400
    assert "labels_random_needs" not in summary["random"] and m["n_seeds"] == 2


def test_curves_from_runs_keeps_seed_order_and_rejects_mismatched_rounds():
    history = [
        {
            "n_labeled": n,
            "accuracy": a,
            "balanced_accuracy": a,
            "f1_macro": a,
            "f1_per_class": [a, a],
            "query_class_counts": [1, 1],
        }
        for n, a in ((10, 0.5), (20, 0.6))
    ]
    c = Curves.from_runs({3: history, 1: history})
    assert c.seeds == [3, 1] and c.f1_per_class.shape == (2, 2, 2) and c.queried_classes.tolist() == [[1, 1]] * 2
    assert c.labelled_classes.tolist() == [[[1, 1], [2, 2]]] * 2  # the initial set, then with round 1's
    with pytest.raises(ValueError, match="different label counts"):
        Curves.from_runs({0: history, 1: history[:1]})


def test_where_the_stopping_criterion_would_have_stopped_each_run():
    # Seed 0 is stable (>= 0.99) from round 1 on: window 2 stops it at round 2 (300 labels). Seed 1 never.
    c = replace(
        curves([[0.5, 0.6, 0.7, 0.8], [0.4, 0.5, 0.6, 0.7]]),
        agreement=np.array([[np.nan, 0.995, 0.999, 1.0], [np.nan, 0.9, 0.999, 0.95]]),
    )
    assert where_stopped(c, threshold=0.99, window=2) == {
        "stop_runs": 1,
        "stop_n_labeled": 300.0,
        "stop_accuracy": 0.7,
        "stop_final_accuracy": 0.8,
    }
    assert where_stopped(c, threshold=0.9995, window=2) == {"stop_runs": 0}
    row = summarise({"random": c}, 0.9, stopping=(0.99, 2))["random"]
    assert row["stop_runs"] == 1 and row["stop_n_labeled"] == 300.0
    assert "stop_runs" not in summarise({"random": curves([[0.5, 0.6, 0.7, 0.8]])}, 0.9, stopping=(0.99, 2))["random"]


def test_the_rare_classes_figure_shows_the_rarest_classes(tmp_path):
    from alstudy.study import plotting

    history = [
        {
            "n_labeled": n,
            "accuracy": 0.5,
            "balanced_accuracy": 0.5,
            "f1_macro": 0.5,
            "f1_per_class": [0.5, 0.4, 0.3],
            "query_class_counts": q,
        }
        for n, q in ((3, [1, 1, 1]), (6, [1, 0, 2]))
    ]
    curves = {"random": Curves.from_runs({0: history}), "margin": Curves.from_runs({0: history})}
    path = tmp_path / "rare_classes.png"
    plotting.rare_classes(curves, [100, 5, 20], ["a", "b", "c"], "toy", path, k=2)
    assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 10_000
