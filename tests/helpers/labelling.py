"""A labelling project on real image files, and the `alstudy label` command run in it."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from helpers.images import FOLDER_CLASSES, make_image_folder
from helpers.repo import REPO_ROOT, machine_precision
from helpers.runs import empty_store

LABEL_CLASSES = list(FOLDER_CLASSES)


def make_label_project(root: Path, per_class: int = 14, batch_size: int = 6) -> tuple[Path, dict[str, str]]:
    """An unlabelled flat folder (the truth kept aside), a labelled test folder, params.yaml."""
    source = make_image_folder(root / "source", per_class=per_class, classes=tuple(LABEL_CLASSES))
    unlabelled = root / "project/data/unlabelled"
    unlabelled.mkdir(parents=True)
    truth = {}
    for i, path in enumerate(sorted(source.rglob("*.*"))):
        name = f"{i:04d}{path.suffix}"
        shutil.copy(path, unlabelled / name)
        truth[name] = path.parent.name
    make_image_folder(root / "project/data/test", per_class=4, seed=7, classes=tuple(LABEL_CLASSES))
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["model"].update(precision=machine_precision())
    params["model"].update(filters=[4, 8, 8], dense_units=16, epochs=3, batch_size=8, predict_batch_size=64)
    params["label"] = {
        "projects": {
            "parts": {
                "unlabelled": "data/unlabelled",
                "classes": LABEL_CLASSES,
                "strategy": "margin",
                "batch_size": batch_size,
                "image_size": [16, 16],
                "color_mode": "rgb",
                "test": "data/test",
            }
        }
    }
    (root / "project/params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root / "project", truth


def label(project: Path, monkeypatch, *args: str) -> None:
    from stages import label as stage

    empty_store(project / "mlflow.db")
    monkeypatch.chdir(project)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlflow.db'}")
    stage.main(list(args))
