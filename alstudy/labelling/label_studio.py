"""Label Studio as people use it: one Label Studio project per labelling project, fed batch by batch.

`push` finds or creates the Label Studio project "alstudy: <name>" (an image and a Choices control
named `label` with the project's classes), connects a Local Storage to the unlabelled folder (so
the tasks' /data/local-files/ images display), checks that Label Studio serves one image of the
tasks it is about to send or correct (else it stops in one line, and a project it just created is
deleted again), corrects the image URL of tasks an earlier push made wrong, and imports the tasks
of the latest batch that the project does not hold yet: the suggestion as a prediction scored by
the model's confidence, the strategy's order in the `order` field (sort the Data Manager by it).

Labels given outside Label Studio (the page, a manifest, a CSV import: labels/<name>.csv) show
there: `push` and `pull` give each task whose image has a label there and no annotation in Label
Studio an annotation with that label, marked as alstudy's (its result carries an `alstudy` key and
its lead time is 0); when the labels file changes that label, the annotation follows, until a
person edits it in Label Studio.

`pull` exports the whole project as JSON, keeps each task's latest annotation (by `updated_at`;
skipped and cancelled ones count as no label), leaves out, one warning line each, the annotations
that disagree with a label already in the labels file (unless `relabel`), and saves the rest for
`import`: tasks of earlier batches already imported add nothing, skipped and cancelled tasks come
back in the next batch.

Label Studio serves local files only when started with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true
and LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT set to a folder above the images; the same document
root, in this process's environment, shapes the tasks' image URLs (paths URL-encoded). The API
token is a Personal Access Token (Account & Settings in Label Studio; exchanged for short-lived
access tokens) or a legacy token, from LABEL_STUDIO_API_KEY or --token.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import requests

from alstudy.errors import PipelineError
from alstudy.fileio import atomic_path
from alstudy.labelling.batches import LABEL_CONTROL, Label, class_lookup, read_labels

log = logging.getLogger("label")
TIMEOUT = 60  # seconds for one API call; an export of a large project takes a while
PAGE = 1000
PREDICTIONS_PER_CALL = 5000
BLOCKED = "reserved network address"  # Label Studio's answer to a URL it will not call (its SSRF checks)
DOCUMENT_ROOT_ENV = "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"
SERVING_ENV = "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED"
START_HINT = f"start Label Studio with {SERVING_ENV}=true and {DOCUMENT_ROOT_ENV} set to a folder above the images"
MARK = "alstudy"  # the result key of an annotation alstudy made from the labels file (a person's edit drops it)


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
    return f"/data/local-files/?d={quote(str(folder.relative_to(root)))}"


def image_link(prefix: str, path: str) -> str:
    """The URL of the image at `path` (relative to the unlabelled folder) under `prefix`, the path
    URL-encoded: `+`, `#`, `&`, `=`, `%`, spaces and non-ASCII names reach the file they name."""
    return f"{prefix.rstrip('/')}/{quote(path)}"


def label_config(classes: list[str]) -> str:
    choices = "".join(f"<Choice value={quoteattr(c)}/>" for c in classes)
    return (
        f'<View><Image name="image" value="$image"/><Choices name="{LABEL_CONTROL}" toName="image" '
        f'choice="single-radio" showInline="true">{choices}</Choices></View>'
    )


def chosen(annotation: dict) -> list[str]:
    """The classes an annotation (or prediction) chose in its Choices results."""
    return [
        str(choice)
        for result in annotation.get("result") or []
        if isinstance(result, dict) and result.get("type") == "choices" and isinstance(result.get("value"), dict)
        for choice in result["value"].get("choices") or []
    ]


def is_mirror(annotation: dict) -> bool:
    """Whether alstudy made the annotation from the labels file and nobody has edited it since."""
    return any(isinstance(result, dict) and MARK in result for result in annotation.get("result") or [])


def _when(annotation: dict) -> tuple[datetime, int]:
    stamp = annotation.get("updated_at") or annotation.get("created_at") or ""
    try:
        when = datetime.fromisoformat(str(stamp))
    except ValueError:
        when = datetime.min
    when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return when, int(annotation.get("id") or 0)


def latest_annotation(task: dict) -> dict | None:
    """The task's annotation changed last (`updated_at`, else `created_at`; ties: the higher id), skipped
    and cancelled ones left aside: the one that counts when several people (or one, twice) annotated."""
    kept = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    return max(kept, key=_when, default=None)


def mirrored_annotation(label: str, source: str) -> dict:
    """An annotation choosing `label`, marked as made by alstudy from `source` (the labels file)."""
    result = {"from_name": LABEL_CONTROL, "to_name": "image", "type": "choices", "value": {"choices": [label]}}
    return {"result": [{**result, MARK: source}], "lead_time": 0}


def to_mirror(tasks: list[dict], labels: dict[str, Label]) -> tuple[list[tuple[dict, str]], list[tuple[dict, str]]]:
    """What Label Studio lacks of the labels file: (task, label) for each task whose image has a label
    there and no annotation (skips aside); (annotation, label) for each of alstudy's own annotations,
    latest on its task, whose label the labels file has changed since."""
    add, update = [], []
    for task in tasks:
        data = task.get("data") if isinstance(task, dict) else None
        label = labels.get(str(data.get("path"))) if isinstance(data, dict) and "path" in data else None
        if label is None:
            continue
        latest = latest_annotation(task)
        if latest is None:
            add.append((task, label.label))
        elif is_mirror(latest) and chosen(latest) != [label.label]:
            update.append((latest, label.label))
    return add, update


def keep_latest(
    tasks: list[dict], labels: dict[str, Label], classes: list[str], relabel: bool
) -> tuple[list[dict], list[tuple[dict, str, str, str]]]:
    """The export's tasks each with only its latest annotation, and the conflicts left out of them:
    (task, path, Label Studio's label, the labels file's) for each task whose latest annotation chose one
    class that differs from the label the image already has (none with `relabel`). Anything else
    (no path, no class, an image not issued) is left for the import to judge."""
    lookup, kept, conflicts = class_lookup(classes), [], []
    for task in tasks:
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            kept.append(task)
            continue
        latest = latest_annotation(task)
        task = {**task, "annotations": [latest] if latest else []}
        choices = [c.strip() for c in chosen(latest)] if latest else []
        given = lookup.get(choices[0], lookup.get(choices[0].casefold())) if len(choices) == 1 else None
        before = labels.get(str(task["data"].get("path")))
        if given is not None and before is not None and given != before.label and not relabel:
            conflicts.append((task, str(task["data"]["path"]), given, before.label))
            continue
        kept.append(task)
    return kept, conflicts


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
            if response.status_code == 401 and authorised and self.token.count(".") == 2:
                # The access token a Personal Access Token gives lasts minutes: a live backend outlives it.
                self.session.headers["Authorization"] = self._authorization()
                response = send(method, self.url + path, timeout=TIMEOUT, **kwargs)
        except requests.ConnectionError:
            raise PipelineError(
                f"Label Studio at {self.url} is not reachable; start it (label-studio start) or pass --url"
            ) from None
        if response.status_code == 403 and BLOCKED in response.text:
            raise PipelineError(f"Label Studio at {self.url} refused {path}: {response.json().get('detail', BLOCKED)}")
        if response.status_code in (401, 403):
            raise PipelineError(
                f"Label Studio at {self.url} refused the token ({response.status_code}); use a valid Personal "
                "Access Token from Account & Settings in LABEL_STUDIO_API_KEY or --token"
            )
        if not response.ok:
            detail = response.text[:300].replace("\n", " ")
            raise PipelineError(f"Label Studio: {method} {path} answered {response.status_code}: {detail}")
        return response.json() if response.content else None

    def find_project(self, title: str) -> int | None:
        """The id of the project called `title`, None when there is none."""
        page = 1
        while True:
            answer = self._call("GET", "/api/projects", params={"page": page, "page_size": 100, "title": title})
            results = answer["results"] if isinstance(answer, dict) else answer
            for found in results:
                if found["title"] == title:
                    return int(found["id"])
            if not isinstance(answer, dict) or not answer.get("next"):
                return None
            page += 1

    def create_project(self, title: str, classes: list[str]) -> int:
        created = self._call("POST", "/api/projects", json={"title": title, "label_config": label_config(classes)})
        return int(created["id"])

    def project(self, title: str, classes: list[str]) -> int:
        """The id of the project called `title`, created (with the classes as choices) when missing."""
        found = self.find_project(title)
        return found if found is not None else self.create_project(title, classes)

    def delete_project(self, project_id: int) -> None:
        self._call("DELETE", f"/api/projects/{project_id}/")

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

    def tasks(
        self, project_id: int, updated_after: str | None = None, id_after: int | None = None, annotated: bool = False
    ) -> list[dict]:
        """Every task of the project (or those changed after `updated_after`, a time as Label Studio
        writes one, those with an id above `id_after`, those with an annotation): its id, data,
        annotations and `updated_at`, which moves when an annotation of it is added or changed."""
        params = {"project": project_id, "page_size": PAGE, "fields": "all"}
        items = []
        if updated_after:
            when = datetime.fromisoformat(updated_after.replace("Z", "+00:00")).astimezone(timezone.utc)
            item = {"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime"}
            items.append({**item, "value": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")})  # the only form it parses
        if id_after is not None:
            items.append({"filter": "filter:tasks:id", "operator": "greater", "type": "Number", "value": id_after})
        if annotated:
            items.append(
                {"filter": "filter:tasks:total_annotations", "operator": "greater", "type": "Number", "value": 0}
            )
        if items:
            params["query"] = json.dumps({"filters": {"conjunction": "and", "items": items}})
        tasks, page = [], 1
        while True:  # page by page, until the server's total (it may cap the page size below ours)
            answer = self._call("GET", "/api/tasks", params={**params, "page": page})
            tasks += answer["tasks"]
            if not answer["tasks"] or len(tasks) >= answer.get("total", len(tasks)):
                return tasks
            page += 1

    def import_tasks(self, project_id: int, tasks: list[dict]) -> None:
        if tasks:
            self._call("POST", f"/api/projects/{project_id}/import", json=tasks)

    def update_task(self, task_id: int, data: dict) -> None:
        self._call("PATCH", f"/api/tasks/{task_id}/", json={"data": data})

    def annotate(self, task_id: int, annotation: dict) -> dict:
        return self._call("POST", f"/api/tasks/{task_id}/annotations/", json=annotation)

    def update_annotation(self, annotation_id: int, annotation: dict) -> dict:
        return self._call("PATCH", f"/api/annotations/{annotation_id}/", json=annotation)

    def serves(self, link: str) -> str | None:
        """None when `link` (a task's image URL) answers with an image, as it will in the browser; else
        what it answered. Label Studio's own URLs are fetched with the token, others without it."""
        own = link.startswith("/") or link.startswith(self.url + "/")
        address = self.url + link if link.startswith("/") else link
        try:
            response = (self.session.get if own else requests.get)(address, timeout=TIMEOUT)
        except requests.RequestException as error:
            return f"could not be fetched ({type(error).__name__})"
        kind = response.headers.get("content-type", "")
        if response.status_code != 200:
            return f"answered {response.status_code}"
        if not kind.startswith("image/") or not response.content:
            return f"answered {kind or 'something'} that is not an image"
        return None

    def task(self, task_id: int) -> dict:
        return self._call("GET", f"/api/tasks/{task_id}/")

    def import_predictions(self, project_id: int, predictions: list[dict]) -> None:
        """Predictions ({task, result, score, model_version}) added to the project's tasks, a chunk per call."""
        for start in range(0, len(predictions), PREDICTIONS_PER_CALL):
            chunk = predictions[start : start + PREDICTIONS_PER_CALL]
            self._call("POST", f"/api/projects/{project_id}/import/predictions", json=chunk)

    def show_model_version(self, project_id: int, version: str) -> None:
        """The predictions the Data Manager shows and sorts by ("Prediction score"): this version's."""
        self._call("PATCH", f"/api/projects/{project_id}/", json={"model_version": version})

    def model_versions(self, project_id: int) -> list[str]:
        """The model versions the project's predictions carry."""
        return list(self._call("GET", f"/api/projects/{project_id}/model-versions/") or {})

    def delete_predictions(self, project_id: int, version: str) -> None:
        """The project's predictions of one model version, gone (each round adds one per task)."""
        self._call("DELETE", f"/api/projects/{project_id}/model-versions/", json={"model_version": version})

    def ml_backends(self, project_id: int) -> list[dict]:
        return self._call("GET", "/api/ml", params={"project": project_id}) or []

    def connect_backend(self, project_id: int, url: str, title: str, user: str = "", password: str = "") -> dict:
        """The ML backend at `url` connected to the project (Model settings), or updated where one is
        there at that address; Label Studio checks it answers (/health, /setup) before it saves it."""
        auth = {"auth_method": "BASIC_AUTH", "basic_auth_user": user, "basic_auth_pass": password} if user else {}
        body = {"url": url, "project": project_id, "title": title, "is_interactive": False, **auth}
        for backend in self.ml_backends(project_id):
            if backend.get("url", "").rstrip("/") == url.rstrip("/"):
                return self._call("PATCH", f"/api/ml/{backend['id']}", json=body)
        try:
            return self._call("POST", "/api/ml", json=body)
        except PipelineError as error:
            # Label Studio saves the backend, then makes its webhook, which its SSRF checks refuse for a
            # private address: connected all the same (the backend reads annotations through the API).
            saved = [b for b in self.ml_backends(project_id) if b.get("url", "").rstrip("/") == url.rstrip("/")]
            if saved:
                return saved[0]
            if BLOCKED in str(error):
                raise PipelineError(
                    f"{error}: Label Studio calls no backend on a local or private address unless started "
                    "with ML_BLOCK_LOCAL_IP=false (restart it with that set)"
                ) from None
            raise

    def export(self, project_id: int) -> list[dict]:
        """Every task of the project with its annotations (Label Studio's JSON export)."""
        return self._call(
            "GET", f"/api/projects/{project_id}/export", params={"exportType": "JSON", "download_all_tasks": "true"}
        )


def project_title(name: str) -> str:
    return f"alstudy: {name}"


def _labels_file(name: str) -> Path:
    from alstudy.labelling.project import labels_file  # project.py imports this module: import when called

    return labels_file(name)


def mirror_labels(studio: LabelStudio, name: str, tasks: list[dict], labels: dict[str, Label]) -> None:
    """Give Label Studio the labels given outside it (to_mirror): new annotations, and alstudy's own
    ones updated, each also put into `tasks` as Label Studio answered it."""
    add, update = to_mirror(tasks, labels)
    source = str(_labels_file(name))
    for task, label in add:
        task.setdefault("annotations", []).append(studio.annotate(task["id"], mirrored_annotation(label, source)))
    for annotation, label in update:
        annotation.update(studio.update_annotation(annotation["id"], mirrored_annotation(label, source)))
    if add or update:
        log.info(
            "%s: %d label(s) given outside Label Studio (%s) added there as annotations, %d updated",
            name,
            len(add),
            source,
            len(update),
        )


def not_served(studio: LabelStudio, name: str, link: str, problem: str, local: bool) -> PipelineError:
    """One line: the image URL that failed, what it answered, and what to set where."""
    if not local:
        return PipelineError(
            f"{link} {problem}, so the images would not show in Label Studio; nothing was sent: set "
            f"label.projects.{name}.image_url in params.yaml to an address that serves the unlabelled folder"
        )
    here = os.environ.get(DOCUMENT_ROOT_ENV) or "unset"
    return PipelineError(
        f"Label Studio at {studio.url} does not serve the images ({link} {problem}); nothing was sent: "
        f"{DOCUMENT_ROOT_ENV} must be the same folder, above the images, in the shell running `alstudy label push` "
        f"(here: {here}) and in Label Studio's environment, with {SERVING_ENV}=true there (restart Label Studio "
        "after setting them)"
    )


def push(
    studio: LabelStudio, name: str, classes: list[str], unlabelled: Path, image_url: str, tasks: list[dict]
) -> tuple[int, int]:
    """Send tasks (a batch's tasks.json, or every image) to the project's Label Studio project; return
    (tasks sent, already there).

    The images' URLs are made here, from `image_url` or the local-files document root of this
    environment (the one Label Studio was started with), whatever tasks.json was written with; tasks
    already there with another URL (an earlier push's) are corrected. Nothing is sent unless Label
    Studio (or the `image_url` server) serves one of those images; a project created by this call is
    deleted again then. Labels given outside Label Studio are added there (mirror_labels)."""
    title = project_title(name)
    project_id = studio.find_project(title)
    created = project_id is None
    if created:
        project_id = studio.create_project(title, classes)
    try:
        prefix = image_url.rstrip("/") if image_url else local_files_url(unlabelled)
        if not image_url:
            studio.connect_folder(project_id, unlabelled)
        for task in tasks:
            task["data"]["image"] = image_link(prefix, str(task["data"]["path"]))
        present = studio.tasks(project_id)
        paths = {str(task["data"].get("path")) for task in present}
        new = [task for task in tasks if str(task["data"]["path"]) not in paths]
        wrong = [
            task
            for task in present
            if "path" in task["data"] and task["data"].get("image") != image_link(prefix, str(task["data"]["path"]))
        ]
        sending = [task["data"] for task in new] + [task["data"] for task in wrong]
        if sending:  # one image that exists here, as Label Studio (or the browser) would fetch it
            probe = next((d for d in sending if (Path(unlabelled) / str(d["path"])).is_file()), sending[0])
            link = image_link(prefix, str(probe["path"]))
            problem = studio.serves(link)
            if problem:
                raise not_served(studio, name, link, problem, local=not image_url)
    except Exception:
        if created:
            with contextlib.suppress(PipelineError):
                studio.delete_project(project_id)
        raise
    for task in wrong:
        studio.update_task(task["id"], {**task["data"], "image": image_link(prefix, str(task["data"]["path"]))})
    if wrong:
        log.info("%s: corrected the image URL of %d task(s) an earlier push made", name, len(wrong))
    studio.import_tasks(project_id, new)
    labels = read_labels(_labels_file(name))
    if any(str(task["data"]["path"]) in labels for task in new):
        present = studio.tasks(project_id)  # the new tasks' ids
    mirror_labels(studio, name, present, labels)
    return len(new), len(tasks) - len(new)


def pull(studio: LabelStudio, name: str, classes: list[str], target: Path, relabel: bool = False) -> Path:
    """The project's Label Studio export, each task with its latest annotation, saved to `target` for
    `import`; annotations that disagree with the labels file are left out (unless `relabel`), each named
    in a warning. Labels given outside Label Studio are added there first (mirror_labels)."""
    project_id = studio.project(project_title(name), classes)
    labels = read_labels(_labels_file(name))
    exported = studio.export(project_id)
    if isinstance(exported, list):  # anything else: the import says what is wrong with it
        mirror_labels(studio, name, exported, labels)
        exported, conflicts = keep_latest(exported, labels, classes, relabel)
        for task, path, given, before in conflicts:
            log.warning(
                "%s: %s is %r in Label Studio (task %s) but %r in %s: not imported; to take Label Studio's: "
                "alstudy label pull --project %s --relabel; to keep %r: change it in Label Studio",
                name,
                path,
                given,
                task.get("id"),
                before,
                _labels_file(name),
                name,
                before,
            )
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(exported, indent=1))
    return target
