"""Paired statistics of one dataset's strategies for the plot stage: per-round differences to the baseline,
penalty matrices (figures and numbers), and each seed's AUBC, which the verdicts stage compares across
the whole study (alstudy/study/verdicts.py)."""

from __future__ import annotations

from pathlib import Path

from alstudy.params import StudyParams
from alstudy.study import plotting, statistics
from alstudy.study.summary import Curves, aubc_per_seed


def paired_statistics(curves: dict[str, Curves], out: Path, dataset: str, study: StudyParams) -> dict:
    """Per-round differences to the baseline and the penalty matrices, as figures and as statistics.json,
    and each seed's AUBC for the curve-level verdicts.

    With fewer than two seeds no test is possible; the file says so and no figure is drawn."""
    names, baseline = list(curves), study.baseline
    n_rounds = len(next(iter(curves.values())).n_labeled) - 1
    result: dict = {
        "alpha": study.alpha,
        "baseline": baseline,
        "strategies": names,
        "query_rounds": n_rounds,
        "seeds": next(iter(curves.values())).seeds,
        "aubc": {m: {n: aubc_per_seed(c, m).tolist() for n, c in curves.items()} for m in study.metrics},
    }
    if not statistics.enough_seeds(curves):
        result["note"] = (
            f"{len(result['seeds'])} seed: no statistical test is possible; "
            f"set at least {statistics.MIN_SEEDS} seeds in al.seeds"
        )
        return result
    for metric in study.metrics:
        comparisons = statistics.compare_all(curves, metric)
        matrix = statistics.penalty_matrix(comparisons, names, study.alpha)
        plotting.penalty_heatmap(matrix, names, n_rounds, metric, dataset, out / f"penalty_{metric}.png", study.alpha)
        section = {
            "penalty_matrix": matrix.tolist(),
            "pairs": {f"{a} - {b}": c.to_dict() for (a, b), c in comparisons.items()},
        }
        if baseline in curves:
            versus = {n: comparisons[(n, baseline)] for n in names if n != baseline}
            plotting.difference_to_baseline(versus, metric, dataset, out / f"difference_{metric}.png", baseline)
            section[f"versus_{baseline}"] = {
                n: {
                    "wins": d.wins(study.alpha),
                    "losses": d.losses(study.alpha),
                    "final_mean": d.mean[-1],
                    "final_ci": [d.ci_low[-1], d.ci_high[-1]],
                    "final_p_value": d.p_value[-1],
                }
                for n, d in versus.items()
            }
        result[metric] = section
    return result


def add_round_counts(summary: dict, stats: dict, study: StudyParams) -> None:
    """Each strategy's rounds better and worse than the baseline, per metric, into its summary row."""
    for name, row in summary.items():
        for metric in study.metrics:
            versus = stats.get(metric, {}).get(f"versus_{study.baseline}", {}).get(name)
            if versus:
                row[f"rounds_better_than_{study.baseline}_{metric}"] = versus["wins"]
                row[f"rounds_worse_than_{study.baseline}_{metric}"] = versus["losses"]
