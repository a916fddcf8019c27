"""A labelling project's two steps: `next` (which images to label now) and `import` (the labels given).

Nothing a person typed is lost, and nothing they are labelling moves under them:
- a batch, once written, is never rewritten: while none of its images is labelled it is kept
  as issued (a rerun after a params change does not redraw it), and a new batch goes to a new
  folder;
- labels typed straight into a batch's manifest.csv (as its page says) are imported by the
  next `next` (so `dvc repro` picks them up) before anything else happens;
- a label for any image the tool issued, in any batch, is accepted; images issued and not
  labelled yet (skipped, or a batch labelled in part) come first in the next batch.

`next` trains the project's CNN on the labels so far, scores the images not labelled yet with
the project's strategy and writes batch <n> for a person: manifest.csv, tasks.json (Label
Studio) and label.html (the page a person labels on), under labelling/<project>/batch-<n>/. With no labels yet the
first batch is a seeded random draw. Each new batch is step n of the project's MLflow run:
labelled count, class mix, test metrics (with a test folder) and the model.

`import` checks every row of a filled-in manifest or Label Studio export against the issued
batches and the classes, then rewrites labels/<project>.csv in one atomic replace.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from alstudy import strategies
from alstudy.data.image_folder import list_images
from alstudy.errors import PipelineError
from alstudy.fileio import atomic_path
from alstudy.labelling import rounds
from alstudy.labelling.batches import (
    BatchRow,
    ImportRow,
    Label,
    label_studio_tasks,
    parse_manifest,
    read_import,
    read_labels,
    validate_import,
    write_labels,
    write_manifest,
)
from alstudy.labelling.label_studio import local_files_url
from alstudy.labelling.page import write_label_page
from alstudy.learning import stopping
from alstudy.learning.loop import round_rng
from alstudy.params import LabelProject, Params
from alstudy.strategies import Need
from alstudy.tracking import metric_names

log = logging.getLogger("label")
LABELS_DIR, BATCHES_DIR = Path("labels"), Path("labelling")
LOCKS_DIR = Path(".cache/locks")
STOP_FILE = "stop_set.json"  # a batch's model's predictions on the stop set, for the next batch's agreement


@dataclass(frozen=True)
class NextBatch:
    number: int
    rows: list[BatchRow]
    folder: Path
    metrics: dict[str, float]
    model: object | None  # the trained keras model, or None for a random first batch
    carried: int = 0  # images issued before and not labelled yet, first in the batch
    # The stopping criterion: this batch's model's classes on the stop set, and the agreement of each
    # batch's model with the one before, this batch's last (alstudy/learning/stopping.py).
    watch: dict = field(default_factory=dict)


@dataclass(frozen=True)
class IssuedBatch:
    number: int
    manifest: Path
    rows: list[ImportRow]  # each image's row as the manifest holds it now, with any label typed there

    @property
    def images(self) -> list[str]:
        return [image for _, image, _ in self.rows]


def labels_file(name: str) -> Path:
    return LABELS_DIR / f"{name}.csv"


@contextlib.contextmanager
def labels_lock(name: str) -> Iterator[None]:
    """The labels file's lock, held while it is read, changed and written: the live backend adds labels
    while a person may run `label import` or `label next`, and neither may lose the other's."""
    path = LOCKS_DIR / f"labels-{name}.lock"  # not in labels/: git tracks that folder and DVC hashes it
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def batch_dir(name: str, number: int) -> Path:
    return BATCHES_DIR / name / f"batch-{number:03d}"


def live_dir(name: str) -> Path:
    """The live loop's folder (alstudy/labelling/live.py): there once `label serve` has run for the project."""
    return BATCHES_DIR / name / "live"


def image_files(folder: Path) -> list[str]:
    """The images of a folder, at any depth, as sorted paths relative to it."""
    if not folder.is_dir():
        raise PipelineError(f"{folder}: no such folder (label.projects.<name>.unlabelled); put the images there")
    return [str(p.relative_to(folder)) for p in list_images(folder)]


