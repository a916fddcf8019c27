"""Summary numbers for learning curves: final scores, AUBC, labels to reach a target."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Curves:
    """One strategy's curves on one dataset: a row per seed, a column per round."""
    n_labeled: np.ndarray   # (rounds,)
    accuracy: np.ndarray    # (seeds, rounds)
    f1_macro: np.ndarray    # (seeds, rounds)
    # Summed class histogram of the images each seed queried after the initial set.
    queried_classes: np.ndarray  # (seeds, classes)

    @classmethod
    def from_runs(cls, runs: list[list[dict]]) -> "Curves":
        """From each seed's rounds.json history; every seed must share the same label counts."""
        n_labeled = np.array([r["n_labeled"] for r in runs[0]])
        for history in runs[1:]:
            if not np.array_equal(n_labeled, [r["n_labeled"] for r in history]):
                raise ValueError("seeds of one strategy have different label counts per round")
        return cls(
            n_labeled=n_labeled,
            accuracy=np.array([[r["accuracy"] for r in h] for h in runs]),
            f1_macro=np.array([[r["f1_macro"] for r in h] for h in runs]),
            queried_classes=np.array([np.sum([r["query_class_counts"] for r in h[1:]], axis=0) for h in runs]),
        )


def aubc(n_labeled: np.ndarray, scores: np.ndarray) -> float:
    """Area under the budget curve, normalised by the budget span: the mean score in [0, 1]."""
    if len(n_labeled) < 2:
        return float(scores[0])
    span = n_labeled[-1] - n_labeled[0]
    return float(np.trapezoid(scores, n_labeled) / span)


def labels_to_reach(n_labeled: np.ndarray, scores: np.ndarray, target: float) -> int | None:
    """The first label count whose score reaches `target`, or None if the curve never does."""
    reached = np.flatnonzero(scores >= target)
    return int(n_labeled[reached[0]]) if reached.size else None


def summarise(curves: dict[str, Curves], target_fraction: float) -> dict[str, dict]:
    """Per strategy: final accuracy/F1 (mean, std over seeds), AUBC, and labels to reach
    `target_fraction` of the best final mean accuracy among the strategies."""
    best_final = max(float(c.accuracy[:, -1].mean()) for c in curves.values())
    target = target_fraction * best_final
    summary = {}
    for name, c in curves.items():
        mean_acc, mean_f1 = c.accuracy.mean(axis=0), c.f1_macro.mean(axis=0)
        summary[name] = {
            "final_accuracy": float(mean_acc[-1]),
            "final_accuracy_std": float(c.accuracy[:, -1].std()),
            "final_f1_macro": float(mean_f1[-1]),
            "final_f1_macro_std": float(c.f1_macro[:, -1].std()),
            "aubc_accuracy": aubc(c.n_labeled, mean_acc),
            "aubc_f1_macro": aubc(c.n_labeled, mean_f1),
            "labels_to_target_accuracy": labels_to_reach(c.n_labeled, mean_acc, target),
            "target_accuracy": target,
            "n_seeds": int(c.accuracy.shape[0]),
            "n_labeled": int(c.n_labeled[-1]),
        }
    return summary
