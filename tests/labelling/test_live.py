"""The live loop's parts without Label Studio: the ranking every strategy gives, tasks to images,
annotations to labels, and the backend's HTTP protocol and its guards (the whole loop against a real
Label Studio: tests/labelling/test_label_studio.py)."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from alstudy import strategies
from alstudy.errors import PipelineError
from alstudy.labelling import live, ml_backend, rounds
from alstudy.labelling.batches import read_labels
from alstudy.labelling.label_studio import DOCUMENT_ROOT_ENV
from alstudy.labelling.project import live_dir
from alstudy.learning.loop import MC_DROPOUT, round_rng, round_seed, select
from alstudy.params import LabelProject, load_params
from helpers.fakes import N_CLASSES, POOL, FakeLearner
from helpers.repo import REPO_ROOT

CLASSES = ["bolt", "gear", "nut"][:N_CLASSES]


def project_params(strategy: str, **overrides) -> LabelProject:
    values = {"unlabelled": "images", "classes": CLASSES, "strategy": strategy, "image_size": [8, 8], "batch_size": 5}
    return LabelProject(**{**values, **overrides})


@pytest.mark.parametrize("strategy", [s for s in strategies.names() if s in strategies.STRATEGIES])
def test_the_live_ranking_puts_first_what_the_strategy_would_pick(strategy):
    """The top of the Data Manager, sorted by priority, is the batch `label next` would draw (`batch: top`)."""
    params = load_params(REPO_ROOT / "params.yaml")
    project = project_params(strategy)
    known, candidates = np.arange(10), np.arange(10, len(POOL.x))
    trained = rounds.TrainedRound(3, FakeLearner(), POOL, {"known": known, "candidates": candidates}, CLASSES)
    ranked = rounds.rank_all(trained, project, params)
    n = project.batch_size
    picks = select(
        strategy,
        params.al.options(strategy),
        trained.cnn,
        POOL,
        known,
        candidates,
        n,
        round_rng(project.seed, 3),
        round_seed(project.seed, 3, MC_DROPOUT),
    ).picks
    assert len(ranked.priority) == len(candidates)
    if strategy == "random":  # a seeded draw, the same on every call
        assert np.array_equal(ranked.priority, rounds.rank_all(trained, project, params).priority)
        assert len(set(ranked.priority)) == len(candidates)
    elif strategies.get(strategy).score is None:  # a batch-building strategy: its batch first, the rest 0
        assert set(np.flatnonzero(ranked.priority)) == set(picks)
    else:
        assert set(np.argsort(-ranked.priority)[:n]) == set(picks)
    proba = FakeLearner().proba[candidates]
    assert ranked.suggested == [CLASSES[c] for c in proba.argmax(axis=1)]
    assert np.allclose(ranked.confidence, proba.max(axis=1))


def test_margin_ranks_the_smallest_gap_first():
    params = load_params(REPO_ROOT / "params.yaml")
    learner = FakeLearner()
    candidates = np.arange(10, len(POOL.x))
    trained = rounds.TrainedRound(1, learner, POOL, {"known": np.arange(10), "candidates": candidates}, CLASSES)
    ranked = rounds.rank_all(trained, project_params("margin"), params)
    top2 = np.sort(learner.proba[candidates], axis=1)[:, -2:]
    gap = top2[:, 1] - top2[:, 0]
    assert np.argmax(ranked.priority) == np.argmin(gap)
    assert np.allclose(ranked.priority, 1 - gap)


def test_a_task_names_its_image_by_its_path_or_its_local_files_url(tmp_path, monkeypatch):
    folder = tmp_path / "data/unlabelled"
    monkeypatch.setenv(DOCUMENT_ROOT_ENV, str(tmp_path))
    assert live.task_image({"data": {"path": "a b/1.png", "image": "x"}}, folder) == "a b/1.png"
    synced = {"data": {"image": "/data/local-files/?d=data/unlabelled/a%20b/%231%2B.png"}}  # Local Storage's URL
    assert live.task_image(synced, folder) == "a b/#1+.png"
    literal = {"data": {"image": "/data/local-files/?d=data/unlabelled/100%2541.png"}}  # the file 100%41.png
    assert live.task_image(literal, folder) == "100%41.png"
    assert live.task_image({"data": {"image": "/data/local-files/?d=data/other/1.png"}}, folder) is None
    assert live.task_image({"data": {"image": "https://example.org/1.png"}}, folder) is None


def test_the_prediction_carries_the_suggestion_its_confidence_and_the_priority():
    ranking = live.Ranking("alstudy-p-round-2", 2, 8, {"1.png": ("gear", 0.8, 0.4), "2.png": ("", 0.0, 0.9)})
    config = '<View><Image name="img" value="$image"/><Choices name="kind" toName="img"/></View>'
    answer = live.prediction(ranking, "1.png", live.control_names(config))
    assert answer["score"] == 0.4 and answer["model_version"] == "alstudy-p-round-2"
    assert answer["result"] == [
        {"from_name": "kind", "to_name": "img", "type": "choices", "value": {"choices": ["gear"]}, "score": 0.8}
    ]
    assert live.prediction(ranking, "2.png", ("label", "image"))["result"] == []  # before any label: no suggestion
    assert live.prediction(ranking, "labelled.png", ("label", "image"))["score"] == 0.0


def annotated(task_id: int, path: str, *labels: str) -> dict:
    """A Label Studio task with one annotation per label, the last one the latest."""
    annotations = [
        {
            "id": task_id * 10 + i,
            "updated_at": f"2026-12-06T10:00:0{i}Z",
            "result": [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [label]}}],
        }
        for i, label in enumerate(labels)
    ]
    return {"id": task_id, "data": {"path": path}, "annotations": annotations}


def test_annotations_become_labels_and_nothing_given_before_is_overwritten(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "images").mkdir()
    project = project_params("margin")
    tasks = [annotated(1, "a.png", "nut", "gear"), annotated(2, "b.png", "Bolt"), {"id": 3, "data": {"path": "c.png"}}]
    assert live.record_annotations("p", project, tasks) == 2
    assert {k: v.label for k, v in read_labels(Path("labels/p.csv")).items()} == {"a.png": "gear", "b.png": "bolt"}
    with caplog.at_level(logging.WARNING, logger="label"):
        assert live.record_annotations("p", project, [annotated(1, "a.png", "nut"), annotated(4, "d.png", "cog")]) == 0
    assert "a.png is 'nut' in Label Studio (task 1) but 'gear' in labels/p.csv (kept)" in caplog.text
    assert "'cog' (Label Studio task 4, d.png) is not a class of this project" in caplog.text
    assert read_labels(Path("labels/p.csv"))["a.png"].label == "gear"


class NoStudio:
    """Label Studio without an "alstudy: <name>" project (the protocol alone is under test); `backends`:
    the ML backends each project has connected."""

    url = "http://127.0.0.1:9"

    def __init__(self, backends: dict[int, list[str]] | None = None):
        self.backends = backends or {}

    def find_project(self, title):
        return None

    def ml_backends(self, project_id):
        return [{"url": url} for url in self.backends.get(project_id, [])]

    def tasks(self, project_id, updated_after=None, id_after=None, annotated=False):
        return [t for t in getattr(self, "task_list", []) if id_after is None or t["id"] > id_after]

    def import_predictions(self, project_id, predictions):
        self.published = (project_id, predictions)

    def show_model_version(self, project_id, version):
        self.shown = (project_id, version)

    def model_versions(self, project_id):
        return []


@pytest.fixture
def backend(tmp_path, monkeypatch):
    """A backend served on 127.0.0.1 from a ranking on disk, with basic auth: (url, loop, auth header)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "images").mkdir()
    live.Ranking("alstudy-p-round-1", 1, 4, {"1.png": ("nut", 0.7, 0.3)}).save(live_dir("p"))
    loop = ml_backend.LiveLoop("p", project_params("margin", retrain_every=3), NoStudio())
    server = ml_backend.serve(loop, "127.0.0.1", 0, "labeller", "pw-1")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    auth = "Basic " + base64.b64encode(b"labeller:pw-1").decode()
    yield f"http://127.0.0.1:{server.server_address[1]}", loop, auth
    server.shutdown()
    server.server_close()


