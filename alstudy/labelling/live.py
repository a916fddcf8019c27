"""The live loop's state, kept apart from its HTTP server: rankings, and annotations coming in.

A *ranking* is what one round of the project's model says of every image not labelled yet
(alstudy/labelling/rounds.py `rank_all`): the suggested class, the model's confidence in it and the
strategy's priority (higher: label sooner). The live backend answers Label Studio's prediction
requests from the latest ranking on disk, so a request is a dictionary lookup; a round writes a new
ranking in one atomic replace (labelling/<project>/live/ranking.jsonl), so a killed round leaves the
previous one whole. Before the first label, the ranking is a seeded random draw, as `label next`'s
first batch is.

Annotations are read from Label Studio's tasks (a task's latest annotation, skips and cancelled ones
aside) and added to labels/<project>.csv under the labels file's lock, so `label next`, `import` and
the page stay usable beside the backend. A label already in the labels file wins over a different
one in Label Studio (a warning names the image), as with `label pull`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse
from xml.etree import ElementTree

from alstudy.fileio import atomic_path
from alstudy.labelling.batches import LABEL_CONTROL, Label, class_lookup, read_labels, write_labels
from alstudy.labelling.label_studio import DOCUMENT_ROOT_ENV, chosen, latest_annotation
from alstudy.labelling.project import (
    image_files,
    issued_batches,
    issued_images,
    labels_file,
    labels_lock,
)
from alstudy.learning.loop import round_rng
from alstudy.params import LabelProject

log = logging.getLogger("label")
RANKING = "ranking.jsonl"


@dataclass(frozen=True)
class Ranking:
    """One round's view of the unlabelled images: path -> (suggested class or "", confidence, priority)."""

    version: str
    round: int
    n_labelled: int
    images: dict[str, tuple[str, float, float]]

    def save(self, folder: Path) -> None:
        """One JSON line for the round, then one per image: read back a line at a time, so that loading
        100,000 images never holds the interpreter for long while the backend answers requests."""
        head = {"version": self.version, "round": self.round, "n_labelled": self.n_labelled}
        with atomic_path(folder / RANKING) as tmp, open(tmp, "w") as stream:
            stream.write(json.dumps(head) + "\n")
            for path, (suggested, confidence, priority) in self.images.items():
                stream.write(json.dumps([path, suggested, confidence, priority]) + "\n")

    @staticmethod
    def round_on_disk(folder: Path) -> int | None:
        """The round of the ranking on disk, from its first line only."""
        try:
            with open(folder / RANKING) as stream:
                return int(json.loads(stream.readline())["round"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @classmethod
    def load(cls, folder: Path) -> Ranking | None:
        try:
            with open(folder / RANKING) as stream:
                head = json.loads(stream.readline())
                images = {}
                for line in stream:
                    path, suggested, confidence, priority = json.loads(line)
                    images[str(path)] = (str(suggested), float(confidence), float(priority))
            return cls(str(head["version"]), int(head["round"]), int(head["n_labelled"]), images)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("%s: unreadable, so it is made again by the next round", folder / RANKING)
            return None


def model_version(name: str, round_: int) -> str:
    return f"alstudy-{name}-round-{round_}" if round_ else f"alstudy-{name}-random"


def random_ranking(name: str, project: LabelProject) -> Ranking:
    """Before any label: a seeded random priority, so 'sort by score, label the top' is a random draw."""
    files = image_files(Path(project.unlabelled))
    priority = round_rng(project.seed, 0).random(len(files))
    return Ranking(model_version(name, 0), 0, 0, {f: ("", 0.0, float(p)) for f, p in zip(files, priority)})


def control_names(label_config: str | None) -> tuple[str, str]:
    """(from_name, to_name) of the first Choices control of a Label Studio labelling config."""
    if label_config:
        try:
            for element in ElementTree.fromstring(label_config).iter("Choices"):
                if element.get("name") and element.get("toName"):
                    return element.get("name"), element.get("toName")
        except ElementTree.ParseError:
            pass
    return LABEL_CONTROL, "image"


def task_image(task: dict, unlabelled: Path) -> str | None:
    """The path, relative to the unlabelled folder, of a task's image: the `path` alstudy's tasks carry,
    else the file a local-files URL (/data/local-files/?d=...) names under the document root."""
    data = task.get("data") if isinstance(task, dict) else None
    if not isinstance(data, dict):
        return None
    if data.get("path"):
        return str(data["path"])
    url = str(data.get("image") or "")
    found = parse_qs(urlparse(url).query).get("d")
    if not found:
        return None
    root = Path(os.environ.get(DOCUMENT_ROOT_ENV) or "/").resolve()
    file = (root / found[0]).resolve()  # parse_qs has decoded it: once more would misread a literal %
    folder = Path(unlabelled).resolve()
    return str(file.relative_to(folder)) if file.is_relative_to(folder) else None


def prediction(ranking: Ranking | None, image: str | None, controls: tuple[str, str]) -> dict:
    """Label Studio's prediction for one task: the suggestion scored by the model's confidence, the
    prediction scored by the strategy's priority (the Data Manager's "Prediction score" column)."""
    if ranking is None or image is None or image not in ranking.images:
        return {"result": [], "score": 0.0, "model_version": ranking.version if ranking else "alstudy-none"}
    suggested, confidence, priority = ranking.images[image]
    result = []
    if suggested:
        from_name, to_name = controls
        value = {"choices": [suggested]}
        result = [{"from_name": from_name, "to_name": to_name, "type": "choices", "value": value, "score": confidence}]
    return {"result": result, "score": priority, "model_version": ranking.version}


_SPACE = re.compile(r"\s+")


def record_annotations(name: str, project: LabelProject, tasks: list[dict]) -> int:
    """Add the tasks' latest annotations to the labels file; return how many labels were new.

    An image outside the unlabelled folder, a class the project does not have, or a label that
    disagrees with the labels file is named in one warning and left out."""
    lookup, unlabelled = class_lookup(list(project.classes)), Path(project.unlabelled)
    with labels_lock(name):
        labels = read_labels(labels_file(name))
        issued = issued_images(issued_batches(name))
        new: dict[str, Label] = {}
        for task in tasks:
            latest = latest_annotation(task) if isinstance(task, dict) else None
            if latest is None:
                continue
            image = task_image(task, unlabelled)
            choices = [_SPACE.sub(" ", c).strip() for c in chosen(latest)]
            if image is None:
                log.warning(
                    "%s: Label Studio task %s is not an image of %s; not recorded", name, task.get("id"), unlabelled
                )
                continue
            if len(choices) != 1:
                continue  # an annotation without one class: nothing to learn from
            label = lookup.get(choices[0], lookup.get(choices[0].casefold()))
            if label is None:
                log.warning(
                    "%s: %r (Label Studio task %s, %s) is not a class of this project (%s); not recorded",
                    name,
                    choices[0],
                    task.get("id"),
                    image,
                    ", ".join(project.classes),
                )
                continue
            before = labels.get(image)
            if before is not None:
                if before.label != label:
                    log.warning(
                        "%s: %s is %r in Label Studio (task %s) but %r in %s (kept); to take Label Studio's: "
                        "alstudy label pull --project %s --relabel",
                        name,
                        image,
                        label,
                        task.get("id"),
                        before.label,
                        labels_file(name),
                        name,
                    )
                continue
            new[image] = Label(image, label, issued.get(image, 0))
        if new:
            write_labels(labels_file(name), {**labels, **new})
    return len(new)
