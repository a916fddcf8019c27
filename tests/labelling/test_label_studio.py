"""`alstudy label push` / `pull` against a real Label Studio (from PyPI, in its own virtual environment,
started on 127.0.0.1): one Label Studio project for the whole labelling project, images that display,
the suggestion as a scored prediction, skipped tasks back in the next batch, nothing lost."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import requests
from services import label_studio

from alstudy.errors import PipelineError
from helpers import LABEL_CLASSES as CLASSES
from helpers import label, make_label_project

pytestmark = [pytest.mark.slow, pytest.mark.label_studio]


class Person:
    """Someone labelling in Label Studio, through the same HTTP API its page uses."""

    def __init__(self, url: str, token: str):
        access = requests.post(f"{url}/api/token/refresh", json={"refresh": token}, timeout=30).json()["access"]
        self.url, self.session = url, requests.Session()
        self.session.headers["Authorization"] = f"Bearer {access}"

    def get(self, path: str, **params):
        answer = self.session.get(self.url + path, params=params, timeout=30)
        answer.raise_for_status()
        return answer

    def project(self) -> dict:
        (project,) = [p for p in self.get("/api/projects").json()["results"] if p["title"] == "alstudy: parts"]
        return project

    def tasks(self) -> list[dict]:
        return self.get("/api/tasks", project=self.project()["id"], page_size=1000, fields="all").json()["tasks"]

    def choose(self, task: dict, label: str) -> None:
        result = [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [label]}}]
        self.session.post(f"{self.url}/api/tasks/{task['id']}/annotations", json={"result": result}).raise_for_status()

    def skip(self, task: dict) -> None:
        body = {"result": [], "was_cancelled": True}
        self.session.post(f"{self.url}/api/tasks/{task['id']}/annotations", json=body).raise_for_status()


def labels_of(project: Path) -> dict[str, str]:
    with open(project / "labels/parts.csv", newline="") as stream:
        return {row["path"]: row["label"] for row in csv.DictReader(stream)}


def test_push_and_pull_through_one_label_studio_project(tmp_path, monkeypatch):
    project, truth = make_label_project(tmp_path)
    monkeypatch.setenv("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", str(tmp_path))
    with label_studio(tmp_path, document_root=tmp_path) as (url, token):
        monkeypatch.setenv("LABEL_STUDIO_URL", url)
        monkeypatch.setenv("LABEL_STUDIO_API_KEY", token)
        person = Person(url, token)

        label(project, monkeypatch, "next")  # batch 1: a random draw, no suggestions
        label(project, monkeypatch, "push")
        tasks = person.tasks()
        assert len(tasks) == 6 and all(not t["predictions"] for t in tasks)
        # The images display: Label Studio serves each task's image from the folder.
        image = person.get(tasks[0]["data"]["image"].removeprefix(url))
        assert image.headers["content-type"].startswith("image/") and image.content[:4] in (
            b"\x89PNG",
            b"\xff\xd8\xff\xe0",
        )
        for task in tasks[1:]:
            person.choose(task, truth[task["data"]["path"]].upper())  # any case: stored in the project's spelling
        person.skip(tasks[0])
        label(project, monkeypatch, "pull")
        assert labels_of(project) == {t["data"]["path"]: truth[t["data"]["path"]] for t in tasks[1:]}

        label(project, monkeypatch, "next")  # batch 2: the skipped image first, then margin's picks
        label(project, monkeypatch, "push")  # the same Label Studio project
        tasks = person.tasks()
        assert len(person.get("/api/projects").json()["results"]) == 1 and len(tasks) == 11
        new = [t for t in tasks if t["predictions"]]
        assert len(new) == 5
        for task in new:
            (prediction,) = task["predictions"]
            assert 1 / len(CLASSES) <= prediction["score"] <= 1  # the model's confidence, not the strategy's score
            assert prediction["result"][0]["value"]["choices"][0] in CLASSES
        assert sorted(t["data"]["order"] for t in new) == [2, 3, 4, 5, 6]  # row 1 is the skipped image
        for task in new:
            person.choose(task, truth[task["data"]["path"]])
        person.choose(tasks[0], truth[tasks[0]["data"]["path"]])  # the skipped one, labelled now
        label(project, monkeypatch, "pull")  # the export holds batch 1's tasks too: imported once
        labels = labels_of(project)
        assert len(labels) == 11 and all(labels[p] == truth[p] for p in labels)

        monkeypatch.setenv("LABEL_STUDIO_API_KEY", "not-a-token")
        with pytest.raises(PipelineError, match="refused the token"):
            label(project, monkeypatch, "pull")
    with pytest.raises(PipelineError, match="is not reachable"):
        label(project, monkeypatch, "pull", "--token", token)
