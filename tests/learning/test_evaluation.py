"""Per-round test metrics against scikit-learn on hand-made predictions."""

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from alstudy.learning.evaluation import class_histogram, evaluate


def test_metrics_match_hand_computed_values():
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 1, 2, 0])
    scores = evaluate(y_true, y_pred, n_classes=3)
    assert scores["accuracy"] == pytest.approx(6 / 8)
    # recalls 3/4, 2/2, 1/2
    assert scores["balanced_accuracy"] == pytest.approx((0.75 + 1.0 + 0.5) / 3)
    # F1 per class: 2PR/(P+R) with class 0: P=3/4, R=3/4; class 1: P=2/3, R=1; class 2: P=1, R=1/2
    expected = [0.75, 0.8, 2 / 3]
    assert scores["f1_per_class"] == pytest.approx(expected)
    assert scores["f1_macro"] == pytest.approx(np.mean(expected))


def test_metrics_agree_with_scikit_learn_on_random_predictions():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 10, size=500)
    y_pred = np.where(rng.random(500) < 0.6, y_true, rng.integers(0, 10, size=500))
    scores = evaluate(y_true, y_pred, n_classes=10)
    assert scores["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert scores["f1_macro"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert scores["f1_per_class"] == pytest.approx(f1_score(y_true, y_pred, average=None).tolist())


def test_a_class_never_predicted_scores_zero_f1_and_an_absent_class_is_left_out_of_balanced_accuracy():
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 0, 0, 0])
    scores = evaluate(y_true, y_pred, n_classes=3)  # class 2 has no test images
    assert scores["f1_per_class"][1] == 0.0 and scores["f1_per_class"][2] == 0.0
    assert scores["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred)) == 0.5
    assert class_histogram(np.array([2, 2, 0]), 3) == [1, 0, 2]
