"""Metric names as MLflow stores them and its UI groups them: `f1/<class>`, `queried/<class>`, `time/<what>`.

MLflow's chart view puts a metric whose name has a `/` into the section named by the
part before it, so a name says both what it is and where it is shown. The headline
per-round metrics (`accuracy`, `balanced_accuracy`, `f1_macro`, `n_labeled`) have no
group. Class names come from the data (meta.json; an image folder's are whatever its
user named the folders), and MLflow refuses names with most punctuation, while a `/`
inside a class name ("T-shirt/top") would open a section of its own. So each class
gets a key, made here and only here, and the run's tag CLASS_KEYS_TAG records which
class each key stands for.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Sequence

N_LABELED = "n_labeled"  # images labelled so far: a study round's step, a labelling batch's step
F1 = "f1"  # per-class F1 on the test set, per round
QUERIED = "queried"  # per-class count of the images a round labelled
LABELLED = "labelled"  # a labelling project: per-class count of the images labelled so far
TIME = "time"  # seconds spent, per round
STOPPING = "stopping"  # the stopping criterion: agreement of successive models (stopping/kappa)
SUMMARY = "summary"  # a study's parent run: its summary and verdict metrics

CLASS_KEYS_TAG = "class_keys"
MAX_KEY = 80  # well under MLflow's 250-character limit on a metric name, group included


def metric_name(group: str, name: str) -> str:
    """`<group>/<name>`: the chart view shows it under the section `<group>`."""
    return f"{group}/{name}"


def class_keys(class_names: Sequence[str], n_classes: int | None = None) -> list[str]:
    """One key per class, in class order: lower-case ASCII letters and digits, anything else as one `_`.

    "Ankle boot" -> ankle_boot, "T-shirt/top" -> t_shirt_top, "Café" -> cafe. A name with nothing left
    (or a class without a name) becomes class_<i>; a key another class already took gets _<i> appended."""
    n = len(class_names) if n_classes is None else n_classes
    keys: list[str] = []
    for i in range(n):
        name = class_names[i] if i < len(class_names) else ""
        ascii_name = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
        key = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")[:MAX_KEY] or f"class_{i}"
        while key in keys:
            key = f"{key}_{i}"
        keys.append(key)
    return keys


def class_tags(class_names: Sequence[str], n_classes: int | None = None) -> dict[str, str]:
    """The run's tag mapping each class key to the class's own name, in class order (JSON)."""
    keys = class_keys(class_names, n_classes)
    names = [class_names[i] if i < len(class_names) else "" for i in range(len(keys))]
    return {CLASS_KEYS_TAG: json.dumps(dict(zip(keys, names)), ensure_ascii=False)}


def per_class(group: str, keys: Sequence[str], values: Sequence[float]) -> dict[str, float]:
    """`<group>/<key>` for each class's value."""
    if len(keys) != len(values):
        raise ValueError(f"{group}: {len(values)} values for {len(keys)} classes")
    return {metric_name(group, key): float(value) for key, value in zip(keys, values)}
