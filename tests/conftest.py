"""Fixtures shared by the tests: a temp project, a local HTTP server, a dead URL.

Plain helpers (file formats, params edits, image folders, tiny projects) are in the helpers package.
"""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import threading
from functools import partial
from pathlib import Path

import pytest

from helpers.repo import REPO_ROOT


def pytest_configure(config):
    # Tests run stages in this process and in subprocesses and compare their numbers: both must
    # compute as a stage with model.threads: 1 does (deterministic kernels, one thread), set before
    # TensorFlow's first op (it refuses to change threads later, whichever test happens to start it).
    from alstudy.learning.model import configure_tensorflow

    configure_tensorflow(1)
    # pytest-xdist reorders --dist loadfile's files by their number of tests unless told not to, which put
    # the one-test end-to-end file last; keep LONGEST_FIRST's order (below) instead.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A temp project folder holding a copy of the repo's params.yaml, made the cwd.

    Stages read ./params.yaml and write data/raw, data/prepared and metrics/
    relative to the cwd. Rewrite params with ``write_params(project, ...)``.
    """
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(REPO_ROOT / "params.yaml", folder / "params.yaml")
    (folder / "stages").symlink_to(REPO_ROOT / "stages")  # `python -m stages.<name>` from the project, as DVC runs it
    monkeypatch.chdir(folder)
    return folder


# --------------------------------------------------------------------------- HTTP


class ServedURL(str):
    """A base URL ("http://127.0.0.1:<port>/") that also carries the server's request log."""

    requests: list[str]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; records each requested path; logs nothing."""

    def __init__(self, *args, request_log: list[str], truncate: bool, **kwargs):
        self.request_log, self.truncate = request_log, truncate
        super().__init__(*args, **kwargs)

    def log_message(self, format, *args):  # noqa: A002 - http.server's name
        pass

    def do_GET(self):
        self.request_log.append(self.path)
        if not self.truncate:
            return super().do_GET()
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            return self.send_error(404)
        body = path.read_bytes()
        # Promise the whole file, send half of it, then close the connection.
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture
def http_server():
    """Factory: ``http_server(directory, truncate=False) -> url`` serves `directory` on 127.0.0.1.

    Each call starts a ThreadingHTTPServer on a free port in a daemon thread and
    returns its base URL "http://127.0.0.1:<port>/" as a str whose ``.requests``
    lists the paths requested so far. With ``truncate=True`` every file is
    answered with its full Content-Length but only half the body, then the
    connection closes. All servers shut down when the test ends.
    """
    servers = []

    def serve(directory, truncate: bool = False) -> ServedURL:
        log: list[str] = []
        handler = partial(_QuietHandler, directory=str(directory), request_log=log, truncate=truncate)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        servers.append((server, thread))
        url = ServedURL(f"http://127.0.0.1:{server.server_address[1]}/")
        url.requests = log
        return url

    yield serve
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def dead_url() -> str:
    """An http:// base URL on 127.0.0.1 whose port nothing listens on (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """Environment for running `python -m stages.<name>` from a temp project."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the project is installed (pip install -e .): stages find it from any folder
    return env


# `.ci/run`'s slow tier gives each test file to one worker (--dist loadfile). Longest first (measured from a
# fresh clone on an idle 2-core machine, seconds in brackets) lets the short files fill in behind the long
# ones, so the workers finish close together; the order of tests inside a file is kept.
LONGEST_FIRST = (
    "tests/scale/test_grid.py",  # 403
    "tests/pipeline/test_end_to_end.py",  # 343
    "tests/bench/test_benchmarks.py",  # 195
    "tests/learning/test_resume.py",  # 159
    "tests/tracking/test_tracking_outage.py",  # 144
    "tests/labelling/test_label_studio.py",  # 130 (the live loop's test about 75 of it)
    "tests/scale/test_one_process_per_cell.py",  # 119
    "tests/labelling/test_labelling.py",  # 74
    "tests/learning/test_checkpoint_reuse.py",  # 65
    "tests/tracking/test_tracking_server.py",  # 54
    "tests/tracking/test_study_outage.py",  # 49
    "tests/learning/test_al_run.py",  # 41
    "tests/tracking/test_shared_machine.py",  # 38
)


def pytest_xdist_auto_num_workers(config):
    """`-n auto` for the slow tier: one worker more than cores. Its tests wait a third of the time (servers
    and Label Studio starting, outages held open, processes killed and restarted): on 2 cores it used 25 min
    of CPU in 18.9 min with two workers. The fast tier keeps one worker per core."""
    if config.getoption("markexpr", "") == "slow":
        return len(os.sched_getaffinity(0)) + 1
    return None


def pytest_collection_modifyitems(config, items):
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
