"""Real services for tests: a throw-away PostgreSQL cluster and an MLflow tracking server on 127.0.0.1."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]
_SERVERS: dict[str, subprocess.Popen] = {}  # tracking servers by URL, for kill_tracking_server
_CLUSTERS: dict[str, list[list[str]]] = {}  # PostgreSQL clusters by URI: their stop and start commands


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin() -> Path:
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    message = "PostgreSQL is not installed (apt-get install -y postgresql; .ci/run does it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the `postgres` account then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def postgres_cluster(folder: Path) -> Iterator[str]:
    """initdb + pg_ctl on 127.0.0.1 at a free port; yields the URI of its `postgres` database."""
    bin_dir = postgres_bin()
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        for parent in folder.parents:  # the account must reach its data folder
            if parent == Path("/"):
                break
            parent.chmod(parent.stat().st_mode | 0o005)
    data, port = folder / "data", free_port()
    subprocess.run(
        _as_postgres(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", "mlflow", "-A", "trust", "--no-sync", "-E", "UTF8"]
        ),
        check=True,
        capture_output=True,
    )
    options = f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off"
    start = _as_postgres(
        [str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "server.log"), "-w", "start"]
    )
    subprocess.run(start, check=True, capture_output=True)
    uri = f"postgresql://mlflow@127.0.0.1:{port}/postgres"
    _CLUSTERS[uri] = [_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]), start]
    try:
        yield uri
    finally:
        _CLUSTERS.pop(uri, None)
        subprocess.run(
            _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]), capture_output=True
        )


def restart_postgres(uri: str, down_s: float) -> None:
    """Stop the cluster at `uri` (its clients' connections drop), wait `down_s` seconds, start it again."""
    stop, start = _CLUSTERS[uri]
    subprocess.run(stop, check=True, capture_output=True)
    time.sleep(down_s)
    subprocess.run(start, check=True, capture_output=True)


def create_database(uri: str, name: str) -> str:
    import psycopg2

    connection = psycopg2.connect(uri)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()
    # SQLAlchemy (MLflow's database layer) needs the driver named: postgresql:// means psycopg 3 to it.
    return uri.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://") + f"/{name}"


@contextmanager
def tracking_server(
    backend_uri: str, folder: Path, auth: bool = False, env: dict | None = None, port: int | None = None
) -> Iterator[str]:
    """The project's alstudy/console/tracking_server.py on 127.0.0.1 (at `port`, or a free one); yields its
    URL once it answers."""
    port = port or free_port()
    command = [
        sys.executable,
        "-m",
        "alstudy.console.tracking_server",
        "--backend-store-uri",
        backend_uri,
        "--artifacts-destination",
        str(folder / "artifacts"),
        "--port",
        str(port),
        "--workers",
        "1",
        "--auth-db",
        str(folder / "auth.db"),
    ] + (["--auth"] if auth else [])
    folder.mkdir(parents=True, exist_ok=True)
    log = open(folder / "server.log", "a")
    server = subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except urllib.error.HTTPError:  # it answers, if only to refuse
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"tracking server did not start:\n{(folder / 'server.log').read_text()[-3000:]}")
                time.sleep(0.5)
        _SERVERS[url] = server
        yield url
    finally:
        _SERVERS.pop(url, None)
        _signal_group(server.pid, signal.SIGTERM)  # the script, the server and its workers
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            _signal_group(server.pid, signal.SIGKILL)
        log.close()


def kill_tracking_server(url: str) -> None:
    """SIGKILL the server at `url` and its workers, as a crash or a lost machine would stop it."""
    server = _SERVERS[url]
    _signal_group(server.pid, signal.SIGKILL)
    server.wait(timeout=20)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass  # already gone


@contextmanager
def ray_cluster(workdirs: list[Path], cpus_per_node: int = 1) -> Iterator[str]:
    """A Ray head and one more node per extra workdir, on this machine; yields the head's address.

    Each node gets its own working folder (AL_GRID_WORKDIR), as separate machines would."""
    ray = str(Path(sys.executable).parent / "ray")
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths have a length limit
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    common = ["--num-cpus", str(cpus_per_node), "--disable-usage-stats", "--node-ip-address", "127.0.0.1"]
    try:
        for i, workdir in enumerate(workdirs):
            workdir.mkdir(parents=True, exist_ok=True)
            role = (
                ["--head", "--port", str(port), "--include-dashboard", "false", "--temp-dir", str(temp)]
                if i == 0
                else ["--address", f"127.0.0.1:{port}"]
            )
            subprocess.run(
                [ray, "start", *role, *common],
                env={**env, "AL_GRID_WORKDIR": str(workdir)},
                check=True,
                capture_output=True,
                timeout=120,
            )
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


# --------------------------------------------------------------------------- Label Studio

LABEL_STUDIO_VENV = REPO / ".venv-label-studio"  # scripts/setup.sh --tests installs it there, apart from .venv


def label_studio_bin() -> Path:
    executable = Path(os.environ.get("ALSTUDY_LABEL_STUDIO") or LABEL_STUDIO_VENV / "bin" / "label-studio")
    if executable.exists():
        return executable
    message = f"Label Studio is not installed at {executable} (bash scripts/setup.sh --tests installs it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def label_studio(folder: Path, document_root: Path) -> Iterator[tuple[str, str]]:
    """A fresh Label Studio on 127.0.0.1 serving local files under `document_root`; yields its URL and a
    Personal Access Token, made as a person makes one (logged in, Account & Settings)."""
    import requests

    executable, port = label_studio_bin(), free_port()
    url, email, password = f"http://127.0.0.1:{port}", "person@example.org", "labelling-pw-1"
    env = {
        **os.environ,
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(document_root),
    }
    log = open(folder / "label-studio.log", "w")
    command = [str(executable), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port)]
    command += ["--data-dir", str(folder / "data"), "--username", email, "--password", password]
    process = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240  # a first start migrates its database: about a minute on 2 cores
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Label Studio did not start:\n" + (folder / "label-studio.log").read_text()[-3000:])
            try:
                if requests.get(f"{url}/api/version", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(1)
        session = requests.Session()
        session.get(f"{url}/user/login/", timeout=30)
        session.post(
            f"{url}/user/login/",
            data={"email": email, "password": password, "csrfmiddlewaretoken": session.cookies.get("csrftoken")},
            headers={"Referer": url},
            allow_redirects=False,
            timeout=30,
        )
        made = session.post(
            f"{url}/api/token/", headers={"X-CSRFToken": session.cookies.get("csrftoken"), "Referer": url}
        )
        made.raise_for_status()
        yield url, made.json()["token"]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
