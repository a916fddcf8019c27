"""The labelling loop's files: the labels file, query batches, and imports of a person's labels.

The labels file (CSV: path, label, batch) is the project's record of every label given,
appended to atomically, so `git log` of it is the labelling history. A batch is what
`next` asks a person to label: a manifest (CSV: row_id, path, suggested_label, confidence,
score, label) that the person fills in, in place or in a copy, and the same rows as a Label
Studio task file. `import` reads a filled manifest (as this tool, a spreadsheet or an
editor saved it) or a Label Studio export (JSON, "choices" results) and validates every
row against the batches issued and the class list before anything is written.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

from alstudy.errors import PipelineError
from alstudy.fileio import atomic_path, from_spreadsheet_cell, spreadsheet_cell

LABELS_HEADER = ["path", "label", "batch"]
MANIFEST_HEADER = ["row_id", "path", "suggested_label", "confidence", "score", "label"]
LABEL_CONTROL = "label"  # the name of the Choices control in the Label Studio project (docs/user-guide/labelling.md)


@dataclass(frozen=True)
class BatchRow:
    row_id: int  # the strategy's order: 1 is the image it wants labelled first
    path: str  # relative to the unlabelled folder
    suggested_label: str
    score: float  # the strategy's score (its uncertainty measure), or the order it picked in
    confidence: float = 0.0  # the model's probability of the suggested class


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
            raise PipelineError(
                f"{path}: expected the columns {','.join(LABELS_HEADER)}; "
                "restore it from git (`git checkout -- <file>`)"
            )
        labels = [
            Label(from_spreadsheet_cell(r["path"]), from_spreadsheet_cell(r["label"]), int(r["batch"])) for r in reader
        ]
        return {label.path: label for label in labels}


def write_labels(path: Path, labels: dict[str, Label]) -> None:
    """All labels, in one atomic replace: a crash leaves the old file or the new one, never half."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(LABELS_HEADER)
    for label in sorted(labels.values(), key=lambda item: (item.batch, item.path)):
        writer.writerow([spreadsheet_cell(label.path), spreadsheet_cell(label.label), label.batch])
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
            writer.writerow(
                [
                    row.row_id,
                    spreadsheet_cell(row.path),
                    spreadsheet_cell(row.suggested_label),
                    f"{row.confidence:.6f}",
                    f"{row.score:.6f}",
                    "",
                ]
            )


def label_studio_tasks(rows: list[BatchRow], image_url: str) -> list[dict]:
    """Label Studio tasks for the batch: the image, our row id and path, the strategy's order and score
    (fields the Data Manager sorts by), the suggestion (if any) as a prediction scored by the model's
    confidence."""
    return [
        {
            "data": {
                "image": f"{image_url.rstrip('/')}/{row.path}",
                "row_id": row.row_id,
                "path": row.path,
                "order": row.row_id,
                "strategy_score": row.score,
            },
            "predictions": [
                {
                    "model_version": "active-learning",
                    "score": row.confidence,
                    "result": [
                        {
                            "from_name": LABEL_CONTROL,
                            "to_name": "image",
                            "type": "choices",
                            "value": {"choices": [row.suggested_label]},
                        }
                    ],
                }
            ]
            if row.suggested_label
            else [],
        }
        for row in rows
    ]


# An import row: (where, for messages; path of the image; label as typed, "" for none).
ImportRow = tuple[str, str, str]
EXPECTED = "a filled-in manifest.csv, the labelling page's saved CSV, or a Label Studio export (JSON, JSON_MIN, CSV)"


def _text(path: Path) -> str:
    """The file as text; a spreadsheet's byte-order mark dropped, a binary file refused in one line."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PipelineError(f"{path}: not a text file; expected {EXPECTED}") from None


def _delimiter(header: str) -> str:
    """Comma, semicolon (LibreOffice and Excel in many locales) or tab: whichever the header uses most."""
    return max(",;\t", key=header.count)


def parse_manifest(path: Path) -> list[ImportRow]:
    """One row per image of a manifest CSV, as saved by this tool, a spreadsheet or a text editor."""
    text = _text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=_delimiter(text.partition("\n")[0]))
    fields = [(name or "").strip() for name in reader.fieldnames or []]
    reader.fieldnames = fields
    missing = {"path", "label"} - set(fields)
    if missing:
        raise PipelineError(
            f"{path}: not a batch manifest (no {', '.join(sorted(missing))} column); expected {EXPECTED}"
        )
    return [
        (f"{path}:{line}", from_spreadsheet_cell(image), from_spreadsheet_cell(typed))
        for line, row in enumerate(reader, start=2)
        for image, typed in [((row["path"] or "").strip(), (row["label"] or "").strip())]
        if image or typed
    ]  # blank lines are no rows


def _choices(value) -> list[str]:
    """The classes chosen in one result value: "Coat" (JSON_MIN, one choice) or {"choices": [...]}."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [str(c) for c in value.get("choices") or []]
    if isinstance(value, list):
        return [str(c) for c in value]
    return []


