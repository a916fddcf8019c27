"""DVC stage `verdicts`: the study's headline, whole learning curves compared seed by seed, Holm-corrected.

Reads each study unit's per-seed AUBC from metrics/statistics/<unit>.json (the
plot stages; a unit is a dataset under one recipe, alstudy.paths.study_unit),
compares every pair of strategies on every metric in study.metrics and, under
each recipe of al.recipes, the baseline with the baseline under the default
recipe (what the recipe buys), corrects over all of them together
(alstudy/study/verdicts.py), and writes metrics/verdicts/<unit>.json and the same
numbers to each unit's MLflow study run. One stage for the whole study, because
the correction spans every unit: a new dataset's or recipe's results change
every adjusted p-value.
"""

from __future__ import annotations

import argparse
import json
import logging

from alstudy.errors import PipelineError
from alstudy.fileio import save_json
from alstudy.params import load_params
from alstudy.paths import DEFAULT_RECIPE, STATISTICS_DIR, VERDICTS_DIR, study_unit, unit_parts
from alstudy.runner import run_stage
from alstudy.study import verdicts
from alstudy.tracking import runs as tracking
from alstudy.tracking import study_runs

log = logging.getLogger("verdicts")


def load_aubcs(unit: str) -> dict[str, dict[str, list[float]]]:
    path = STATISTICS_DIR / f"{unit}.json"
    if not path.exists():
        stage = "plot" if unit_parts(unit)[1] == DEFAULT_RECIPE else "plot_recipe"
        raise PipelineError(f"{path}: missing; run `dvc repro {stage}` first")
    return json.loads(path.read_text())["aubc"]


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    params = load_params()
    study = params.study
    units = params.study_units()
    margin = study.equivalence_margin / 100  # points -> a fraction of AUBC
    aubcs, comparisons = verdicts.with_recipe_effects(
        {study_unit(d, r): load_aubcs(study_unit(d, r)) for d, r in units},
        verdicts.pairs(params.al.strategies, study.baseline),
        study.baseline,
    )
    plan = study.sequential
    sequential = None if plan is None else (plan.seeds_per_look, plan.max_seeds)
    results = verdicts.study_verdicts(
        aubcs, comparisons, study.alpha, study.power, study.max_seeds, margin, sequential=sequential
    )
    family = results[0].family if results else verdicts.Family(study.alpha, 0, study.power, study.max_seeds, margin)
    for dataset, recipe in units:
        unit = study_unit(dataset, recipe)
        save_json(VERDICTS_DIR / f"{unit}.json", verdicts.dataset_metrics(results, unit, family))

    experiment_id = tracking.setup(params.base)
    for dataset, recipe in units:
        metrics = verdicts.mlflow_metrics([v for v in results if v.dataset == study_unit(dataset, recipe)])
        study_runs.publish(experiment_id, dataset, params.for_recipe(recipe), metrics=metrics, recipe=recipe)
    for v in results:
        log.info(
            "%s %s - %s (%s): AUBC %+.4f, Holm p %.3g, equivalence Holm p %.3g: %s (a rerun agrees %.0f%%)",
            v.dataset,
            v.a,
            v.b,
            v.metric,
            v.mean,
            v.p_holm,
            v.p_equivalence_holm,
            v.decision,
            100 * v.replication,
        )
    if family.looks:
        log.info(
            "looks after %s of at most %d seeds: each p is its group-sequential p (O'Brien-Fleming spending)",
            ", ".join(map(str, family.looks)),
            family.planned,
        )
    log.info(
        "%d comparisons (%d hypotheses) corrected together; wrote %s/", family.size, family.hypotheses, VERDICTS_DIR
    )


if __name__ == "__main__":
    run_stage(main)
