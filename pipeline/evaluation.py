"""Test-set metrics for one round."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from pipeline.params import N_CLASSES


def evaluate(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = N_CLASSES) -> dict:
    """Accuracy, macro-F1 and per-class F1 from integer labels."""
    labels = np.arange(n_classes)
    per_class = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1_macro": float(per_class.mean()),
        "f1_per_class": [float(v) for v in per_class],
    }


def class_histogram(labels: np.ndarray, n_classes: int = N_CLASSES) -> list[int]:
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes).tolist()
