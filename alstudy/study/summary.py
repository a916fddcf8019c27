"""Summary numbers for learning curves: final scores with confidence intervals, AUBC,
labels to reach a target, and the labels random sampling needs to match a strategy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from alstudy.learning.stopping import stopping_round

METRICS = ("accuracy", "balanced_accuracy", "f1_macro")


@dataclass(frozen=True)
class Curves:
    """One strategy's curves on one dataset: a row per seed, a column per round."""

    seeds: list[int]
    n_labeled: np.ndarray  # (rounds,)
    accuracy: np.ndarray  # (seeds, rounds)
    balanced_accuracy: np.ndarray  # (seeds, rounds)
    f1_macro: np.ndarray  # (seeds, rounds)
    f1_per_class: np.ndarray  # (seeds, rounds, classes)
    # Summed class histogram of the images each seed queried after the initial set.
    queried_classes: np.ndarray  # (seeds, classes)
    # Agreement of each round's model with the previous round's on the stop set; NaN where there is none.
    agreement: np.ndarray | None = None  # (seeds, rounds)
    # Labelled images per class after each round, the initial set included.
    labelled_classes: np.ndarray | None = None  # (seeds, rounds, classes)

    @classmethod
    def from_runs(cls, runs: dict[int, list[dict]]) -> "Curves":
        """From each seed's rounds.json history; every seed must share the same label counts."""
        histories = list(runs.values())
        n_labeled = np.array([r["n_labeled"] for r in histories[0]])
        for history in histories[1:]:
            if not np.array_equal(n_labeled, [r["n_labeled"] for r in history]):
                raise ValueError("seeds of one strategy have different label counts per round")

        def per_round(key: str) -> np.ndarray:
            return np.array([[r[key] for r in h] for h in histories], dtype=np.float64)

        return cls(
            seeds=list(runs),
            n_labeled=n_labeled,
            accuracy=per_round("accuracy"),
            balanced_accuracy=per_round("balanced_accuracy"),
            f1_macro=per_round("f1_macro"),
            f1_per_class=per_round("f1_per_class"),
            queried_classes=np.array([np.sum([r["query_class_counts"] for r in h[1:]], axis=0) for h in histories]),
            agreement=np.array(
                [[np.nan if r.get("agreement") is None else r["agreement"] for r in h] for h in histories]
            ),
            labelled_classes=np.array([np.cumsum([r["query_class_counts"] for r in h], axis=0) for h in histories]),
        )

    def metric(self, name: str) -> np.ndarray:
        return getattr(self, name)


def aubc(n_labeled: np.ndarray, scores: np.ndarray) -> float:
    """Area under the budget curve (trapezoids), normalised by the budget span: the mean score in [0, 1]."""
    if len(n_labeled) < 2:
        return float(scores[0])
    span = n_labeled[-1] - n_labeled[0]
    return float(np.trapezoid(scores, n_labeled) / span)


def aubc_per_seed(curves: Curves, metric: str) -> np.ndarray:
    """Each seed's AUBC on one metric, in the order of `curves.seeds`: what curve-level comparisons pair."""
    return np.array([aubc(curves.n_labeled, row) for row in curves.metric(metric)])


def labels_to_reach(n_labeled: np.ndarray, scores: np.ndarray, target: float) -> int | None:
    """The first label count whose score reaches `target`, or None if the curve never does."""
    reached = np.flatnonzero(scores >= target)
    return int(n_labeled[reached[0]]) if reached.size else None


def labels_needed(n_labeled: np.ndarray, scores: np.ndarray, target: float) -> float | None:
    """Labels at which a curve first reaches `target`, interpolated linearly between the two rounds
    around the crossing; None when it never gets there within its budget."""
    reached = np.flatnonzero(scores >= target)
    if not reached.size:
        return None
    k = int(reached[0])
    if k == 0:
        return float(n_labeled[0])
    x0, x1, y0, y1 = n_labeled[k - 1], n_labeled[k], scores[k - 1], scores[k]
    return float(x0 + (target - y0) * (x1 - x0) / (y1 - y0))


def t_half_width(values: np.ndarray, confidence: float = 0.95) -> np.ndarray:
    """Half-width of the t confidence interval of the mean over axis 0 (the seeds); needs 2 or more."""
    return stats.sem(values, axis=0) * stats.t.ppf(0.5 + confidence / 2, len(values) - 1)


def mean_ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float | None]:
    """Mean and the half-width of its t confidence interval over seeds (None with one seed)."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, None
    return mean, float(t_half_width(values, confidence))


def labels_saved(random: Curves, strategy: Curves) -> dict:
    """How many labels random sampling needs to match the strategy's final mean accuracy.

    `random_needs` is interpolated on random's mean curve; None means more than random's budget.
    `ratio` = random_needs / the strategy's budget: above 1, the strategy saves labels.
    """
    target = float(strategy.accuracy[:, -1].mean())
    needs = labels_needed(random.n_labeled, random.accuracy.mean(axis=0), target)
    return {"random_needs": needs, "ratio": None if needs is None else needs / float(strategy.n_labeled[-1])}


def where_stopped(c: Curves, threshold: float, window: int) -> dict:
    """Where the stopping criterion would have stopped each seed's run: how many runs it stopped, and
    over those runs the mean labels at the stop, the mean accuracy there and the same runs' final accuracy."""
    if c.agreement is None or np.all(np.isnan(c.agreement)):
        return {}
    stops = [
        stopping_round([None if np.isnan(k) else float(k) for k in seed], threshold, window) for seed in c.agreement
    ]
    stopped = [(seed, round_) for seed, round_ in enumerate(stops) if round_ is not None]
    row: dict = {"stop_runs": len(stopped)}
    if stopped:
        row.update(
            stop_n_labeled=float(np.mean([c.n_labeled[r] for _, r in stopped])),
            stop_accuracy=float(np.mean([c.accuracy[s, r] for s, r in stopped])),
            stop_final_accuracy=float(np.mean([c.accuracy[s, -1] for s, _ in stopped])),
        )
    return row


def summarise(
    curves: dict[str, Curves],
    target_fraction: float,
    baseline: str = "random",
    stopping: tuple[float, int] | None = None,
) -> dict[str, dict]:
    """Per strategy: final scores (mean, std and 95% CI over seeds), AUBC, labels to reach
    `target_fraction` of the best final mean accuracy, labels random needs to match it, and with
    `stopping` (threshold, window) where the stopping criterion would have stopped its runs."""
    best_final = max(float(c.accuracy[:, -1].mean()) for c in curves.values())
    target = target_fraction * best_final
    summary = {}
    for name, c in curves.items():
        row: dict = {}
        for metric in METRICS:
            values = c.metric(metric)
            mean, half = mean_ci(values[:, -1])
            row[f"final_{metric}"] = mean
            row[f"final_{metric}_std"] = float(values[:, -1].std())
            row[f"final_{metric}_ci95"] = half
            row[f"aubc_{metric}"] = aubc(c.n_labeled, values.mean(axis=0))
        row.update(
            {
                "labels_to_target_accuracy": labels_to_reach(c.n_labeled, c.accuracy.mean(axis=0), target),
                "target_accuracy": target,
                "n_seeds": len(c.seeds),
                "n_labeled": int(c.n_labeled[-1]),
            }
        )
        if baseline in curves and name != baseline:
            saved = labels_saved(curves[baseline], c)
            row["labels_random_needs"] = saved["random_needs"]
            row["labels_saved_ratio"] = saved["ratio"]
        if stopping is not None:
            row.update(where_stopped(c, *stopping))
        summary[name] = row
    return summary
