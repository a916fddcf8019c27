"""The labelling loop's files: the labels file, query batches, and imports of a person's labels.

The labels file (CSV: path, label, batch) is the project's record of every label given,
appended to atomically, so `git log` of it is the labelling history. A batch is what
`next` asks a person to label: a manifest (CSV: row_id, path, suggested_label, score)
that the person fills in, and the same rows as a Label Studio task file. `import` reads
the filled manifest or a Label Studio export (JSON, "choices" results) and validates
every row against the batch and the class list before anything is written.
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.fileio import atomic_path

LABELS_HEADER = ["path", "label", "batch"]
MANIFEST_HEADER = ["row_id", "path", "suggested_label", "score", "label"]


@dataclass(frozen=True)
class BatchRow:
    row_id: int
    path: str              # relative to the unlabelled folder
    suggested_label: str
    score: float


@dataclass(frozen=True)
class Label:
    path: str
    label: str
    batch: int


def read_labels(path: Path) -> dict[str, Label]:
    """The labels given so far, by image path (empty when the file does not exist yet)."""
    if not path.exists():
        return {}
    with open(path, newline="") as stream:
        reader = csv.DictReader(stream)
        if reader.fieldnames != LABELS_HEADER:
            raise PipelineError(f"{path}: expected the columns {','.join(LABELS_HEADER)}; "
                                "restore it from git (`git checkout -- <file>`)")
        return {row["path"]: Label(row["path"], row["label"], int(row["batch"])) for row in reader}


def write_labels(path: Path, labels: dict[str, Label]) -> None:
    """All labels, in one atomic replace: a crash leaves the old file or the new one, never half."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(LABELS_HEADER)
    for label in sorted(labels.values(), key=lambda item: (item.batch, item.path)):
        writer.writerow([label.path, label.label, label.batch])
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as stream:
            stream.write(buffer.getvalue())
            stream.flush()
            os.fsync(stream.fileno())


def write_manifest(path: Path, rows: list[BatchRow]) -> None:
    """The batch as a CSV for a person: fill in the `label` column (or accept the suggestion)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(MANIFEST_HEADER)
        for row in rows:
            writer.writerow([row.row_id, row.path, row.suggested_label, f"{row.score:.6f}", ""])


def read_batch(path: Path) -> list[BatchRow]:
    with open(path, newline="") as stream:
        return [BatchRow(int(r["row_id"]), r["path"], r["suggested_label"], float(r["score"]))
                for r in csv.DictReader(stream)]


def label_studio_tasks(rows: list[BatchRow], image_url: str) -> list[dict]:
    """Label Studio tasks for the batch: the image, our row id and path, the suggestion as a prediction."""
    return [{"data": {"image": f"{image_url.rstrip('/')}/{row.path}", "row_id": row.row_id, "path": row.path},
             "predictions": [{"model_version": "active-learning", "score": row.score,
                              "result": [{"from_name": "label", "to_name": "image", "type": "choices",
                                          "value": {"choices": [row.suggested_label]}}]}]}
            for row in rows]


def _from_manifest(path: Path) -> list[tuple[str, int, str, str]]:
    """(where, row_id, path, label) per filled-in row of a manifest CSV."""
    with open(path, newline="") as stream:
        reader = csv.DictReader(stream)
        missing = {"row_id", "path", "label"} - set(reader.fieldnames or [])
        if missing:
            raise PipelineError(f"{path}: not a batch manifest (no {', '.join(sorted(missing))} column); "
                                "import the manifest.csv that `next` wrote, filled in")
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                row_id = int(row["row_id"])
            except (TypeError, ValueError):
                raise PipelineError(f"{path}:{line}: row_id {row['row_id']!r} is not a number; "
                                    "keep the manifest's row ids") from None
            rows.append((f"{path}:{line} (row {row_id})", row_id, row["path"], (row["label"] or "").strip()))
        return rows


def _from_label_studio(path: Path) -> list[tuple[str, int, str, str]]:
    """(where, row_id, path, label) per task of a Label Studio JSON export with "choices" results."""
    try:
        tasks = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise PipelineError(f"{path}: not valid JSON ({error.msg} at line {error.lineno}); "
                            "export again from Label Studio as JSON") from None
    if not isinstance(tasks, list):
        raise PipelineError(f"{path}: expected Label Studio's JSON export (a list of tasks)")
    rows = []
    for task in tasks:
        data = task.get("data", {})
        where = f"{path}: task {task.get('id', '?')} (row {data.get('row_id', '?')})"
        if "row_id" not in data:
            raise PipelineError(f"{where}: has no row_id; import tasks from the file `next` wrote (tasks.json)")
        annotations = [a for a in task.get("annotations", []) if not a.get("was_cancelled")]
        choices = [c for a in annotations[-1:] for r in a.get("result", [])
                   if r.get("type") == "choices" for c in r.get("value", {}).get("choices", [])]
        if len(choices) > 1:
            raise PipelineError(f"{where}: {len(choices)} choices ({', '.join(choices)}); give one label per image")
        rows.append((where, int(data["row_id"]), data.get("path", ""), choices[0] if choices else ""))
    return rows


def read_import(path: Path) -> list[tuple[str, int, str, str]]:
    if not path.is_file():
        raise PipelineError(f"{path}: no such file; give the filled-in manifest.csv or a Label Studio JSON export")
    return _from_label_studio(path) if path.suffix.lower() == ".json" else _from_manifest(path)


def validate_import(rows: list[tuple[str, int, str, str]], batch: list[BatchRow], batch_number: int,
                    classes: list[str], existing: dict[str, Label], relabel: bool) -> list[Label]:
    """The new labels in `rows`; one line naming the row for the first problem found.

    A row already imported with the same label is skipped (importing twice adds nothing);
    a different label for an image already labelled needs `relabel`."""
    by_id = {row.row_id: row for row in batch}
    seen: set[int] = set()
    new: list[Label] = []
    for where, row_id, path, label in rows:
        if row_id not in by_id or (path and path != by_id[row_id].path):
            raise PipelineError(f"{where}: image {path or row_id!r} is not in the current batch {batch_number}; "
                                "import the file made for this batch")
        if row_id in seen:
            raise PipelineError(f"{where}: labelled twice in this file; keep one row per image")
        seen.add(row_id)
        if not label:
            raise PipelineError(f"{where}: no label for {by_id[row_id].path}; fill in the label column "
                                f"(one of: {', '.join(classes)})")
        if label not in classes:
            raise PipelineError(f"{where}: {label!r} is not a class of this project ({', '.join(classes)}); "
                                "fix the label or add the class to label.classes")
        image = by_id[row_id].path
        before = existing.get(image)
        if before is not None and before.label == label:
            continue
        if before is not None and not relabel:
            raise PipelineError(f"{where}: {image} is already labelled {before.label!r}; "
                                "pass --relabel to change it")
        new.append(Label(image, label, batch_number))
    return new