def class_folder(folder: Path, classes: list[str]) -> list[tuple[Path, str]]:
    """(image, class) of a <class>/<image> folder whose class names are the project's."""
    if not folder.is_dir():
        raise PipelineError(f"{folder}: no such folder; fix the path in params.yaml")
    pairs = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if sub.name not in classes:
            raise PipelineError(f"{sub}: {sub.name!r} is not a class of this project ({', '.join(classes)})")
        pairs += [(f, sub.name) for f in list_images(sub)]
    return pairs


def score(strategy: str, proba: np.ndarray, mc_proba: np.ndarray | None, first: int = 1) -> np.ndarray:
    """Each picked image's score under the strategy (rows of `proba` are the picks, in order): its
    uncertainty measure where the registry has one (alstudy/strategies), else the order of picking
    (`first` = first), for strategies that build a batch rather than rank images."""
    measure = strategies.get(strategy).score
    if measure is not None and (Need.MC_PROBA not in strategies.get(strategy).needs or mc_proba is not None):
        return np.asarray(measure(proba, mc_proba), dtype=np.float64)
    return np.arange(first, first + len(proba), dtype=np.float64)


def watch_stop_set(predicted: dict[str, str], batches: list[IssuedBatch]) -> dict:
    """This batch's model's classes on the project's stop set and its agreement with the previous
    batch's model on the images both predicted (alstudy/learning/stopping.py)."""
    previous = {}
    for batch in reversed(batches):  # the latest batch that had a model
        stop_file = batch.manifest.parent / STOP_FILE
        if stop_file.is_file():
            previous = json.loads(stop_file.read_text())
            break
    agreements = list(previous.get("agreements", []))
    common = [path for path in predicted if path in previous.get("predicted", {})]
    agreements.append(
        stopping.cohen_kappa([previous["predicted"][p] for p in common], [predicted[p] for p in common])
        if common
        else None
    )
    return {"predicted": predicted, "agreements": agreements}


def issued_batches(name: str) -> list[IssuedBatch]:
    """Every batch handed out so far, oldest first, read from its manifest as the person left it."""
    batches = []
    for folder in sorted((BATCHES_DIR / name).glob("batch-[0-9][0-9][0-9]")):
        manifest = folder / "manifest.csv"
        if manifest.is_file():  # written last: a folder without it was never handed out
            batches.append(IssuedBatch(int(folder.name.split("-")[1]), manifest, parse_manifest(manifest)))
    return batches


def issued_images(batches: list[IssuedBatch]) -> dict[str, int]:
    """Every image issued, with the latest batch that asked for it."""
    return {image: batch.number for batch in batches for image in batch.images}


def harvest(name: str, project: LabelProject, batches: list[IssuedBatch]) -> int:
    """Import the labels typed into the batches' manifests; return how many were new.

    Only images without a label yet: the labels file holds what was imported or relabelled on
    purpose. A row that cannot be imported (a misspelt class, a manifest label that disagrees
    with the labels file) is named in a warning and left in its manifest; its image comes back
    in the next batch, so nothing typed is lost and the study's `dvc repro` goes on."""
    with labels_lock(name):
        return _harvest(name, project, batches)


def _harvest(name: str, project: LabelProject, batches: list[IssuedBatch]) -> int:
    existing = read_labels(labels_file(name))
    issued, classes = issued_images(batches), list(project.classes)
    found: dict[str, Label] = {}
    for batch in batches:
        for where, image, typed in batch.rows:
            before = existing.get(image)
            if not typed or image in found:
                continue
            if before is not None:
                if before.label.casefold() != typed.casefold():
                    log.warning(
                        "%s: %r for %s, but the labels file has %r (kept); to change it: "
                        "alstudy label import --project %s %s --relabel",
                        where,
                        typed,
                        image,
                        before.label,
                        name,
                        batch.manifest,
                    )
                continue
            try:
                found.update(
                    (label.path, label)
                    for label in validate_import([(where, image, typed)], issued, classes, existing, relabel=False)
                )
            except PipelineError as error:
                log.warning("%s (not imported; the image comes back in the next batch)", error)
    if found:
        write_labels(labels_file(name), {**existing, **found})
        log.info("%s: imported %d label(s) typed into the batch manifests", name, len(found))
    return len(found)


