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
    class_folder,
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
    if name is None and projects:
        raise PipelineError(
            f"{len(projects)} labelling projects under label.projects in params.yaml ({', '.join(projects)}); "
            "say which with --project NAME"
        )
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
        project = params.label.projects[name]
        mlflow.set_tags(metric_names.class_tags(project.classes))  # what labelled/<class> is
        mlflow.set_tag("recipe", project.recipe)  # the suggestion model's, as of the latest batch
        # n_labelled: the name labelling runs used before the study's spelling became the only one
        if batch.number in tracking.logged_steps(run_id, metric_names.N_LABELED) | tracking.logged_steps(
            run_id, "n_labelled"
        ):
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """One subcommand each, so that options go before or after the file: every form this tool prints
    (`alstudy label import --project NAME FILE`) parses."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--project", help="the project under label.projects (optional when there is one)")
    studio = argparse.ArgumentParser(add_help=False)
    studio.add_argument(
        "--url",
        default=os.environ.get("LABEL_STUDIO_URL", "http://localhost:8080"),
        help="Label Studio's address (default: $LABEL_STUDIO_URL or http://localhost:8080)",
    )
    studio.add_argument(
        "--token",
        default=os.environ.get("LABEL_STUDIO_API_KEY", ""),
        help="a Personal Access Token (default: $LABEL_STUDIO_API_KEY)",
    )
    relabel = argparse.ArgumentParser(add_help=False)
    relabel.add_argument("--relabel", action="store_true", help="allow changing labels already given")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{next,import,push,pull}")
    commands.add_parser("next", parents=[common], help="the next batch to label")
    importing = commands.add_parser("import", parents=[common, relabel], help="the labels a person gave")
    importing.add_argument(
        "file", type=Path, help="the filled-in manifest.csv, the page's saved CSV, or a Label Studio export"
    )
    commands.add_parser("push", parents=[common, studio], help="the latest batch to Label Studio")
    commands.add_parser("pull", parents=[common, studio, relabel], help="its labels back from Label Studio")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    params = load_params()
    name, project = project_of(params, args.project)

    if args.command == "push":
        push_latest(name, project, LabelStudio(args.url, args.token))
        return
    if args.command in ("import", "pull"):
        if args.command == "pull":
            target = BATCHES_DIR / name / "label-studio-export.json"
            args.file = label_studio.pull(
                LabelStudio(args.url, args.token), name, list(project.classes), target, relabel=args.relabel
            )
        new, known, unlabelled = import_labels(name, project, args.file, args.relabel)
        yours = len(read_labels(labels_file(name)))
        start = len(class_folder(Path(project.labelled), list(project.classes))) if project.labelled else 0
        left = f"; {unlabelled} without a label come back in the next batch" if unlabelled else ""
        start_note = f" with the {start} of {project.labelled}" if start else ""
        # The same count as the next batch's "trained on N labelled images".
        log.info(
            "%s: %d new label(s) from %s (%d already there%s); %d labelled in all%s (%d in %s)",
            name,
            new,
            args.file,
            known,
            left,
            yours + start,
            start_note,
            yours,
            labels_file(name),
        )
        return

    if not labels_file(name).exists():
        write_labels(labels_file(name), {})
    batches = issued_batches(name)
    harvest(name, project, batches)
    params = params.for_recipe(project.recipe)  # the suggestion model trains with the project's recipe
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
