"""`alstudy label push` / `pull` against a real Label Studio (from PyPI, in its own virtual environment,
started on 127.0.0.1, once for the module): one Label Studio project for the whole labelling project,
images that display (whatever their names), a document root that differs refused before anything is
sent and the links of an older push corrected, the suggestion as a scored prediction, skipped tasks back
in the next batch, labels given elsewhere shown there, the latest annotation taken, a disagreement
reported while the rest is imported: nothing lost. And the live loop: the project as Label Studio's ML
backend (`label serve`), connected by `label push --all --backend`, retraining as a person labels,
killed mid-round and started again."""

from __future__ import annotations

import csv
import json
import logging
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import yaml
from mlflow.tracking import MlflowClient
from PIL import Image
from services import free_port, label_studio

from alstudy.errors import PipelineError
from alstudy.labelling.batches import BatchRow, label_studio_tasks, write_manifest
from alstudy.labelling.label_studio import DOCUMENT_ROOT_ENV, MARK, LabelStudio
from helpers.labelling import LABEL_CLASSES as CLASSES
from helpers.labelling import label, make_label_project
from helpers.runs import empty_store

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

    def projects(self) -> list[dict]:
        return self.get("/api/projects", page_size=100).json()["results"]

    def project(self) -> dict:
        (project,) = [p for p in self.projects() if p["title"] == "alstudy: parts"]
        return project

    def tasks(self) -> list[dict]:
        return self.get("/api/tasks", project=self.project()["id"], page_size=1000, fields="all").json()["tasks"]

    def tasks_by_path(self) -> dict[str, dict]:
        return {task["data"]["path"]: task for task in self.tasks()}

    def choose(self, task: dict, label: str) -> dict:
        result = [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [label]}}]
        answer = self.session.post(f"{self.url}/api/tasks/{task['id']}/annotations", json={"result": result})
        answer.raise_for_status()
        return answer.json()

    def change(self, annotation: dict, label: str) -> None:
        result = [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [label]}}]
        self.session.patch(f"{self.url}/api/annotations/{annotation['id']}", json={"result": result}).raise_for_status()

    def skip(self, task: dict) -> None:
        body = {"result": [], "was_cancelled": True}
        self.session.post(f"{self.url}/api/tasks/{task['id']}/annotations", json=body).raise_for_status()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One Label Studio for the module (a start takes about a minute on 2 cores), serving local files from
    pytest's base temporary folder, which holds every test's tmp_path."""
    root = tmp_path_factory.getbasetemp()
    with label_studio(tmp_path_factory.mktemp("label-studio"), document_root=root) as (url, token):
        yield url, token, root


@pytest.fixture
def studio(server, monkeypatch):
    """The module's Label Studio without projects, and a shell set up as the docs say: (url, token, the
    document root, a Person)."""
    url, token, root = server
    person = Person(url, token)
    for project in person.projects():
        person.session.delete(f"{url}/api/projects/{project['id']}/").raise_for_status()
    monkeypatch.setenv(DOCUMENT_ROOT_ENV, str(root))
    monkeypatch.setenv("LABEL_STUDIO_URL", url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", token)
    return url, token, root, person


def labels_of(project: Path) -> dict[str, str]:
    with open(project / "labels/parts.csv", newline="") as stream:
        return {row["path"]: row["label"] for row in csv.DictReader(stream)}


def issue_batch(project: Path, images: list[str]) -> None:
    """Batch 1 of `images` as `next` writes a first batch (a random draw, no suggestions): tasks.json and
    the manifest, without training or drawing anything."""
    rows = [BatchRow(i + 1, image, "", 0.0) for i, image in enumerate(images)]
    folder = project / "labelling/parts/batch-001"
    folder.mkdir(parents=True)
    (folder / "tasks.json").write_text(json.dumps(label_studio_tasks(rows, "/data/local-files/?d=x")))
    write_manifest(folder / "manifest.csv", rows)


def import_elsewhere(project: Path, monkeypatch, labels: dict[str, str], *options: str) -> None:
    """Labels given outside Label Studio: a CSV from the labelling page, imported."""
    file = project / "page-labels.csv"
    file.write_text("path,label\n" + "".join(f"{path},{value}\n" for path, value in labels.items()))
    label(project, monkeypatch, "import", str(file), *options)


def choices(annotation: dict) -> list[str]:
    return [c for result in annotation["result"] for c in result["value"]["choices"]]


def served(person: Person, task: dict) -> requests.Response:
    return person.session.get(person.url + task["data"]["image"], timeout=30)


def test_push_and_pull_through_one_label_studio_project(studio, tmp_path, monkeypatch):
    url, token, _, person = studio
    project, truth = make_label_project(tmp_path)

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
    assert len(person.projects()) == 1 and len(tasks) == 11
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
        label(project, monkeypatch, "pull", "--token", token, "--url", f"http://127.0.0.1:{free_port()}")


def test_a_document_root_that_differs_is_refused_and_old_links_are_corrected(studio, tmp_path, monkeypatch, caplog):
    url, token, root, person = studio
    project, truth = make_label_project(tmp_path, per_class=2)
    unlabelled, images = project / "data/unlabelled", sorted(truth)[:4]
    issue_batch(project, images)

    monkeypatch.delenv(DOCUMENT_ROOT_ENV)  # set where Label Studio runs, not in this shell
    with pytest.raises(PipelineError) as refused:
        label(project, monkeypatch, "push")
    message = str(refused.value)
    assert "\n" not in message and "answered 404" in message and "nothing was sent" in message
    assert f"{DOCUMENT_ROOT_ENV} must be the same folder" in message and "(here: unset)" in message
    assert "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true" in message
    assert person.projects() == []  # not even the Label Studio project

    # What a push made in that shell before it checked: tasks whose images answer 404.
    older = LabelStudio(url, token)
    project_id = older.project("alstudy: parts", CLASSES)
    older.connect_folder(project_id, unlabelled)
    tasks = json.loads((project / "labelling/parts/batch-001/tasks.json").read_text())
    for task in tasks:
        task["data"]["image"] = f"/data/local-files/?d={unlabelled.relative_to('/')}/{task['data']['path']}"
    older.import_tasks(project_id, tasks)
    assert {served(person, task).status_code for task in person.tasks()} == {404}

    monkeypatch.setenv(DOCUMENT_ROOT_ENV, str(root))  # fixed: the same folder in both
    with caplog.at_level(logging.INFO, logger="label"):
        label(project, monkeypatch, "push")
    assert "corrected the image URL of 4 task(s)" in caplog.text
    tasks = person.tasks()
    assert len(tasks) == 4
    for task in tasks:
        answer = served(person, task)
        assert answer.status_code == 200 and answer.content == (unlabelled / task["data"]["path"]).read_bytes()


def test_images_with_odd_names_display(studio, tmp_path, monkeypatch):
    _, _, _, person = studio
    project, _ = make_label_project(tmp_path, per_class=2)
    unlabelled = project / "data/unlabelled"
    names = ["a+b.png", "c#d.png", "e&d=f.png", "g h.png", "100%.png", "é ü.png", "sub dir/x?y=1.png"]
    for i, name in enumerate(names):
        (unlabelled / name).parent.mkdir(exist_ok=True)
        Image.fromarray(np.full((8, 8, 3), 20 * i, np.uint8)).save(unlabelled / name)  # each its own bytes
    issue_batch(project, names)
    label(project, monkeypatch, "push")
    tasks = person.tasks()
    assert sorted(t["data"]["path"] for t in tasks) == sorted(names)
    for task in tasks:
        answer = served(person, task)
        assert answer.status_code == 200, task["data"]
        assert answer.content == (unlabelled / task["data"]["path"]).read_bytes()


def test_labels_given_elsewhere_show_in_label_studio(studio, tmp_path, monkeypatch):
    _, _, _, person = studio
    project, truth = make_label_project(tmp_path, per_class=2)
    images = sorted(truth)[:4]
    issue_batch(project, images)
    import_elsewhere(project, monkeypatch, {images[0]: truth[images[0]]})  # on the page, before the push

    label(project, monkeypatch, "push")
    tasks = person.tasks_by_path()
    (annotation,) = tasks[images[0]]["annotations"]
    assert choices(annotation) == [truth[images[0]]] and MARK in annotation["result"][0]
    assert tasks[images[0]]["is_labeled"] and not any(tasks[p]["annotations"] for p in images[1:])

    other = next(c for c in CLASSES if c != truth[images[0]])
    import_elsewhere(project, monkeypatch, {images[1]: truth[images[1]]})  # after the push
    import_elsewhere(project, monkeypatch, {images[0]: other}, "--relabel")  # changed there
    label(project, monkeypatch, "pull")
    tasks = person.tasks_by_path()
    assert [choices(a) for a in tasks[images[1]]["annotations"]] == [[truth[images[1]]]]
    assert [choices(a) for a in tasks[images[0]]["annotations"]] == [[other]]  # alstudy's own, updated
    assert labels_of(project) == {images[0]: other, images[1]: truth[images[1]]}


def test_a_disagreement_is_reported_and_the_rest_imported(studio, tmp_path, monkeypatch, caplog):
    _, _, _, person = studio
    project, truth = make_label_project(tmp_path, per_class=2)
    images = sorted(truth)[:4]
    issue_batch(project, images)
    import_elsewhere(project, monkeypatch, {images[0]: truth[images[0]]})
    label(project, monkeypatch, "push")
    tasks = person.tasks_by_path()
    other = next(c for c in CLASSES if c != truth[images[0]])
    person.choose(tasks[images[0]], other)  # in Label Studio, someone thinks otherwise
    for path in images[1:]:
        person.choose(tasks[path], truth[path])

    with caplog.at_level(logging.INFO, logger="label"):
        label(project, monkeypatch, "pull")
    assert labels_of(project) == {path: truth[path] for path in images}  # the rest imported, the file's kept
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "\n" not in warning and images[0] in warning and repr(other) in warning
    assert repr(truth[images[0]]) in warning and "--relabel" in warning and "change it in Label Studio" in warning

    # The warning's command, as printed, takes Label Studio's.
    printed = warning.split("to take Label Studio's: ", 1)[1].split(";", 1)[0]
    assert printed == "alstudy label pull --project parts --relabel"
    label(project, monkeypatch, *printed.split()[2:])
    assert labels_of(project) == {**{path: truth[path] for path in images}, images[0]: other}


def test_the_latest_annotation_wins(studio, tmp_path, monkeypatch):
    _, _, _, person = studio
    project, truth = make_label_project(tmp_path, per_class=2)
    images = sorted(truth)[:2]
    issue_batch(project, images)
    label(project, monkeypatch, "push")
    tasks = person.tasks_by_path()
    first, second, third = CLASSES
    person.choose(tasks[images[0]], first)
    person.choose(tasks[images[0]], second)  # created later
    earlier = person.choose(tasks[images[1]], first)
    person.choose(tasks[images[1]], second)
    person.change(earlier, third)  # the first one, changed last
    label(project, monkeypatch, "pull")
    assert labels_of(project) == {images[0]: second, images[1]: third}


def start_backend(project: Path, port: int, log: Path) -> subprocess.Popen:
    """`alstudy label serve` as a person starts it, in the project's folder, answering once up."""
    command = [str(Path(sys.executable).parent / "alstudy"), "label", "serve", "--port", str(port)]
    # Its rounds at a fair share: at nice 10 the other test workers' processes at nice 0 left them a tenth of
    # a core, and this test took minutes more (docs/user-guide/labelling.md, "A busy machine").
    env = {**os.environ, "ALSTUDY_ROUND_NICENESS": "0"}
    process = subprocess.Popen(command, cwd=project, env=env, stdout=open(log, "a"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, log.read_text()[-2000:]
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok:
                return process
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.3)


def wait_for(what: str, check, seconds: float = 180, log: Path | None = None):
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s\n" + (
            log.read_text()[-3000:] if log else ""
        )
        time.sleep(0.5)