def known_images(project: LabelProject, labels: dict[str, Label]) -> list[tuple[Path, str]]:
    """(image, class) of every label so far: the labels file's, then the project's `labelled` folder."""
    known = [(Path(project.unlabelled) / path, label.label) for path, label in labels.items()]
    if project.labelled:
        known += class_folder(Path(project.labelled), list(project.classes))
    return known


def next_batch(name: str, project: LabelProject, params: Params, batches: list[IssuedBatch]) -> NextBatch | None:
    """The batch a person labels next after the issued `batches`, or None when the latest one is
    still out (none of its images labelled yet): that one stays as it was issued.

    A round of the study's own loop (alstudy/labelling/rounds.py) on the project's images."""
    root = Path(project.unlabelled)
    labels = read_labels(labels_file(name))
    if batches and not any(image in labels for image in batches[-1].images):
        return None
    number = batches[-1].number + 1 if batches else 1
    files = image_files(root)
    present = set(files)
    unlabelled = [image for image in issued_images(batches) if image not in labels and image in present]
    carried, waiting = unlabelled[: project.batch_size], set(unlabelled)
    candidates = [f for f in files if f not in labels and f not in waiting]
    if not candidates and not carried:
        raise PipelineError(f"{root}: every image is labelled ({len(files)}); add images to label more")
    n = min(project.batch_size - len(carried), len(candidates))
    classes = list(project.classes)
    known = known_images(project, labels)

    if not known:  # nothing to learn from yet: a seeded random draw
        picks = np.sort(round_rng(project.seed, number).choice(len(candidates), size=n, replace=False))
        rows = [BatchRow(i + 1, image, "", 0.0) for i, image in enumerate(carried + [candidates[p] for p in picks])]
        return NextBatch(number, rows, batch_dir(name, number), {metric_names.N_LABELED: 0.0}, None, len(carried))

    test = class_folder(Path(project.test), classes) if project.test else []
    watched = stopping.stable_sample(files, params.stopping.stop_set, project.seed) if params.stopping.stop_set else []
    parts = {
        "carried": [root / f for f in carried],
        "candidates": [root / f for f in candidates],
        "test": [path for path, _ in test],
        "watched": [root / f for f in watched],
    }
    trained = rounds.train_round(project, params, known, parts, number)

    picked = []  # (image, probabilities, score), in the batch's order
    if carried:
        proba = trained.proba("carried")
        picked += zip(carried, proba, score(project.strategy, proba, None))
    if n:
        selection = rounds.pick(trained, project, params, "candidates", n)
        picks, inputs = selection.picks, selection.inputs
        proba = (
            inputs.proba[picks]
            if inputs.proba is not None
            else trained.cnn.infer(trained.pixels, trained.rows["candidates"][picks]).proba
        )
        mc_proba = inputs.mc_proba[picks] if inputs.mc_proba is not None else None
        scores = score(project.strategy, proba, mc_proba, first=len(carried) + 1)
        picked += zip([candidates[p] for p in picks], proba, scores)
    rows = [
        BatchRow(i + 1, image, classes[int(p.argmax())], float(s), float(p.max()))
        for i, (image, p, s) in enumerate(picked)
    ]
    metrics = rounds.round_metrics(trained, known, test)
    watch = {}
    if watched:
        predicted = trained.proba("watched").argmax(axis=1)
        watch = watch_stop_set({path: classes[int(c)] for path, c in zip(watched, predicted)}, batches)
        if watch["agreements"][-1] is not None:
            metrics[metric_names.metric_name(metric_names.STOPPING, "kappa")] = watch["agreements"][-1]
    return NextBatch(number, rows, batch_dir(name, number), metrics, trained.cnn.model, len(carried), watch)