def call(url: str, path: str, body: dict | None = None, auth: str = "") -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, headers={"Authorization": auth} if auth else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, {}


def test_the_backend_answers_label_studios_calls(backend):
    url, loop, auth = backend
    assert call(url, "/health", auth=auth) == (
        200,
        {"status": "UP", "model_class": "alstudy", "model_version": "alstudy-p-round-1"},
    )
    assert call(url, "/setup", {"project": "7.1796587303", "schema": "<View/>"}, auth) == (
        200,
        {"model_version": "alstudy-p-round-1"},
    )
    assert loop.project_id is None and loop._offered == 7  # taken once Label Studio shows the backend there
    tasks = [{"id": 1, "data": {"path": "1.png"}}, {"id": 2, "data": {"path": "elsewhere.png"}}]
    status, answer = call(url, "/predict", {"tasks": tasks, "project": "7.1796587303"}, auth)
    assert status == 200 and [r["score"] for r in answer["results"]] == [0.3, 0.0]
    assert answer["results"][0]["result"][0]["value"] == {"choices": ["nut"]}


def test_the_backend_asks_for_its_password_and_a_webhook_is_only_a_hint(backend):
    url, loop, auth = backend
    assert call(url, "/health")[0] == 401
    assert call(url, "/predict", {"tasks": []}, "Basic " + base64.b64encode(b"labeller:wrong").decode())[0] == 401
    woken = []
    loop.wake = lambda: woken.append(True)
    assert call(url, "/webhook", {"action": "ANNOTATION_CREATED", "annotation": {"result": []}})[0] == 200
    assert woken == [True]  # read again from Label Studio; nothing from the body went into the labels file
    assert not Path("labels/p.csv").exists()


