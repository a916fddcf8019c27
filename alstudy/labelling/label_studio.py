"""Label Studio as people use it: one Label Studio project per labelling project, fed batch by batch.

`push` finds or creates the Label Studio project "alstudy: <name>" (an image and a Choices control
named `label` with the project's classes), connects a Local Storage to the unlabelled folder (so
the tasks' /data/local-files/ images display), and imports the tasks of the latest batch that the
project does not hold yet: the suggestion as a prediction scored by the model's confidence, the
strategy's order in the `order` field (sort the Data Manager by it). `pull` exports the whole
project as JSON and imports it like any export: tasks of earlier batches already imported add
nothing, skipped and cancelled tasks count as unlabelled and come back in the next batch.

Label Studio serves local files only when started with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true
and LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT set to a folder above the images; the same document
root, in this process's environment, shapes the tasks' image URLs. The API token is a Personal
Access Token (Account & Settings in Label Studio; exchanged for short-lived access tokens) or a
legacy token, from LABEL_STUDIO_API_KEY or --token.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

import requests

from alstudy.errors import PipelineError
from alstudy.fileio import atomic_path
from alstudy.labelling.batches import LABEL_CONTROL

TIMEOUT = 60  # seconds for one API call; an export of a large project takes a while
PAGE = 1000
DOCUMENT_ROOT_ENV = "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"
START_HINT = (
    "start Label Studio with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and "
    f"{DOCUMENT_ROOT_ENV} set to a folder above the images"
)


def local_files_url(folder: Path, strict: bool = True) -> str:
    """Label Studio's URL prefix for the images of `folder`, relative to its local-files document root
    (to / when `folder` is not under that root and not `strict`: tasks.json for a later push)."""
    root, folder = Path(os.environ.get(DOCUMENT_ROOT_ENV) or "/").resolve(), Path(folder).resolve()
    if not folder.is_relative_to(root):
        if strict:
            raise PipelineError(
                f"{folder}: not under {DOCUMENT_ROOT_ENV}={root}; set it (here and for Label Studio) to a folder "
                "above the images, or set label.projects.<name>.image_url"
            )
        root = Path("/")
    return f"/data/local-files/?d={folder.relative_to(root)}"


def label_config(classes: list[str]) -> str:
    choices = "".join(f"<Choice value={quoteattr(c)}/>" for c in classes)
    return (
        f'<View><Image name="image" value="$image"/><Choices name="{LABEL_CONTROL}" toName="image" '
        f'choice="single-radio" showInline="true">{choices}</Choices></View>'
    )


@dataclass
class LabelStudio:
    """A Label Studio server, reached through its HTTP API."""

    url: str
    token: str

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        if not self.token:
            raise PipelineError(
                "no Label Studio API token: copy your Personal Access Token (Account & Settings) into "
                "LABEL_STUDIO_API_KEY, or pass --token"
            )
        self.session = requests.Session()
        self.session.headers["Authorization"] = self._authorization()

    def _authorization(self) -> str:
        if self.token.count(".") != 2:  # a legacy token; a Personal Access Token is a JWT
            return f"Token {self.token}"
        answer = self._call("POST", "/api/token/refresh", json={"refresh": self.token}, authorised=False)
        return f"Bearer {answer['access']}"

    def _call(self, method: str, path: str, authorised: bool = True, **kwargs):
        send = self.session.request if authorised else requests.request
        try:
            response = send(method, self.url + path, timeout=TIMEOUT, **kwargs)
        except requests.ConnectionError:
            raise PipelineError(
                f"Label Studio at {self.url} is not reachable; start it (label-studio start) or pass --url"
            ) from None
        if response.status_code in (401, 403):
            raise PipelineError(
                f"Label Studio at {self.url} refused the token ({response.status_code}); use a valid Personal "
                "Access Token from Account & Settings in LABEL_STUDIO_API_KEY or --token"
            )
        if not response.ok:
            detail = response.text[:300].replace("\n", " ")
            raise PipelineError(f"Label Studio: {method} {path} answered {response.status_code}: {detail}")
        return response.json() if response.content else None

    def project(self, title: str, classes: list[str]) -> int:
        """The id of the project called `title`, created (with the classes as choices) when missing."""
        page = 1
        while True:
            answer = self._call("GET", "/api/projects", params={"page": page, "page_size": 100, "title": title})
            results = answer["results"] if isinstance(answer, dict) else answer
            for found in results:
                if found["title"] == title:
                    return int(found["id"])
            if not isinstance(answer, dict) or not answer.get("next"):
                break
            page += 1
        created = self._call("POST", "/api/projects", json={"title": title, "label_config": label_config(classes)})
        return int(created["id"])

    def connect_folder(self, project_id: int, folder: Path) -> None:
        """A Local Storage of the project for `folder` (never synced: tasks come from `push` only)."""
        path = str(Path(folder).resolve())
        storages = self._call("GET", "/api/storages/localfiles", params={"project": project_id})
        if any(storage.get("path") == path for storage in storages):
            return
        try:
            self._call(
                "POST",
                "/api/storages/localfiles",
                json={"project": project_id, "path": path, "title": "alstudy images", "use_blob_urls": True},
            )
        except PipelineError as error:
            raise PipelineError(f"{error}; to show the images, {START_HINT}") from None

    def task_paths(self, project_id: int) -> set[str]:
        """The `path` of every task the project holds."""
        paths, page, seen = set(), 1, 0
        while True:  # page by page, until the server's total (it may cap the page size below ours)
            answer = self._call(
                "GET", "/api/tasks", params={"project": project_id, "page": page, "page_size": PAGE, "fields": "all"}
            )
            paths.update(str(task["data"].get("path")) for task in answer["tasks"])
            seen += len(answer["tasks"])
            if not answer["tasks"] or seen >= answer.get("total", seen):
                return paths
            page += 1

    def import_tasks(self, project_id: int, tasks: list[dict]) -> None:
        if tasks:
            self._call("POST", f"/api/projects/{project_id}/import", json=tasks)

    def export(self, project_id: int, target: Path) -> Path:
        """Every task of the project with its annotations (Label Studio's JSON export), into `target`."""
        answer = self._call(
            "GET", f"/api/projects/{project_id}/export", params={"exportType": "JSON", "download_all_tasks": "true"}
        )
        with atomic_path(target) as tmp:
            tmp.write_text(json.dumps(answer, indent=1))
        return target


def project_title(name: str) -> str:
    return f"alstudy: {name}"


def push(
    studio: LabelStudio, name: str, classes: list[str], unlabelled: Path, image_url: str, tasks_file: Path
) -> tuple[int, int]:
    """Send a batch's tasks to the project's Label Studio project; return (tasks sent, already there).

    The images' URLs are made here, from `image_url` or the local-files document root of this
    environment (the one Label Studio was started with), whatever tasks.json was written with."""
    project_id = studio.project(project_title(name), classes)
    prefix = image_url.rstrip("/") if image_url else local_files_url(unlabelled)
    if not image_url:
        studio.connect_folder(project_id, unlabelled)
    tasks = json.loads(tasks_file.read_text())
    for task in tasks:
        task["data"]["image"] = f"{prefix}/{task['data']['path']}"
    present = studio.task_paths(project_id)
    new = [task for task in tasks if str(task["data"]["path"]) not in present]
    studio.import_tasks(project_id, new)
    return len(new), len(tasks) - len(new)


def pull(studio: LabelStudio, name: str, classes: list[str], target: Path) -> Path:
    """The project's Label Studio export, saved to `target` for `import`."""
    return studio.export(studio.project(project_title(name), classes), target)
