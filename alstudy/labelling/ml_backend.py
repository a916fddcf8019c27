"""A labelling project as a Label Studio ML backend: `alstudy label serve --project NAME`.

Label Studio's side of the protocol (label_studio/ml/api_connector.py in Label Studio 1.23):
GET /health, POST /setup (answered with the current model version), POST /predict (one
prediction per task), and POST /webhook, which Label Studio creates for the backend's project and
calls on every event (ANNOTATION_CREATED, ..., START_TRAINING); POST /train asks for a round.

- Predictions come from the latest ranking (alstudy/labelling/live.py): a lookup, never a model
  call, so a request answers in milliseconds however many images the project has, and whatever a
  round is doing.
- Annotations are read from Label Studio's API with the backend's own token: every task at start
  (so nothing given while the backend was down is missed), then every POLL_S seconds the tasks
  changed since. Label Studio 1.23 makes the backend's webhook only where its SSRF checks allow a
  private address, so a webhook is a hint to look now, and its body is never trusted: a forged one
  can do no more than that.
- After every `retrain_every` new labels (and at start, when labels came in since the last round),
  a round runs in a child process at low priority (alstudy/labelling/live_round.py); when it ends,
  its ranking is loaded and sent to Label Studio as predictions for every task, shown as the
  project's model version, so the Data Manager's "Prediction score" sorts by the new priorities;
  the older rounds' predictions are deleted (each round adds one per task).
- A round's niceness is ALSTUDY_ROUND_NICENESS (default 10): 0 where other work keeps the cores busy.
- Bound to 127.0.0.1 unless told otherwise; another address needs HTTP basic auth (Label Studio's
  "Basic Authentication" for a backend), the password from ALSTUDY_BACKEND_PASSWORD. One backend per
  project at a time (a lock in labelling/<project>/live/).
"""

from __future__ import annotations

import base64
import heapq
import hmac
import json
import logging
import os
import subprocess
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

from alstudy.errors import PipelineError
from alstudy.labelling.batches import read_labels
from alstudy.labelling.label_studio import LabelStudio, project_title
from alstudy.labelling.live import (
    Ranking,
    control_names,
    prediction,
    random_ranking,
    record_annotations,
    task_image,
)
from alstudy.labelling.project import class_folder, labels_file, live_dir
from alstudy.params import LabelProject
from alstudy.scale.process_lock import process

log = logging.getLogger("label")
PASSWORD_ENV = "ALSTUDY_BACKEND_PASSWORD"
# A round runs this much nicer than the backend, so that Label Studio's requests come first. On a machine
# busy with other work at nice 0 (a study's cells, other tests) a round at 10 gets a tenth of a core or less;
# 0 gives it a fair share.
NICENESS_ENV, DEFAULT_NICENESS = "ALSTUDY_ROUND_NICENESS", 10
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
POLL_S = 2.0  # Label Studio 1.23 sends no webhook to a backend on a private address unless SSRF checks are off
ANNOTATION_EVENTS = {"ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED", "ANNOTATIONS_DELETED"}


def round_niceness(environ) -> int:
    """The niceness rounds run at, from ALSTUDY_ROUND_NICENESS: checked when the backend starts, not at its
    first round."""
    value = environ.get(NICENESS_ENV, str(DEFAULT_NICENESS))
    try:
        niceness = int(value)
    except ValueError:
        niceness = -1
    if not 0 <= niceness <= 19:
        raise PipelineError(
            f"{NICENESS_ENV}={value!r}: not a niceness; set it to a whole number from 0 (a fair share of the CPU) "
            f"to 19, or unset it for {DEFAULT_NICENESS}"
        )
    return niceness


