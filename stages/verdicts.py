"""DVC stage `verdicts`: the study's headline, whole learning curves compared seed by seed, Holm-corrected.

Reads each dataset's per-seed AUBC from metrics/statistics/<dataset>.json (the
plot stages), compares every pair of strategies on every metric in
study.metrics, corrects over all of them together (alstudy/study/verdicts.py), and
writes metrics/verdicts/<dataset>.json and the same numbers to each dataset's
MLflow study run. One stage for the whole study, because the correction
spans every dataset: a new dataset's results change every adjusted p-value.
"""

from __future__ import annotations

import argparse
import json
import logging

from alstudy.errors import PipelineError
from alstudy.fileio import save_json
from alstudy.params import load_params
from alstudy.paths import STATISTICS_DIR, VERDICTS_DIR
from alstudy.runner import run_stage
from alstudy.study import verdicts
from alstudy.tracking import runs as tracking
from alstudy.tracking import study_runs

log = logging.getLogger("verdicts")


def load_aubcs(dataset: str) -> dict[str, dict[str, list[float]]]:
    path = STATISTICS_DIR / f"{dataset}.json"
    if not path.exists():
        raise PipelineError(f"{path}: missing; run `dvc repro plot` first")
    return json.loads(path.read_text())["aubc"]


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    params = load_params()
    study, datasets = params.study, params.data.datasets
    aubcs = {dataset: load_aubcs(dataset) for dataset in datasets}
    margin = study.equivalence_margin / 100  # points -> a fraction of AUBC
    comparisons = verdicts.pairs(params.al.strategies, study.baseline)
    plan = study.sequential
    sequential = None if plan is None else (plan.seeds_per_look, plan.max_seeds)
    results = verdicts.study_verdicts(
        aubcs, comparisons, study.alpha, study.power, study.max_seeds, margin, sequential=sequential
    )
    family = results[0].family if results else verdicts.Family(study.alpha, 0, study.power, study.max_seeds, margin)
    for dataset in datasets:
        save_json(VERDICTS_DIR / f"{dataset}.json", verdicts.dataset_metrics(results, dataset, family))

    experiment_id = tracking.setup(params.base)
    for dataset in datasets:
        metrics = verdicts.mlflow_metrics([v for v in results if v.dataset == dataset])
        study_runs.publish(experiment_id, dataset, params, metrics=metrics)
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
