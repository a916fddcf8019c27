"""One round of the live loop, in a process of its own (`python -m alstudy.labelling.live_round`).

The live backend (alstudy/labelling/ml_backend.py) starts it at low priority after every K new
annotations, so that training never holds up a prediction request; it trains the project's model on
every label so far (alstudy/labelling/rounds.py, the round `label next` runs) and ranks every image
not labelled yet, then replaces labelling/<project>/live/ranking.jsonl in one step, and logs the round
as a step of the MLflow run `label-<project>-live` (labelled count and class mix, test accuracy and
macro-F1 with a test folder, the model). Killed halfway, it leaves the previous ranking whole, and the
backend's next start runs the round again.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from alstudy.errors import PipelineError
from alstudy.labelling import rounds
from alstudy.labelling.batches import read_labels
from alstudy.labelling.live import Ranking, model_version, random_ranking
from alstudy.labelling.project import class_folder, image_files, known_images, labels_file, live_dir
from alstudy.params import LabelProject, Params, load_params
from alstudy.runner import run_stage
from alstudy.scale.process_lock import Process, stop_when_orphaned
from alstudy.tracking import metric_names

log = logging.getLogger("label")


def run_round(name: str, project: LabelProject, params: Params, number: int) -> tuple[Ranking, dict, object | None]:
    """Round `number`: the model trained on every label so far ranks every image not labelled yet; with
    the round's metrics (labelled count and class mix, test accuracy and macro-F1 with a test folder) and
    its Keras model (None before any label: a seeded random ranking)."""
    root = Path(project.unlabelled)
    labels = read_labels(labels_file(name))
    known = known_images(project, labels)
    if not known:
        return random_ranking(name, project), {}, None
    classes = list(project.classes)
    candidates = [f for f in image_files(root) if f not in labels]
    test = class_folder(Path(project.test), classes) if project.test else []
    parts = {"candidates": [root / f for f in candidates], "test": [path for path, _ in test]}
    trained = rounds.train_round(project, params, known, parts, number)
    ranked = rounds.rank_all(trained, project, params) if candidates else None
    images = {}
    if ranked:
        for path, suggested, confidence, priority in zip(
            candidates, ranked.suggested, ranked.confidence, ranked.priority
        ):
            images[path] = (suggested, float(confidence), float(priority))
    metrics = rounds.round_metrics(trained, known, test)
    return Ranking(model_version(name, number), number, len(known), images), metrics, trained.cnn.model


def log_round(name: str, project: LabelProject, params: Params, number: int, metrics: dict, model) -> None:
    """Step `number` of the project's live run in MLflow (`label-<project>-live`): metrics and model."""
    import mlflow

    from alstudy.tracking import runs as tracking

    experiment_id = tracking.setup(params.base)
    with mlflow.start_run(run_id=tracking.labelling_run(experiment_id, name, live=True)):
        mlflow.set_tags({**metric_names.class_tags(project.classes), "recipe": project.recipe})
        mlflow.set_tag("strategy", project.strategy)
        if number in tracking.logged_steps(mlflow.active_run().info.run_id, metric_names.N_LABELED):
            return  # a round redone after a kill: logged once
        model_id = tracking.log_model(model, f"live-round-{number:03d}", number)
        mlflow.log_metrics(metrics, step=number, model_id=model_id)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", required=True)
    parser.add_argument("--round", type=int, required=True)
    parser.add_argument("--parent", required=True, help="the backend that started it: PID:START_TICKS")
    parser.add_argument("--niceness", type=int, required=True, help="the backend's ALSTUDY_ROUND_NICENESS")
    args = parser.parse_args(argv)
    os.nice(args.niceness)  # the backend's prediction requests come first
    # A backend killed mid-round takes its round with it; its next start runs the round again. The backend
    # names itself (pid and start time): killed before this line, it is no longer our parent to ask for.
    pid, started = (int(part) for part in args.parent.split(":"))
    backend = Process(pid, started, "alstudy label serve")
    if not backend.alive():
        raise SystemExit(3)
    stop_when_orphaned(f"live round {args.round} of {args.project}", backend)
    params = load_params()
    project = params.label.projects[args.project]
    params = params.for_recipe(project.recipe)
    ranking, metrics, model = run_round(args.project, project, params, args.round)
    ranking.save(live_dir(args.project))  # the backend sends it to Label Studio at once, while this logs
    if model is not None:
        try:
            log_round(args.project, project, params, args.round, metrics, model)
        except PipelineError as error:  # the scores are out already; MLflow only misses this round
            log.warning("%s: round %d not logged to MLflow: %s", args.project, args.round, error)
    log.info(
        "%s: round %d trained on %d labelled images, %d images ranked by %s",
        args.project,
        ranking.round,
        ranking.n_labelled,
        len(ranking.images),
        project.strategy,
    )


if __name__ == "__main__":
    run_stage(main)
