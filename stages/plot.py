"""DVC stage `plot@<dataset>`: figures, summary metrics, paired statistics, logged to the dataset's MLflow study run.

Writes plots/<dataset>/ (learning curves for accuracy, balanced accuracy and
macro-F1, per-class F1, queried class mix, paired differences to the baseline,
penalty matrices, wide CSVs), metrics/summary/<dataset>.json and the paired
statistics in metrics/statistics/<dataset>.json: the per-round detail and each
seed's AUBC, which the verdicts stage compares across the whole study.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path

from alstudy.errors import PipelineError
from alstudy.fileio import atomic_path, save_json
from alstudy.params import StudyParams, load_params
from alstudy.paths import METRICS_DIR, PLOTS_DIR, STATISTICS_DIR, prepared_dir, run_dir
from alstudy.runner import run_stage
from alstudy.study import plotting, statistics
from alstudy.study.summary import METRICS, Curves, aubc_per_seed, summarise
from alstudy.tracking import runs as tracking
from alstudy.tracking import study_runs

log = logging.getLogger("plot")


def load_curves(dataset: str, strategies: list[str], seeds: list[int]) -> dict[str, Curves]:
    curves = {}
    for strategy in strategies:
        runs = {}
        for seed in seeds:
            path = run_dir(dataset, strategy, seed) / "rounds.json"
            if not path.exists():
                raise PipelineError(
                    f"{path}: missing; run `dvc repro al` so every dataset x strategy x seed in params.yaml has results"
                )
            runs[seed] = json.loads(path.read_text())
        curves[strategy] = Curves.from_runs(runs)
    return curves


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


def write_wide_csv(path: Path, curves: dict[str, Curves], metric: str) -> None:
    """n_labeled plus one column per strategy (mean over seeds): the shape `dvc plots` overlays."""
    first = next(iter(curves.values()))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["n_labeled", *curves])
        for i, n in enumerate(first.n_labeled):
            writer.writerow([int(n), *(f"{getattr(c, metric)[:, i].mean():.6f}" for c in curves.values())])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True)  # validated against params.yaml's data.datasets
    args = parser.parse_args(argv)
    params = load_params()
    dataset = params.data.check(args.dataset)

    curves = load_curves(dataset, params.al.strategies, params.al.seeds)
    meta = json.loads((prepared_dir(dataset) / "meta.json").read_text())
    out = PLOTS_DIR / dataset
    for metric in METRICS:
        plotting.learning_curves(curves, metric, dataset, out / f"{metric}.png")
        write_wide_csv(out / f"{metric}.csv", curves, metric)
    plotting.queried_classes(
        curves, meta["train_class_counts"], meta["class_names"], dataset, out / "queried_classes.png"
    )
    plotting.per_class_f1(curves, meta["class_names"], dataset, out / "per_class_f1.png")
    plotting.rare_classes(curves, meta["train_class_counts"], meta["class_names"], dataset, out / "rare_classes.png")
    study = params.study
    stats = paired_statistics(curves, out, dataset, study)
    statistics_file = STATISTICS_DIR / f"{dataset}.json"
    save_json(statistics_file, stats)

    # "Labels random needs" is about random sampling itself, whichever strategy is the study's baseline.
    summary = summarise(
        curves, params.plot.target_fraction, stopping=(params.stopping.threshold, params.stopping.window)
    )
    for name, row in summary.items():  # per-round wins and losses against the baseline, for `dvc metrics show`
        for metric in study.metrics:
            versus = stats.get(metric, {}).get(f"versus_{study.baseline}", {}).get(name)
            if versus:
                row[f"rounds_better_than_{study.baseline}_{metric}"] = versus["wins"]
                row[f"rounds_worse_than_{study.baseline}_{metric}"] = versus["losses"]
    summary_file = METRICS_DIR / "summary" / f"{dataset}.json"
    save_json(summary_file, summary)
    figures = sorted(out.glob("*.png"))

    experiment_id = tracking.setup(params.base)
    study_runs.describe_experiment(experiment_id, params)
    study_runs.publish(
        experiment_id,
        dataset,
        params,
        metrics={
            f"{strategy}.{key}": value
            for strategy, values in summary.items()
            for key, value in values.items()
            if isinstance(value, (int, float))
        },
        artifacts=[*((figure, "plots") for figure in figures), (summary_file, None), (statistics_file, None)],
    )

    log.info(
        "%s: MLflow run %s, its cells' curves at %s",
        dataset,
        study_runs.parent_name(dataset),
        tracking.chart_view_url(experiment_id, tracking.tracking_uri(params.base)),
    )
    for strategy, s in summary.items():
        log.info(
            "%s %s: final accuracy %.4f, F1 %.4f, AUBC %.4f, labels to %.3f: %s",
            dataset,
            strategy,
            s["final_accuracy"],
            s["final_f1_macro"],
            s["aubc_accuracy"],
            s["target_accuracy"],
            s["labels_to_target_accuracy"],
        )


if __name__ == "__main__":
    run_stage(main)