class LiveLoop:
    """The backend's state: the ranking it answers from, the Label Studio project, the round running."""

    def __init__(self, name: str, project: LabelProject, studio: LabelStudio):
        self.niceness = round_niceness(os.environ)  # before Label Studio is asked anything
        self.name, self.project, self.studio = name, project, studio
        self.folder = live_dir(name)
        self.project_id: int | None = studio.find_project(project_title(name))
        self.ranking: Ranking | None = Ranking.load(self.folder)
        self.start_labels = len(class_folder(Path(project.labelled), list(project.classes))) if project.labelled else 0
        self.controls = control_names(None)
        self._round: subprocess.Popen | None = None
        self._lock, self._publishing = threading.Lock(), threading.Lock()
        self._wake, self._stopped = threading.Event(), threading.Event()
        self._seen: str | None = None  # Label Studio's `updated_at` of the latest task read
        self._unreachable = False
        self._failed_at: int | None = None  # the label count at which the last round failed
        self._offered: int | None = None  # a project id /setup named, until checked
        self.port: int | None = None  # the port served on (serve)
        self._task_images: dict[int, str | None] = {}  # Label Studio task id -> image (None: not one of ours)

    # -- what Label Studio asks -------------------------------------------------------------------
    def version(self) -> str:
        return self.ranking.version if self.ranking else "alstudy-none"

    def predictions(self, tasks: list[dict], label_config: str | None) -> list[dict]:
        controls = control_names(label_config) if label_config else self.controls
        ranking, root = self.ranking, Path(self.project.unlabelled)
        return [prediction(ranking, task_image(task, root), controls) for task in tasks]

    def attach(self, project_id: int, label_config: str | None) -> None:
        """The Label Studio project that set the backend up (when none is called "alstudy: <name>"):
        taken once Label Studio's API shows this backend connected there (checked on the next look), since
        anyone on this machine can call /setup."""
        if label_config:
            self.controls = control_names(label_config)
        if self.project_id is None:
            self._offered = project_id
            self.wake()

    def _check_offered(self) -> None:
        offered, self._offered = self._offered, None
        if offered is None or self.project_id is not None:
            return
        ports = {urlparse(str(b.get("url", ""))).port for b in self.studio.ml_backends(offered)}
        if self.port in ports:
            self.project_id = offered
            log.info("%s: serving Label Studio project %d", self.name, offered)
        else:
            log.warning(
                "%s: /setup named Label Studio project %d, which has no backend at port %s",
                self.name,
                offered,
                self.port,
            )

    # -- annotations in, rounds out --------------------------------------------------------------
    def watch(self) -> None:
        """Read Label Studio's new and changed annotations every POLL_S seconds (sooner when a webhook
        says something happened), for as long as the backend runs."""
        while not self._stopped.is_set():
            self.catch_up()
            self._wake.wait(POLL_S)
            self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

    def catch_up(self) -> None:
        """Add the annotations of the tasks changed since the last look (every task, the first time) to
        the labels file, then start a round if enough labels came in."""
        try:
            self._check_offered()
            if self.project_id is None:
                return
            # The first look reads only the tasks with annotations (listing every task costs about 3 ms each
            # in Label Studio); later ones those changed since.
            tasks = self.studio.tasks(self.project_id, updated_after=self._seen, annotated=self._seen is None)
            new = record_annotations(self.name, self.project, tasks)
        except PipelineError as error:
            if not self._unreachable:
                log.warning("%s: could not read annotations from Label Studio (trying again): %s", self.name, error)
            self._unreachable = True
            return
        self._unreachable = False
        stamps = [str(task["updated_at"]) for task in tasks if task.get("updated_at")]
        if stamps:
            self._seen = max(stamps, key=lambda stamp: datetime.fromisoformat(stamp.replace("Z", "+00:00")))
        if new:
            log.info("%s: %d new label(s) from Label Studio in %s", self.name, new, labels_file(self.name))
        self.maybe_train()

    def labelled(self) -> int:
        return len(read_labels(labels_file(self.name))) + self.start_labels

    def maybe_train(self, force: bool = False) -> bool:
        """Start a round when `retrain_every` labels came in since the ranking's (or when forced)."""
        with self._lock:
            if self._round is not None and self._round.poll() is None:
                return False
            labelled = self.labelled()
            since = labelled - (self.ranking.n_labelled if self.ranking else 0)
            if self.ranking is not None and since < self.project.retrain_every and not (force and since > 0):
                return False
            if self._failed_at == labelled:  # a failed round is tried again on the next new label
                return False
            number = (self.ranking.round if self.ranking else 0) + 1
            if labelled == 0:
                self.ranking = random_ranking(self.name, self.project)
                self.ranking.save(self.folder)
                threading.Thread(target=self.publish, daemon=True).start()
                return False
            me = process(os.getpid())
            command = [sys.executable, "-m", "alstudy.labelling.live_round", "--project", self.name]
            command += ["--parent", f"{me.pid}:{me.started}", "--niceness", str(self.niceness)]
            quiet = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
            self._round = subprocess.Popen([*command, "--round", str(number)], env=quiet)
            log.info("%s: round %d started: %d labels, %d new since the last", self.name, number, labelled, since)
            threading.Thread(target=self._finish, args=(self._round, number), daemon=True).start()
            return True

    def _finish(self, process: subprocess.Popen, number: int) -> None:
        """Send the round's ranking to Label Studio as soon as it is on disk (the round then logs to
        MLflow), and start the next round once this one has ended."""
        shown, code = False, None
        while code is None:
            try:
                code = process.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
            if not shown and Ranking.round_on_disk(self.folder) == number:
                ranking = Ranking.load(self.folder)
                if ranking is not None and ranking.round == number:
                    self.ranking, shown = ranking, True
                    self.publish()
        if not shown:
            self._failed_at = self.labelled()
            log.warning(
                "%s: round %d failed (exit %s, its error above); the next annotation tries again",
                self.name,
                number,
                code,
            )
            return
        self._failed_at = None
        self.maybe_train()  # labels that came in while it trained

    def task_images(self) -> dict[int, str]:
        """Task id -> image, of every task of the Label Studio project: listed in full once (a few
        minutes at 100,000 tasks), then only the tasks added since."""
        known = self._task_images
        added = self.studio.tasks(self.project_id, id_after=max(known, default=None) if known else None)
        root = Path(self.project.unlabelled)
        known.update((int(task["id"]), task_image(task, root)) for task in added)
        return {task_id: image for task_id, image in known.items() if image is not None}

    def publish(self) -> None:
        """The ranking's predictions for every task of the Label Studio project, shown as its model
        version; the older rounds' predictions deleted after (in the background: Label Studio takes
        seconds per thousand)."""
        with self._publishing:  # one at a time: the latest ranking is the one shown last
            self._publish()

    def _publish(self) -> None:
        ranking = self.ranking
        if self.project_id is None or ranking is None:
            return
        started = time.monotonic()
        try:
            try:
                predictions = self._predictions(ranking)
                self.studio.import_predictions(self.project_id, predictions)
            except PipelineError:  # tasks deleted in Label Studio since they were listed: list them again
                self._task_images.clear()
                predictions = self._predictions(ranking)
                self.studio.import_predictions(self.project_id, predictions)
            self.studio.show_model_version(self.project_id, ranking.version)
        except PipelineError as error:
            log.warning("%s: could not send the new scores to Label Studio: %s", self.name, error)
            return
        log.info(
            "%s: %s: scores of %d task(s) sent to Label Studio in %.1f s; sort the Data Manager by Prediction score",
            self.name,
            ranking.version,
            len(predictions),
            time.monotonic() - started,
        )
        threading.Thread(target=self._forget_older, args=(ranking.version,), daemon=True).start()

    def _predictions(self, ranking: Ranking) -> list[dict]:
        """The predictions of the `scores_sent` tasks the ranking puts first (all with 0): the Data Manager
        lists tasks without a score of the shown version after those with one, whichever way it sorts."""
        ranked = [(task_id, image) for task_id, image in self.task_images().items() if image in ranking.images]
        if self.project.scores_sent:
            ranked = heapq.nlargest(self.project.scores_sent, ranked, key=lambda pair: ranking.images[pair[1]][2])
        return [{"task": task_id, **prediction(ranking, image, self.controls)} for task_id, image in ranked]

    def _forget_older(self, current: str) -> None:
        try:
            for version in self.studio.model_versions(self.project_id):
                if version != current and version.startswith(f"alstudy-{self.name}-"):
                    self.studio.delete_predictions(self.project_id, version)
        except PipelineError as error:
            log.warning("%s: could not delete older rounds' predictions in Label Studio: %s", self.name, error)

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._round is not None and self._round.poll() is None:
            self._round.terminate()