def _from_label_studio(path: Path) -> list[ImportRow]:
    """One row per task of a Label Studio export: JSON (tasks with "data" and "annotations", "choices"
    results) or JSON_MIN (one flat object per annotated task: the task's data fields and the control's
    name, `label`, holding the choice). Skipped and cancelled tasks have no label."""
    try:
        tasks = json.loads(_text(path))
    except json.JSONDecodeError as error:
        raise PipelineError(
            f"{path}: not valid JSON ({error.msg} at line {error.lineno}); export again from Label Studio as JSON"
        ) from None
    if not isinstance(tasks, list) or not all(isinstance(task, dict) for task in tasks):
        got = (
            type(tasks).__name__
            if not isinstance(tasks, list)
            else f"a list holding a {next(type(t).__name__ for t in tasks if not isinstance(t, dict))}"
        )
        raise PipelineError(
            f"{path}: expected a Label Studio export (JSON or JSON_MIN), a list of tasks (objects with "
            f'"data" and "annotations", or with "path" and "label"), got {got}'
        )
    rows = []
    for number, task in enumerate(tasks, start=1):
        where = f"{path}: task {task.get('id', number)}"
        if isinstance(task.get("data"), dict):  # JSON
            data = task["data"]
            annotations = [
                a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")
            ]
            choices = [
                c
                for a in annotations[-1:]
                for r in a.get("result") or []
                if isinstance(r, dict) and r.get("type") == "choices"
                for c in _choices(r.get("value"))
            ]
        else:  # JSON_MIN: the task's fields at the top, the choice under the control's name
            data, choices = task, _choices(task.get(LABEL_CONTROL))
        if "path" not in data:
            raise PipelineError(f"{where}: has no path field; import tasks from the tasks.json `next` wrote")
        if len(choices) > 1:
            raise PipelineError(f"{where}: {len(choices)} choices ({', '.join(choices)}); give one label per image")
        rows.append((where, str(data["path"]), choices[0].strip() if choices else ""))
    return rows


def read_import(path: Path) -> list[ImportRow]:
    if not path.is_file():
        raise PipelineError(f"{path}: no such file; expected {EXPECTED}")
    return _from_label_studio(path) if path.suffix.lower() == ".json" else parse_manifest(path)


def class_lookup(classes: list[str]) -> dict[str, str]:
    """Label as typed -> the project's spelling: exact, else ignoring case (when that is unambiguous)."""
    folded: dict[str, list[str]] = {}
    for name in classes:
        folded.setdefault(name.casefold(), []).append(name)
    lookup = {key: names[0] for key, names in folded.items() if len(names) == 1}
    lookup.update({name: name for name in classes})
    return lookup


def validate_import(
    rows: list[ImportRow], issued: dict[str, int], classes: list[str], existing: dict[str, Label], relabel: bool
) -> list[Label]:
    """The new labels in `rows`; one line naming the row for the first problem found.

    `issued` maps every image the tool asked a person to label to its latest batch: a label for
    any of them is accepted, whatever changed since. Rows without a label are left for a later
    batch; an image twice in the file counts once, unless its two labels differ. A row already imported
    with the same label is skipped (importing twice adds nothing);
    a different label for an image already labelled needs `relabel`."""
    lookup = class_lookup(classes)
    given: dict[str, str] = {}  # image -> its label in this file
    new: list[Label] = []
    for where, image, typed in rows:
        if image not in issued:
            raise PipelineError(
                f"{where}: image {image!r} is not in any batch issued for this project (nor, with a live loop, "
                "in its unlabelled folder); import a file made for one of its batches"
            )
        if not typed:
            continue
        label = lookup.get(typed, lookup.get(typed.casefold()))
        if label is None:
            raise PipelineError(
                f"{where}: {typed!r} is not a class of this project ({', '.join(classes)}); "
                "fix the label or add the class to label.classes"
            )
        # An image may stand in the file more than once (a Label Studio project holding the batch that
        # skipped it and the batch that asked again): one label, or the same one twice, is fine.
        if image in given:
            if given[image] != label:
                raise PipelineError(
                    f"{where}: {image} is labelled twice in this file, {given[image]!r} and {label!r}; keep one"
                )
            continue
        given[image] = label
        before = existing.get(image)
        if before is not None and before.label == label:
            continue
        if before is not None and not relabel:
            raise PipelineError(f"{where}: {image} is already labelled {before.label!r}; pass --relabel to change it")
        new.append(Label(image, label, issued[image]))
    return new
