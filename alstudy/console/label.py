"""Labelling real images, batch by batch (label.projects.<name> in params.yaml).

    alstudy label next [--project NAME]               # the next batch to label
    alstudy label import [--project NAME] FILE [--relabel]   # the labels a person gave
    alstudy label push [--project NAME] [--url URL] [--token TOKEN]   # the latest batch to Label Studio
    alstudy label pull [--project NAME] [--url URL] [--token TOKEN] [--relabel]   # its labels back

`next` is also the DVC stage `label@<name>`: it depends on labels/ and its output is the batches
folder, so `dvc repro` asks for a new batch after an import or after labels were typed into a
manifest (it imports those first). See alstudy/labelling/project.py.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import mlflow

from alstudy.errors import PipelineError
from alstudy.labelling import label_studio
from alstudy.labelling.batches import read_labels, write_labels
from alstudy.labelling.label_studio import LabelStudio
from alstudy.labelling.project import (
    BATCHES_DIR,
    harvest,
    import_labels,
    issued_batches,
    labels_file,
    next_batch,
    stopping_note,
    write_batch,
)
from alstudy.params import Params, load_params
from alstudy.runner import run_stage
from alstudy.tracking import metric_names
from alstudy.tracking import runs as tracking

log = logging.getLogger("label")


def project_of(params: Params, name: str | None):
    projects = params.label.projects
    if name is None and len(projects) == 1:
        name = next(iter(projects))
    if name not in projects:
        known = ", ".join(projects) or "none declared"
        raise PipelineError(
            f"no labelling project {name!r} under label.projects in params.yaml ({known}); "
            "declare it there" + (" or pass --project" if name is None else "")
        )
    return name, projects[name]


def log_step(params: Params, name: str, batch) -> None:
    """Step <batch number> of the project's MLflow run; a batch asked again is not logged twice."""
    experiment_id = tracking.setup(params.base)
    run_id = tracking.labelling_run(experiment_id, name)
    with mlflow.start_run(run_id=run_id):
        mlflow.set_tags(metric_names.class_tags(params.label.projects[name].classes))  # what labelled/<class> is
        if batch.number in tracking.logged_steps(run_id, "n_labelled"):
            return
        model_id = None
        if batch.model is not None:
            model_id = tracking.log_model(batch.model, f"batch-{batch.number:03d}", batch.number)
        mlflow.log_metrics(batch.metrics, step=batch.number, model_id=model_id)


def push_latest(name: str, project, studio: LabelStudio) -> None:
    batches = issued_batches(name)
    if not batches:
        raise PipelineError(f"no batch issued for {name!r} yet; run `alstudy label next --project {name}` first")
    latest = batches[-1]
    sent, there = label_studio.push(
        studio,
        name,
        list(project.classes),
        Path(project.unlabelled),
        project.image_url,
        latest.manifest.parent / "tasks.json",
    )
    log.info(
        "%s: batch %d pushed to Label Studio project %r at %s: %d new task(s), %d already there; "
        "label them (sort by `order`), then: alstudy label pull --project %s",
        name,
        latest.number,
        label_studio.project_title(name),
        studio.url,
        sent,
        there,
        name,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["next", "import", "push", "pull"])
    parser.add_argument(
        "file", nargs="?", type=Path, help="import: the filled-in manifest.csv or a Label Studio export"
    )
    parser.add_argument("--project", help="the project under label.projects (optional when there is one)")
    parser.add_argument("--relabel", action="store_true", help="import, pull: allow changing labels already given")
    parser.add_argument(
        "--url",
        default=os.environ.get("LABEL_STUDIO_URL", "http://localhost:8080"),
        help="push, pull: Label Studio's address (default: $LABEL_STUDIO_URL or http://localhost:8080)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("LABEL_STUDIO_API_KEY", ""),
        help="push, pull: a Personal Access Token (default: $LABEL_STUDIO_API_KEY)",
    )
    args = parser.parse_args(argv)
    params = load_params()
    name, project = project_of(params, args.project)

    if args.command == "push":
        push_latest(name, project, LabelStudio(args.url, args.token))
        return
    if args.command in ("import", "pull"):
        if args.command == "pull":
            target = BATCHES_DIR / name / "label-studio-export.json"
            args.file = label_studio.pull(LabelStudio(args.url, args.token), name, list(project.classes), target)
        if args.file is None:
            raise PipelineError("import needs the file: alstudy label import <manifest.csv or export.json>")
        new, known, unlabelled = import_labels(name, project, args.file, args.relabel)
        total = len(read_labels(labels_file(name)))
        left = f"; {unlabelled} without a label come back in the next batch" if unlabelled else ""
        log.info(
            "%s: %d new label(s) from %s (%d already there%s); %d labelled in all, in %s",
            name,
            new,
            args.file,
            known,
            left,
            total,
            labels_file(name),
        )
        return

    if not labels_file(name).exists():
        write_labels(labels_file(name), {})
    batches = issued_batches(name)
    harvest(name, project, batches)
    from alstudy.learning.model import configure  # TensorFlow only where a model is trained

    configure(params.model)
    batch = next_batch(name, project, params, batches)
    if batch is None:
        latest = batches[-1]
        log.info(
            "%s: batch %d is still out (none of its %d images labelled yet): kept as issued, in %s; "
            "delete that folder to draw it afresh",
            name,
            latest.number,
            len(latest.rows),
            latest.manifest.parent,
        )
        return
    write_batch(name, project, batch, params)
    log_step(params, name, batch)
    scores = ", ".join(
        f"test {k.removeprefix('test_')} {v:.4f}" for k, v in batch.metrics.items() if k.startswith("test_")
    )
    carried = f", {batch.carried} of them from earlier batches" if batch.carried else ""
    log.info(
        "%s: batch %d, %d images to label%s, in %s%s",
        name,
        batch.number,
        len(batch.rows),
        carried,
        batch.folder,
        f" ({scores})" if scores else "",
    )
    if batch.watch:
        log.info("%s: %s", name, stopping_note(batch.watch, params.stopping))


if __name__ == "__main__":
    run_stage(main)