def handler(loop: LiveLoop, user: str, password: str) -> type[BaseHTTPRequestHandler]:
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode() if user else ""

    class Handler(BaseHTTPRequestHandler):
        server_version = "alstudy-ml-backend"

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
            log.debug("%s " + format, self.address_string(), *args)

        def _answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self) -> bool:
            given = self.headers.get("Authorization", "")
            if not expected or hmac.compare_digest(given.encode(), expected.encode()):
                return True
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="alstudy"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return False

        def _body(self) -> dict:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                body = None
            return body if isinstance(body, dict) else {}

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if not self._authorised():
                return
            if self.path.rstrip("/") == "/health":
                self._answer(200, {"status": "UP", "model_class": "alstudy", "model_version": loop.version()})
            else:
                self._answer(404, {"error": f"no such path {self.path}"})

        def do_POST(self) -> None:  # noqa: N802
            path = self.path.rstrip("/")
            if path == "/webhook":  # no credentials from Label Studio's webhooks: a hint to read the API
                self._webhook(self._body())
                return
            if not self._authorised():
                return
            body = self._body()
            if path == "/setup":
                project = str(body.get("project") or "").split(".")[0]
                if project.isdigit():
                    loop.attach(int(project), body.get("schema"))
                self._answer(200, {"model_version": loop.version()})
            elif path == "/predict":
                tasks = body.get("tasks") if isinstance(body.get("tasks"), list) else []
                self._answer(200, {"results": loop.predictions(tasks, body.get("label_config"))})
            elif path == "/train":
                loop.wake()
                self._answer(200, {"job": None})
            else:
                self._answer(404, {"error": f"no such path {self.path}"})

        def _webhook(self, body: dict) -> None:
            if str(body.get("action") or "") in ANNOTATION_EVENTS | {"START_TRAINING"}:
                loop.wake()
            self._answer(200, {"status": "ok"})

    return Handler


def serve(loop: LiveLoop, host: str, port: int, user: str = "", password: str = "") -> ThreadingHTTPServer:
    """The backend's HTTP server on host:port (not yet serving: call serve_forever)."""
    if host not in LOOPBACK and not (user and password):
        raise PipelineError(
            f"--host {host}: a backend reachable from other machines needs a user and password; pass "
            f"--basic-auth-user NAME with the password in {PASSWORD_ENV} (and the same in Label Studio's "
            "Model settings, Basic Authentication), or serve on 127.0.0.1"
        )
    if user and not password:
        raise PipelineError(f"--basic-auth-user {user}: set the password in {PASSWORD_ENV}")
    try:
        server = ThreadingHTTPServer((host, port), handler(loop, user, password))
    except OSError as error:
        raise PipelineError(f"cannot serve on {host}:{port} ({error.strerror}); pick another --port") from None
    server.daemon_threads = True
    loop.port = server.server_address[1]
    return server
