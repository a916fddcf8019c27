"""Test-set metrics for one round."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score


def evaluate(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict:
    """Accuracy, balanced accuracy (mean per-class recall), macro-F1 and per-class F1 from integer labels.

    Balanced accuracy averages recall over the classes present in y_true; macro-F1 over all n_classes.
    """
    labels = np.arange(n_classes)
    per_class = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    with warnings.catch_warnings():  # a class predicted but absent from y_true is expected, not news
        warnings.simplefilter("ignore", UserWarning)
        balanced = balanced_accuracy_score(y_true, y_pred)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced),
        "f1_macro": float(per_class.mean()),
        "f1_per_class": [float(v) for v in per_class],
    }


def class_histogram(labels: np.ndarray, n_classes: int) -> list[int]:
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes).tolist()
