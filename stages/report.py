"""DVC stage `report`: the study report (report/study.md) from every dataset's summary and statistics.

The headline (the curve-level verdicts of metrics/verdicts/, Holm-corrected over
the study), the run configuration, how the statistics were done, then tables,
figures and the per-round tests as detail; logged to each dataset's MLflow
study run.
"""

from __future__ import annotations

import argparse
import json
import logging

from alstudy.errors import PipelineError
from alstudy.fileio import atomic_path
from alstudy.params import Params, load_params
from alstudy.paths import (
    DEFAULT_RECIPE,
    METRICS_DIR,
    PLOTS_DIR,
    RECIPE_FIGURES,
    REPORT_FILE,
    STATISTICS_DIR,
    VERDICTS_DIR,
    study_unit,
    unit_parts,
)
from alstudy.runner import run_stage
from alstudy.study.report import DatasetResults, plural, render
from alstudy.study.report_recipes import figure_prefix
from alstudy.study.verdicts import from_metrics
from alstudy.tracking import runs as tracking
from alstudy.tracking import study_runs

log = logging.getLogger("report")

RECIPE_FIGURES_NOTE = "README.txt"
RECIPE_FIGURES_TEXT = (
    "What each training recipe and each strategy buys, side by side: <dataset>-recipes-<metric>.png, drawn when\n"
    "params.yaml's al.recipes lists a recipe (docs/user-guide/recipes.md); a study of the default recipe alone\n"
    "has none.\n"
)


def configuration(params: Params) -> list[str]:
    al, model, study = params.al, params.model, params.study
    options = {n: params.al.options(n).model_dump() for n in al.strategies}
    options_text = "; ".join(f"{n}: {', '.join(f'{k}={v}' for k, v in o.items())}" for n, o in options.items() if o)
    return [
        f"datasets: {', '.join(params.data.datasets)}",
        f"strategies: {', '.join(al.strategies)}" + (f" (options: {options_text})" if options_text else ""),
        f"seeds: {', '.join(map(str, al.seeds))}",
        f"budget: {al.initial_size} random labels, then {al.rounds} rounds of {al.query_size} "
        f"= {al.budget:,} labels; candidates per round: "
        + (f"a random {al.pool_subsample:,} of the unlabelled pool" if al.pool_subsample else "the whole pool"),
        f"model: CNN, Conv2D filters {model.filters} (kernel {model.kernel_size}) with 2x2 max-pooling, "
        f"Dense {model.dense_units}, dropout {model.dropout}, softmax; Adam lr {model.learning_rate}, "
        f"batch {model.batch_size}, {plural(model.epochs, 'epoch')} per round, "
        + ("retrained from scratch each round" if model.retrain_from_scratch else "warm-started each round"),
        f"verdicts: alpha {study.alpha:g} (Holm over the study), baseline {study.baseline}, metrics "
        f"{', '.join(study.metrics)}; seeds needed at power {study.power:g}, at most {study.max_seeds}",
    ]


def load_results(unit: str) -> DatasetResults:
    """One study unit's results: a dataset under one recipe (alstudy.paths.study_unit)."""
    summary_file = METRICS_DIR / "summary" / f"{unit}.json"
    statistics_file = STATISTICS_DIR / f"{unit}.json"
    verdicts_file = VERDICTS_DIR / f"{unit}.json"
    plot = "plot" if unit_parts(unit)[1] == DEFAULT_RECIPE else "plot_recipe"
    for path, stage in ((summary_file, plot), (statistics_file, plot), (verdicts_file, "verdicts")):
        if not path.exists():
            raise PipelineError(f"{path}: missing; run `dvc repro {stage}` first")
    return DatasetResults(
        unit,
        json.loads(summary_file.read_text()),
        json.loads(statistics_file.read_text()),
        sorted(p.name for p in (PLOTS_DIR / unit).glob("*.png")),
        from_metrics(json.loads(verdicts_file.read_text()), unit),
    )


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    params = load_params()
    units = params.study_units()
    results = [load_results(study_unit(d, r)) for d, r in units]
    RECIPE_FIGURES.mkdir(parents=True, exist_ok=True)  # a DVC output: there even when no recipe draws in it
    for stale in RECIPE_FIGURES.glob("*.png"):
        stale.unlink()
    # Without recipes the folder would be empty, and DVC warned "'report/figures' is empty" at every repro.
    (RECIPE_FIGURES / RECIPE_FIGURES_NOTE).write_text(RECIPE_FIGURES_TEXT)
    text = render(
        results,
        configuration(params),
        figure_root=f"../{PLOTS_DIR}",
        alpha=params.study.alpha,
        baseline=params.study.baseline,
        experiment=params.base.experiment,
        stopping=(params.stopping.threshold, params.stopping.window),
        recipe_figures=RECIPE_FIGURES if params.al.recipes else None,
    )
    with atomic_path(REPORT_FILE) as tmp:
        tmp.write_text(text)

    experiment_id = tracking.setup(params.base)
    figures = [(figure, "plots") for figure in sorted(RECIPE_FIGURES.glob("*.png"))] if params.al.recipes else []
    for dataset, recipe in units:
        mine = [(path, folder) for path, folder in figures if path.name.startswith(figure_prefix(dataset))]
        study_runs.publish(
            experiment_id, dataset, params.for_recipe(recipe), artifacts=[(REPORT_FILE, None), *mine], recipe=recipe
        )
    log.info("wrote %s (%d study units); logged to each one's MLflow study run", REPORT_FILE, len(results))


if __name__ == "__main__":
    run_stage(main)