def by_priority(person: Person) -> list[dict]:
    """The open tasks as the Data Manager lists them sorted by Prediction score, highest first."""
    query = json.dumps({"ordering": ["-tasks:predictions_score"]})
    tasks = person.get("/api/tasks", project=person.project()["id"], page_size=1000, fields="all", query=query).json()
    return [task for task in tasks["tasks"] if not task["annotations"]]


def shown(person: Person, task: dict) -> dict:
    """The prediction of the version the project shows (what the Data Manager sorts by)."""
    version = person.project()["model_version"]
    (found,) = [p for p in task["predictions"] if p["model_version"] == version]
    return found


def round_running(number: int) -> list[int]:
    done = subprocess.run(["pgrep", "-f", f"alstudy.labelling.live_round .*--round {number}"], capture_output=True)
    return [int(pid) for pid in done.stdout.split()]


def set_min_steps(project: Path, steps: int) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["label"]["projects"]["parts"]["min_steps"] = steps
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_the_live_loop_as_label_studios_ml_backend(studio, tmp_path, monkeypatch):
    """Connect the backend with `label push --all --backend`, label from the top of the Data Manager
    sorted by score, see the model retrain and the scores change, kill the backend mid-round, label
    while it is down, start it again: every annotation is in the labels file and the round is redone."""
    url, token, root, person = studio
    project, truth = make_label_project(tmp_path, per_class=8)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["label"]["projects"]["parts"]["retrain_every"] = 4
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    set_min_steps(project, 500)
    monkeypatch.chdir(project)
    store = f"sqlite:///{project / 'mlflow.db'}"
    empty_store(project / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)  # the backend and its rounds log there
    port, log = free_port(), project / "serve.log"
    backend = start_backend(project, port, log)
    try:
        alstudy = [str(Path(sys.executable).parent / "alstudy"), "label"]
        done = subprocess.run([*alstudy, "push", "--all", "--backend", f"http://127.0.0.1:{port}"], capture_output=True)
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        assert b"connected to Label Studio project 'alstudy: parts'" in done.stderr
        (connected,) = person.get("/api/ml", project=person.project()["id"]).json()
        assert connected["state"] == "CO" and connected["url"] == f"http://127.0.0.1:{port}"

        # Before any label: a seeded random priority on every task, no suggestion.
        wait_for("the first scores", lambda: person.project()["model_version"] == "alstudy-parts-random", log=log)
        tasks = by_priority(person)
        assert len(tasks) == len(truth) and all(shown(person, t)["result"] == [] for t in tasks[:3])
        scores = [shown(person, t)["score"] for t in tasks]
        assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores)

        # Label the top 4 as the Data Manager sorts them: round 1 retrains and re-scores every open task.
        given = [person.choose(task, truth[task["data"]["path"]]) for task in tasks[:4]]
        fourth = time.monotonic()
        first_labelled = tasks[0]["data"]["path"]
        wait_for("round 1's scores", lambda: person.project()["model_version"] == "alstudy-parts-round-1", log=log)
        took = time.monotonic() - fourth
        assert {p: label for p, label in labels_of(project).items()} == {
            t["data"]["path"]: truth[t["data"]["path"]] for t in tasks[:4]
        }
        versions = lambda: {p["model_version"] for t in person.tasks() for p in t["predictions"]}  # noqa: E731
        wait_for("the random scores deleted", lambda: versions() == {"alstudy-parts-round-1"}, seconds=30)
        tasks = by_priority(person)
        assert len(tasks) == len(truth) - 4
        first = [shown(person, t) for t in tasks]
        assert all(p["result"][0]["value"]["choices"][0] in CLASSES for p in first)
        assert [p["score"] for p in first] == sorted((p["score"] for p in first), reverse=True)
        opened = person.get(f"/api/tasks/{tasks[0]['id']}").json()  # as the labelling page opens it
        assert any(p["model_version"] == "alstudy-parts-round-1" for p in opened["predictions"])
        # Label Studio's own call, answered from the ranking.
        answer = requests.post(
            f"http://127.0.0.1:{port}/predict", json={"tasks": [tasks[0]], "project": "1.1"}, timeout=5
        ).json()
        assert answer["results"][0]["score"] == first[0]["score"]

        # Round 2 starts after 4 more; the backend is killed mid-round, and its round goes with it. (Round 2
        # trains for minutes, so that the kill finds it training.)
        set_min_steps(project, 10**6)
        for task in tasks[:4]:
            person.choose(task, truth[task["data"]["path"]])
        wait_for("round 2 running", lambda: round_running(2), log=log)
        backend.kill()
        backend.wait()
        wait_for("the orphaned round stopped", lambda: not round_running(2), seconds=15)
        assert json.loads((project / "labelling/parts/live/ranking.jsonl").read_text().splitlines()[0])["round"] == 1
        # A person labels on while the backend is down.
        person.choose(tasks[4], truth[tasks[4]["data"]["path"]])

        set_min_steps(project, 500)
        backend = start_backend(project, port, log)
        wait_for("round 2's scores", lambda: person.project()["model_version"] == "alstudy-parts-round-2", log=log)
        labelled = labels_of(project)
        assert len(labelled) == 9 and all(truth[path] == label for path, label in labelled.items())
        assert len(by_priority(person)) == len(truth) - 9

        # Each round a step of the MLflow run label-parts-live: the round killed before it logged, once.
        client = MlflowClient(store)

        def steps(metric: str) -> dict[int, float]:
            found = client.search_runs(client.search_experiments()[0].experiment_id, "tags.kind = 'labelling-live'")
            history = client.get_metric_history(found[0].info.run_id, metric) if found else []
            return {point.step: point.value for point in history}

        wait_for("round 2 in MLflow", lambda: 2 in steps("n_labeled"), seconds=60)
        assert steps("n_labeled") == {1: 4.0, 2: 9.0}
        assert set(steps("test_accuracy")) == {1, 2} and set(steps("test_f1_macro")) == {1, 2}
        assert sum(steps(f"labelled/{name}")[2] for name in CLASSES) == 9

        # The person changes a label in Label Studio: the backend keeps the labels file's and prints how to
        # take Label Studio's; that command, run as printed, takes it.
        other = next(c for c in CLASSES if c != truth[first_labelled])
        person.change(given[0], other)
        hint = "to take Label Studio's: "
        said = wait_for(
            "the backend's warning", lambda: [line for line in log.read_text().splitlines() if hint in line]
        )
        assert f"{first_labelled} is {other!r} in Label Studio" in said[-1]
        printed = shlex.split(said[-1].split(hint)[1])
        assert printed[:2] == ["alstudy", "label"]
        done = subprocess.run([*alstudy, *printed[2:]], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        assert labels_of(project)[first_labelled] == other

        second = subprocess.run([*alstudy, "serve", "--port", str(free_port())], capture_output=True, text=True)
        assert second.returncode == 2
        assert (
            second.stderr.strip()
            .splitlines()[-1]
            .startswith("error: alstudy label serve --project parts: already running in process")
        )
        logging.getLogger(__name__).info("K-th annotation to new scores: %.1f s", took)
    finally:
        backend.terminate()
        backend.wait(timeout=30)