def test_a_backend_for_other_machines_needs_a_password(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "images").mkdir()
    loop = ml_backend.LiveLoop("p", project_params("margin", retrain_every=3), NoStudio())
    with pytest.raises(PipelineError, match="--host 0.0.0.0: a backend reachable from other machines needs"):
        ml_backend.serve(loop, "0.0.0.0", 0)


def test_a_failed_round_is_tried_again_on_the_next_label_not_every_poll(tmp_path, monkeypatch):
    from alstudy.labelling.batches import Label, write_labels

    monkeypatch.chdir(tmp_path)
    (tmp_path / "images").mkdir()
    write_labels(Path("labels/p.csv"), {"a.png": Label("a.png", "nut", 0)})
    loop = ml_backend.LiveLoop("p", project_params("margin", retrain_every=1), NoStudio())
    assert loop.maybe_train()  # no params.yaml here: the round's process stops in one line
    deadline = time.monotonic() + 60
    while loop._failed_at is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert not loop.maybe_train()  # the watch asks every 2 s: no new process each time
    write_labels(Path("labels/p.csv"), {"a.png": Label("a.png", "nut", 0), "b.png": Label("b.png", "gear", 0)})
    assert loop.maybe_train()
    loop._round.wait()


def test_rounds_run_at_the_niceness_set_and_a_wrong_one_stops_the_backend_at_start(tmp_path, monkeypatch):
    from alstudy.labelling.batches import Label, write_labels

    monkeypatch.chdir(tmp_path)
    (tmp_path / "images").mkdir()
    project = project_params("margin", retrain_every=1)
    for wrong in ("low", "-5", "20", "", "²"):
        monkeypatch.setenv("ALSTUDY_ROUND_NICENESS", wrong)
        with pytest.raises(
            PipelineError, match=f"^ALSTUDY_ROUND_NICENESS='{wrong}': not a niceness; set it to a whole"
        ):
            ml_backend.LiveLoop("p", project, NoStudio())
    monkeypatch.delenv("ALSTUDY_ROUND_NICENESS")
    assert ml_backend.LiveLoop("p", project, NoStudio()).niceness == 10
    monkeypatch.setenv("ALSTUDY_ROUND_NICENESS", "0")
    loop = ml_backend.LiveLoop("p", project, NoStudio())
    write_labels(Path("labels/p.csv"), {"a.png": Label("a.png", "nut", 0)})
    assert loop.maybe_train()
    assert loop._round.args[-4:-2] == ["--niceness", "0"]
    loop._round.wait()