def stopping_note(watch: dict, settings) -> str:
    """One line for the page: how far successive models agree, and what the criterion says."""
    kappa, size = watch["agreements"][-1], len(watch["predicted"])
    if kappa is None:
        return f"When to stop: the next batch's model will be compared with this one on {size} unlabelled images."
    run = stopping.stable_run(watch["agreements"], settings.threshold)
    verdict = (
        "predictions have stabilised: more labels are unlikely to change them much; you could stop here"
        if run >= settings.window
        else f"stop once it stays at or above {settings.threshold:g} for {settings.window} batches in a row "
        f"({run} so far)"
    )
    return (
        f"When to stop: this batch's model agrees with the previous one on {size} unlabelled images at "
        f"Cohen's kappa {kappa:.3f}; {verdict}."
    )


def write_batch(name: str, project: LabelProject, batch: NextBatch, params: Params) -> None:
    """The batch's files; the manifest last, since a batch counts as handed out once it is there."""
    if (batch.folder / "manifest.csv").exists():  # never rewrite what a person may be filling in
        raise PipelineError(f"{batch.folder / 'manifest.csv'}: already issued; it is never rewritten")
    batch.folder.mkdir(parents=True, exist_ok=True)
    url = project.image_url or local_files_url(Path(project.unlabelled), strict=False)
    with atomic_path(batch.folder / "tasks.json") as tmp:
        tmp.write_text(json.dumps(label_studio_tasks(batch.rows, url), indent=1))
    how = (
        "a random draw: no labels yet"
        if batch.model is None
        else f"picked by {project.strategy} from a CNN trained on "
        f"{int(batch.metrics[metric_names.N_LABELED])} labelled images"
    )
    if batch.carried:
        how += f"; the first {batch.carried} were issued before and are not labelled yet"
    if batch.watch:
        with atomic_path(batch.folder / STOP_FILE) as tmp:
            tmp.write_text(json.dumps(batch.watch, indent=1))
    write_label_page(
        batch.folder / "label.html",
        batch.rows,
        Path(project.unlabelled),
        list(project.classes),
        project=name,
        number=batch.number,
        title=f"{name}: batch {batch.number} ({len(batch.rows)} images)",
        intro=f"{how}. Label them here and save (or type into manifest.csv, or use Label Studio with "
        f"tasks.json), then: alstudy label import --project {name} <file>",
        stopping=stopping_note(batch.watch, params.stopping) if batch.watch else "",
    )
    write_manifest(batch.folder / "manifest.csv", batch.rows)


def import_labels(name: str, project: LabelProject, file: Path, relabel: bool) -> tuple[int, int, int]:
    """Add the file's labels to the project's labels file; return (new, already there, left unlabelled).

    Accepted: images of any issued batch, and, once the project has a live loop (`label serve`), any
    image of its unlabelled folder (batch 0), as Label Studio holds them all then."""
    batches = issued_batches(name)
    live = live_dir(name).is_dir()
    if not batches and not live:
        raise PipelineError(f"no batch issued for {name!r} yet; run `alstudy label next --project {name}` first")
    imported = read_import(file)
    issued = issued_images(batches)
    if live:
        issued = {**{image: 0 for image in image_files(Path(project.unlabelled))}, **issued}
    with labels_lock(name):
        existing = read_labels(labels_file(name))
        new = validate_import(imported, issued, list(project.classes), existing, relabel)
        if new:
            write_labels(labels_file(name), {**existing, **{label.path: label for label in new}})
    unlabelled = sum(1 for _, _, typed in imported if not typed)
    return len(new), len(imported) - len(new) - unlabelled, unlabelled
