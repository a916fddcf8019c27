"""Labelling real images, batch by batch (label.projects.<name> in params.yaml).

    alstudy label next [--project NAME]               # the next batch to label
    alstudy label import [--project NAME] FILE [--relabel]   # the labels a person gave
    alstudy label push [--project NAME] [--url URL] [--token TOKEN]   # the latest batch to Label Studio
    alstudy label pull [--project NAME] [--url URL] [--token TOKEN] [--relabel]   # its labels back
    alstudy label serve [--project NAME] [--host H] [--port P]   # a Label Studio ML backend: the live loop
    alstudy label push --all --backend URL   # every image to Label Studio, the backend connected

`next` is also the DVC stage `label@<name>`: it depends on labels/ and its output is the batches
folder, so `dvc repro` asks for a new batch after an import or after labels were typed into a
manifest (it imports those first). See alstudy/labelling/project.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
from pathlib import Path

import mlflow

from alstudy.errors import PipelineError
from alstudy.labelling import label_studio, ml_backend
from alstudy.labelling.batches import BatchRow, label_studio_tasks, read_labels, write_labels
from alstudy.labelling.label_studio import LabelStudio
from alstudy.labelling.ml_backend import PASSWORD_ENV, LiveLoop
from alstudy.labelling.project import (
    BATCHES_DIR,
    class_folder,
    harvest,
    image_files,
    import_labels,
    issued_batches,
    labels_file,
    live_dir,
    next_batch,
    stopping_note,
    write_batch,
)
from alstudy.params import Params, load_params
from alstudy.runner import run_stage
from alstudy.scale.process_lock import hold
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
        raise PipelineError(
            f"no batch issued for {name!r} yet; run `alstudy label next --project {name}` first, or push every "
            f"image for the live loop: alstudy label push --project {name} --all --backend URL"
        )
    latest = batches[-1]
    tasks = json.loads((latest.manifest.parent / "tasks.json").read_text())
    sent, there = label_studio.push(
        studio, name, list(project.classes), Path(project.unlabelled), project.image_url, tasks
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


def push_all(name: str, project, studio: LabelStudio) -> None:
    """Every image of the unlabelled folder as a task: the live loop's Label Studio project."""
    files = image_files(Path(project.unlabelled))
    tasks = label_studio_tasks([BatchRow(i + 1, path, "", 0.0) for i, path in enumerate(files)], "")
    sent, there = label_studio.push(
        studio, name, list(project.classes), Path(project.unlabelled), project.image_url, tasks
    )
    log.info(
        "%s: every image (%d) in Label Studio project %r at %s: %d new task(s), %d already there",
        name,
        len(files),
        label_studio.project_title(name),
        studio.url,
        sent,
        there,
    )


def connect_backend(name: str, studio: LabelStudio, url: str, user: str) -> None:
    """Register the live backend at `url` in the project's Model settings (Label Studio checks it answers)."""
    project_id = studio.find_project(label_studio.project_title(name))
    password = os.environ.get(PASSWORD_ENV, "") if user else ""
    if user and not password:
        raise PipelineError(f"--basic-auth-user {user}: set the backend's password in {PASSWORD_ENV}")
    try:
        studio.connect_backend(project_id, url, f"alstudy {name}", user, password)
    except PipelineError as error:
        if label_studio.BLOCKED in str(error):  # it says what to set in Label Studio
            raise
        raise PipelineError(
            f"{error}; is the backend running? start it first: alstudy label serve --project {name}"
        ) from None
    log.info(
        "%s: the live backend at %s is connected to Label Studio project %r (Settings > Model); sort the Data "
        "Manager by Prediction score and label from the top",
        name,
        url,
        label_studio.project_title(name),
    )


def serve_project(name: str, project, studio: LabelStudio, host: str, port: int, user: str) -> None:
    with hold(live_dir(name) / "serve.lock", f"alstudy label serve --project {name}", rerun_hint="serve again"):
        loop = LiveLoop(name, project, studio)
        server = ml_backend.serve(loop, host, port, user, os.environ.get(PASSWORD_ENV, "") if user else "")
        url = f"http://{host}:{server.server_address[1]}"
        log.info(
            "%s: Label Studio ML backend at %s (strategy %s, retrains every %d labels); connect it: "
            "alstudy label push --project %s --all --backend %s",
            name,
            url,
            project.strategy,
            project.retrain_every,
            name,
            url,
        )
        threading.Thread(target=loop.watch, name="label-studio-watch", daemon=True).start()
        try:
            server.serve_forever()
        finally:
            loop.stop()
            server.server_close()


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
    backend_user = argparse.ArgumentParser(add_help=False)
    backend_user.add_argument(
        "--basic-auth-user",
        default="",
        help=f"HTTP basic auth for the live backend: this user, the password in ${PASSWORD_ENV}",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{next,import,push,pull,serve}")
    commands.add_parser("next", parents=[common], help="the next batch to label")
    importing = commands.add_parser("import", parents=[common, relabel], help="the labels a person gave")
    importing.add_argument(
        "file", type=Path, help="the filled-in manifest.csv, the page's saved CSV, or a Label Studio export"
    )
    pushing = commands.add_parser(
        "push", parents=[common, studio, backend_user], help="the latest batch (or every image) to Label Studio"
    )
    pushing.add_argument("--all", action="store_true", help="every image of the folder, for the live loop")
    pushing.add_argument("--backend", default="", help="also connect the live backend at this URL (label serve)")
    commands.add_parser("pull", parents=[common, studio, relabel], help="its labels back from Label Studio")
    serving = commands.add_parser(
        "serve", parents=[common, studio, backend_user], help="the project as a Label Studio ML backend (live loop)"
    )
    serving.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    serving.add_argument("--port", type=int, default=9090, help="the port to listen on (default 9090)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    params = load_params()
    name, project = project_of(params, args.project)

    if args.command == "push":
        studio = LabelStudio(args.url, args.token)
        (push_all if args.all else push_latest)(name, project, studio)
        if args.backend:
            connect_backend(name, studio, args.backend, args.basic_auth_user)
        return
    if args.command == "serve":
        serve_project(name, project, LabelStudio(args.url, args.token), args.host, args.port, args.basic_auth_user)
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
