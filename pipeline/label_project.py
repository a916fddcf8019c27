"""A labelling project's two steps: `next` (which images to label now) and `import` (the labels given).

`next` trains the project's CNN on the labels so far, scores the images not labelled yet with
the project's strategy and writes batch <n> for a person: manifest.csv, tasks.json (Label
Studio) and contact_sheet.html, under labelling/<project>/batch-<n>/. With no labels yet the
first batch is a seeded random draw. A batch never imported is simply asked again: batch n is
always "one more than the last batch with labels". Each `next` is step n of the project's
MLflow run: labelled count, class mix, test metrics (with a test folder) and the model.

`import` checks every row of the filled-in manifest or Label Studio export against batch n
and the classes, then rewrites labels/<project>.csv in one atomic replace.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import strategies
from pipeline.contact_sheet import write_contact_sheet
from pipeline.errors import PipelineError
from pipeline.evaluation import evaluate
from pipeline.fileio import atomic_path
from pipeline.image_folder import list_images, load_image
from pipeline.labelling import (BatchRow, Label, label_studio_tasks, read_batch, read_import, read_labels,
                                validate_import, write_labels, write_manifest)
from pipeline.loop import MC_DROPOUT, round_rng, round_seed, strategy_inputs
from pipeline.params import LabelProject, Params
from pipeline.preprocess import Split, one_hot, scale_images

log = logging.getLogger("label")
LABELS_DIR, BATCHES_DIR = Path("labels"), Path("labelling")


@dataclass(frozen=True)
class NextBatch:
    number: int
    rows: list[BatchRow]
    folder: Path
    metrics: dict[str, float]
    model: object | None  # the trained keras model, or None for a random first batch


def labels_file(name: str) -> Path:
    return LABELS_DIR / f"{name}.csv"


def batch_dir(name: str, number: int) -> Path:
    return BATCHES_DIR / name / f"batch-{number:03d}"


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


def score(strategy: str, proba: np.ndarray, mc_proba: np.ndarray | None, picks: np.ndarray) -> np.ndarray:
    """Each pick's score under the strategy: its uncertainty where the strategy ranks by one, else
    the order of picking (1 = first), for strategies that build a batch rather than rank images."""
    top2 = np.sort(proba, axis=1)[:, -2:]
    per_image = {"least_confidence": 1.0 - top2[:, 1], "uncertainty": 1.0 - top2[:, 1],
                 "margin": top2[:, 1] - top2[:, 0], "entropy": strategies.entropy(proba)}
    if mc_proba is not None:
        mc = mc_proba.astype(np.float64)
        per_image["bald"] = strategies.entropy(mc.mean(axis=2)) - strategies.entropy(mc, axis=1).mean(axis=1)
    if strategy in per_image:
        return per_image[strategy][picks]
    return np.arange(1, len(picks) + 1, dtype=np.float64)


def next_batch(name: str, project: LabelProject, params: Params) -> NextBatch:
    from pipeline.model import CNN  # TensorFlow only where a model is trained

    root = Path(project.unlabelled)
    labels = read_labels(labels_file(name))
    number = max((label.batch for label in labels.values()), default=0) + 1
    files = image_files(root)
    candidates = [f for f in files if f not in labels]
    if not candidates:
        raise PipelineError(f"{root}: every image is labelled ({len(files)}); add images to label more")
    n = min(project.batch_size, len(candidates))
    rng = round_rng(project.seed, number)
    classes = list(project.classes)
    known = [(root / path, label.label) for path, label in labels.items()]
    if project.labelled:
        known += class_folder(Path(project.labelled), classes)

    if not known:  # nothing to learn from yet: a seeded random first batch
        picks = np.sort(rng.choice(len(candidates), size=n, replace=False))
        rows = [BatchRow(i + 1, candidates[p], "", 0.0) for i, p in enumerate(picks)]
        return NextBatch(number, rows, batch_dir(name, number), {"n_labelled": 0.0}, None)

    size, mode = project.image_size, project.color_mode
    images = scale_images(np.stack([load_image(path, size, mode) for path, _ in known] +
                                   [load_image(root / f, size, mode) for f in candidates]))
    labels_idx = np.array([classes.index(c) for _, c in known])
    y = np.zeros((len(images), len(classes)), np.float32)
    y[:len(known)] = one_hot(labels_idx, len(classes))
    pool = Split(images, y)
    seed = round_seed(project.seed, number)
    cnn = CNN(images.shape[1:], len(classes), params.model)
    cnn.reinitialize(seed)
    cnn.fit(images[:len(known)], y[:len(known)], seed)
    spec = strategies.get(project.strategy)
    options = params.al.options(project.strategy)
    cand_idx = np.arange(len(known), len(images))
    inputs = strategy_inputs(spec, options, cnn, pool, list(range(len(known))), cand_idx, n, rng,
                             round_seed(project.seed, number, MC_DROPOUT))
    picks = np.asarray(spec.select(inputs))
    proba = inputs.proba if inputs.proba is not None else cnn.predict_proba(pool.x, cand_idx)
    scores = score(project.strategy, proba, inputs.mc_proba, picks)
    rows = [BatchRow(i + 1, candidates[p], classes[int(proba[p].argmax())], float(s))
            for i, (p, s) in enumerate(zip(picks, scores))]
    metrics = {"n_labelled": float(len(known)),
               **{f"labelled_class_{c}": float(np.sum(labels_idx == c)) for c in range(len(classes))}}
    if project.test:
        test = class_folder(Path(project.test), classes)
        x_test = scale_images(np.stack([load_image(p, size, mode) for p, _ in test]))
        truth = np.array([classes.index(c) for _, c in test])
        scores_test = evaluate(truth, cnn.predict_proba(x_test).argmax(axis=1), len(classes))
        metrics.update(test_accuracy=scores_test["accuracy"], test_f1_macro=scores_test["f1_macro"])
    return NextBatch(number, rows, batch_dir(name, number), metrics, cnn.model)


def write_batch(name: str, project: LabelProject, batch: NextBatch) -> None:
    batch.folder.mkdir(parents=True, exist_ok=True)
    write_manifest(batch.folder / "manifest.csv", batch.rows)
    url = project.image_url or f"/data/local-files/?d={Path(project.unlabelled).resolve().relative_to('/')}"
    with atomic_path(batch.folder / "tasks.json") as tmp:
        tmp.write_text(json.dumps(label_studio_tasks(batch.rows, url), indent=1))
    how = ("a random first batch: no labels yet" if batch.model is None else
           f"picked by {project.strategy} from a CNN trained on {int(batch.metrics['n_labelled'])} labelled images")
    write_contact_sheet(batch.folder / "contact_sheet.html", batch.rows, Path(project.unlabelled),
                        f"{name}: batch {batch.number} ({len(batch.rows)} images)",
                        f"{how}. Label them in manifest.csv (the label column) or in Label Studio (tasks.json), "
                        f"then: python -m stages.label import --project {name} <file>")


def current_batch(name: str) -> tuple[int, list[BatchRow]]:
    folders = sorted((BATCHES_DIR / name).glob("batch-[0-9][0-9][0-9]"))
    if not folders:
        raise PipelineError(f"no batch to import into for {name!r}; run `python -m stages.label next --project {name}` first")
    return int(folders[-1].name.split("-")[1]), read_batch(folders[-1] / "manifest.csv")


def import_labels(name: str, project: LabelProject, file: Path, relabel: bool) -> tuple[int, int]:
    """Append the file's labels to the project's labels file; return (new, already there)."""
    number, rows = current_batch(name)
    imported = read_import(file)
    existing = read_labels(labels_file(name))
    new = validate_import(imported, rows, number, list(project.classes), existing, relabel)
    merged: dict[str, Label] = {**existing, **{label.path: label for label in new}}
    if new:
        write_labels(labels_file(name), merged)
    return len(new), len(imported) - len(new)