def test_a_project_named_by_setup_is_served_only_where_label_studio_shows_this_backend(tmp_path, monkeypatch):
    """Anyone on the machine can POST /setup: the project it names is read from only if Label Studio's API
    (with the person's token) shows this backend connected there."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "images").mkdir()
    studio = NoStudio({7: ["http://127.0.0.1:1"], 8: []})
    loop = ml_backend.LiveLoop("p", project_params("margin", retrain_every=3), studio)
    server = ml_backend.serve(loop, "127.0.0.1", 0)
    studio.backends[7] = [f"http://127.0.0.1:{loop.port}"]
    loop.attach(8, None)
    loop.catch_up()
    assert loop.project_id is None
    loop.attach(7, None)
    loop.catch_up()
    assert loop.project_id == 7
    deadline = time.monotonic() + 10
    while not hasattr(studio, "shown"):  # no labels: the seeded random ranking, sent in the background
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert studio.shown == (7, "alstudy-p-random")
    server.server_close()


@contextlib.contextmanager
def fake_studio(answer):
    """A server on 127.0.0.1 answering each request with `answer(method, path, headers)` -> (status, body)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Studio(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _serve(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, body = answer(self.command, self.path, self.headers)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _serve  # noqa: N815 - http.server's names

    server = ThreadingHTTPServer(("127.0.0.1", 0), Studio)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_expired_access_token_is_refreshed_and_the_call_made_again():
    """A Personal Access Token gives access tokens that last minutes (five in Label Studio 1.23); the live
    backend runs for hours. Here a server whose first access token has expired by the first call."""
    from alstudy.labelling.label_studio import LabelStudio

    issued, seen = [], []

    def answer(method, path, headers):
        if method == "POST":  # /api/token/refresh
            issued.append(f"access-{len(issued) + 1}")
            return 200, {"access": issued[-1]}
        seen.append(headers["Authorization"])
        return (401, {"detail": "expired"}) if seen[-1] == "Bearer access-1" else (200, {"results": [], "next": None})

    with fake_studio(answer) as url:
        assert LabelStudio(url, "personal.access.token").find_project("alstudy: p") is None
    assert seen == ["Bearer access-1", "Bearer access-2"] and issued == ["access-1", "access-2"]


def test_a_backend_label_studio_will_not_call_is_one_line_saying_what_to_set():
    """Label Studio 1.23 refuses a backend on a private address unless started with ML_BLOCK_LOCAL_IP=false."""
    from alstudy.labelling.label_studio import LabelStudio

    def answer(method, path, headers):
        if method == "POST":
            return 403, {"detail": "URL resolves to a reserved network address (block: 127.0.0.0/8)"}
        return 200, []  # GET /api/ml: nothing saved

    with fake_studio(answer) as url, pytest.raises(PipelineError) as caught:
        LabelStudio(url, "legacy-token").connect_backend(3, "http://127.0.0.1:9090", "alstudy p")
    message = str(caught.value)
    assert "reserved network address" in message and "started with ML_BLOCK_LOCAL_IP=false" in message
    assert "\n" not in message


def test_each_round_sends_label_studio_the_scores_of_the_tasks_it_puts_first(tmp_path, monkeypatch):
    """Label Studio takes about 3 ms a prediction: the top `scores_sent` tasks by priority get the round's
    scores (the Data Manager lists them first), the rest keep none until they rise."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "images").mkdir()
    studio = NoStudio()
    studio.task_list = [{"id": i, "data": {"path": f"{i}.png"}} for i in range(1, 6)]
    loop = ml_backend.LiveLoop("p", project_params("margin", scores_sent=2), studio)
    loop.project_id = 7
    priorities = {"1.png": 0.2, "2.png": 0.9, "3.png": 0.1, "4.png": 0.5, "5.png": 0.3}
    loop.ranking = live.Ranking("alstudy-p-round-1", 1, 3, {k: ("nut", 0.6, v) for k, v in priorities.items()})
    loop.publish()
    project_id, sent = studio.published
    assert project_id == 7 and [(p["task"], p["score"]) for p in sent] == [(2, 0.9), (4, 0.5)]
    assert studio.shown == (7, "alstudy-p-round-1")
    loop.project = project_params("margin", scores_sent=0)  # all
    loop.publish()
    assert sorted(p["task"] for p in studio.published[1]) == [1, 2, 3, 4, 5]


def test_with_a_live_loop_an_export_labelling_any_image_of_the_folder_imports(tmp_path, monkeypatch):
    """`label pull` / `import` accept every image of the folder once the project has a live loop (Label
    Studio holds them all, not a batch), so the command the backend prints for a disagreement works."""
    from alstudy.labelling.project import import_labels

    monkeypatch.chdir(tmp_path)
    (tmp_path / "images").mkdir()
    for name in ("a.png", "b.png"):
        make_png(tmp_path / "images" / name)
    export = tmp_path / "export.json"
    export.write_text(json.dumps([annotated(1, "a.png", "nut"), annotated(2, "b.png", "gear")]))
    with pytest.raises(PipelineError, match="no batch issued for 'p' yet"):
        import_labels("p", project_params("margin"), export, relabel=False)
    live_dir("p").mkdir(parents=True)
    assert import_labels("p", project_params("margin"), export, relabel=False) == (2, 0, 0)
    assert {k: (v.label, v.batch) for k, v in read_labels(Path("labels/p.csv")).items()} == {
        "a.png": ("nut", 0),
        "b.png": ("gear", 0),
    }
    export.write_text(json.dumps([annotated(1, "a.png", "bolt"), annotated(3, "elsewhere.png", "nut")]))
    with pytest.raises(PipelineError, match="'elsewhere.png' is not in any batch issued"):
        import_labels("p", project_params("margin"), export, relabel=True)


def make_png(path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
