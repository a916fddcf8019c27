"""DVC stages `plot@<dataset>` and `plot_recipe@<dataset>-<recipe>`: figures, summary metrics, paired
statistics, logged to the MLflow study run of the dataset (under the recipe).

Writes plots/<unit>/ (learning curves for accuracy, balanced accuracy and
macro-F1, per-class F1, queried class mix, paired differences to the baseline,
penalty matrices, wide CSVs), metrics/summary/<unit>.json and the paired
statistics in metrics/statistics/<unit>.json: the per-round detail and each
seed's AUBC, which the verdicts stage compares across the whole study. The unit
is the dataset under the default recipe, `<dataset>~<recipe>` under another
(alstudy.paths.study_unit).
"""

from __future__ import annotations

import argparse
import json
import logging

from alstudy.fileio import save_json
from alstudy.params import load_params
from alstudy.paths import (
    DEFAULT_RECIPE,
    METRICS_DIR,
    PLOTS_DIR,
    STATISTICS_DIR,
    prepared_dir,
    run_dir,
    study_unit,
)
from alstudy.runner import run_stage
from alstudy.study import paired, plotting, results
from alstudy.study.summary import METRICS, summarise
from alstudy.tracking import curves_view, study_runs
from alstudy.tracking import runs as tracking

log = logging.getLogger("plot")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True)  # validated against params.yaml's data.datasets
    parser.add_argument("--recipe", default=DEFAULT_RECIPE)  # validated against al.recipes
    args = parser.parse_args(argv)
    params = load_params()
    dataset, recipe = params.data.check(args.dataset), params.al.check_recipe(args.recipe)
    unit = study_unit(dataset, recipe)

    curves = results.load_curves(dataset, params.al.strategies, params.al.seeds, recipe)
    meta = json.loads((prepared_dir(dataset) / "meta.json").read_text())
    out = PLOTS_DIR / unit
    plotting.dataset_figures(curves, meta, unit, out)
    for metric in METRICS:
        results.write_wide_csv(out / f"{metric}.csv", curves, metric)
    stats = paired.paired_statistics(curves, out, unit, params.study)
    cells = [run_dir(dataset, s, seed, recipe) for s in params.al.strategies for seed in params.al.seeds]
    stats["compute"] = results.setups(cells)  # the report says whether the cells it pairs ran alike
    save_json(statistics_file := STATISTICS_DIR / f"{unit}.json", stats)

    # "Labels random needs" is about random sampling itself, whichever strategy is the study's baseline.
    summary = summarise(
        curves, params.plot.target_fraction, stopping=(params.stopping.threshold, params.stopping.window)
    )
    paired.add_round_counts(summary, stats, params.study)  # per-round wins and losses, for `dvc metrics show`
    save_json(summary_file := METRICS_DIR / "summary" / f"{unit}.json", summary)
    figures = sorted(out.glob("*.png"))

    experiment_id = tracking.setup(params.base)
    study_runs.describe_experiment(experiment_id, params)
    study_runs.publish(
        experiment_id,
        dataset,
        params.for_recipe(recipe),
        metrics={f"{name}.{key}": v for name, row in summary.items() for key, v in row.items() if is_number(v)},
        artifacts=[*((figure, "plots") for figure in figures), (summary_file, None), (statistics_file, None)],
        recipe=recipe,
    )

    view = curves_view.write(experiment_id, dataset, recipe)
    log.info(
        "%s: MLflow run %s; its learning curves, one line per strategy: %s",
        unit,
        study_runs.parent_name(dataset, recipe),
        curves_view.url(tracking.ui_address(tracking.tracking_uri(params.base)), experiment_id, view),
    )
    for name, row in summary.items():
        scores = (row["final_accuracy"], row["final_f1_macro"], row["aubc_accuracy"])
        log.info("%s %s: final accuracy %.4f, F1 %.4f, AUBC %.4f", unit, name, *scores)


def is_number(value) -> bool:
    return isinstance(value, (int, float))


if __name__ == "__main__":
    run_stage(main)
