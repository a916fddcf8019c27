"""DVC stage `plot@<dataset>`: learning-curve figures, summary metrics and an MLflow summary run per dataset."""
from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path

import mlflow

from pipeline import plotting, tracking
from pipeline.cli import run_stage
from pipeline.errors import PipelineError
from pipeline.fileio import atomic_path, save_json
from pipeline.params import DATASETS, load_params
from pipeline.paths import METRICS_DIR, PLOTS_DIR, prepared_dir, run_dir
from pipeline.summary import Curves, summarise

log = logging.getLogger("plot")


def load_curves(dataset: str, strategies: list[str], seeds: list[int]) -> dict[str, Curves]:
    curves = {}
    for strategy in strategies:
        runs = []
        for seed in seeds:
            path = run_dir(dataset, strategy, seed) / "rounds.json"
            if not path.exists():
                raise PipelineError(f"{path}: missing; run `dvc repro al` so every dataset x strategy x seed "
                                    "in params.yaml has results")
            runs.append(json.loads(path.read_text()))
        curves[strategy] = Curves.from_runs(runs)
    return curves


def write_wide_csv(path: Path, curves: dict[str, Curves], metric: str) -> None:
    """n_labeled plus one column per strategy (mean over seeds): the shape `dvc plots` overlays."""
    first = next(iter(curves.values()))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["n_labeled", *curves])
        for i, n in enumerate(first.n_labeled):
            writer.writerow([int(n), *(f"{getattr(c, metric)[:, i].mean():.6f}" for c in curves.values())])


def summary_config(params) -> dict:
    """What a summary depends on: rerunning the stage with the same config updates the same MLflow run."""
    return {"strategies": params.al.strategies, "seeds": params.al.seeds, **params.run_settings(),
            "plot": params.plot.model_dump()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    args = parser.parse_args(argv)
    params = load_params()
    dataset = args.dataset

    curves = load_curves(dataset, params.al.strategies, params.al.seeds)
    meta = json.loads((prepared_dir(dataset) / "meta.json").read_text())
    out = PLOTS_DIR / dataset
    figures = [out / "accuracy.png", out / "f1_macro.png", out / "queried_classes.png"]
    plotting.learning_curves(curves, "accuracy", dataset, figures[0])
    plotting.learning_curves(curves, "f1_macro", dataset, figures[1])
    plotting.queried_classes(curves, meta["train_class_counts"], meta["class_names"], dataset, figures[2])
    for metric in ("accuracy", "f1_macro"):
        write_wide_csv(out / f"{metric}.csv", curves, metric)

    summary = summarise(curves, params.plot.target_fraction)
    summary_file = METRICS_DIR / "summary" / f"{dataset}.json"
    save_json(summary_file, summary)

    experiment_id = tracking.setup(params.base)
    with tracking.summary_run(experiment_id, dataset, summary_config(params)):
        mlflow.log_metrics({f"{strategy}.{key}": value for strategy, values in summary.items()
                            for key, value in values.items() if isinstance(value, (int, float))})
        for figure in figures:
            mlflow.log_artifact(str(figure), artifact_path="plots")
        mlflow.log_artifact(str(summary_file))

    for strategy, s in summary.items():
        log.info("%s %s: final accuracy %.4f, F1 %.4f, AUBC %.4f, labels to %.3f: %s", dataset, strategy,
                 s["final_accuracy"], s["final_f1_macro"], s["aubc_accuracy"], s["target_accuracy"],
                 s["labels_to_target_accuracy"])


if __name__ == "__main__":
    run_stage(main)
