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
_CLUSTERS: dict[str, dict] = {}  # PostgreSQL clusters by URI: their stop, start and setup commands, their folder


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


@contextmanager
def postgres_cluster(folder: Path) -> Iterator[str]:
    """A throw-away cluster on 127.0.0.1 at a free port, set up by `alstudy tracking-db` as the docs set one
    up: role mlflow, not a superuser, its password in a 0600 pgpass file in `folder` (PGPASSFILE while this
    runs, where libpq finds it), no `trust` line. Yields the URI of the role's database `mlflow` (no password
    in it); create_database adds more, owned by the role.

    The cluster itself (data, socket, log) is in a folder of its own under /tmp (cluster_folder(uri)), its
    log copied to `folder` at the end: as root, PostgreSQL runs as `postgres`, which must reach it, and
    pytest makes /tmp/pytest-of-<user> 0700 again whenever another session starts."""
    import alstudy.console.tracking_db as tracking_db

    postgres_bin()  # skips (or fails in CI) without PostgreSQL
    folder.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="alstudy-pg-", dir="/tmp"))
    if os.geteuid() == 0:
        shutil.chown(home, "postgres", "postgres")
        home.chmod(0o755)  # its Unix socket is there: other local users reach it, and pg_hba.conf answers them
    data, port, pgpass = home / "data", free_port(), folder / "pgpass"
    setup = [sys.executable, "-m", "alstudy.console.tracking_db", "--data-dir", str(data), "--port", str(port)]
    setup += ["--socket-dir", str(home), "--pgpass", str(pgpass), "--log", str(home / "server.log"), "--no-fsync"]
    previous, uri = os.environ.get("PGPASSFILE"), f"postgresql://mlflow@127.0.0.1:{port}/mlflow"
    try:
        done = subprocess.run(setup, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
        os.environ["PGPASSFILE"] = str(pgpass)
        _CLUSTERS[uri] = {
            "stop": tracking_db.pg_ctl(data, "stop", mode="fast"),
            "start": tracking_db.pg_ctl(data, "start", log=home / "server.log"),
            "setup": setup,
            "folder": home,
        }
        yield uri
    finally:
        _CLUSTERS.pop(uri, None)
        subprocess.run(tracking_db.pg_ctl(data, "stop", mode="immediate"), capture_output=True)
        if (home / "server.log").exists():
            shutil.copyfile(home / "server.log", folder / "server.log")
        shutil.rmtree(home, ignore_errors=True)
        if previous is None:
            os.environ.pop("PGPASSFILE", None)
        else:
            os.environ["PGPASSFILE"] = previous


def cluster_folder(uri: str) -> Path:
    """The folder of the cluster at `uri`: its data folder `data`, its Unix socket, its log."""
    return _CLUSTERS[uri]["folder"]


def restart_postgres(uri: str, down_s: float) -> None:
    """Stop the cluster at `uri` (its clients' connections drop), wait `down_s` seconds, start it again."""
    subprocess.run(_CLUSTERS[uri]["stop"], check=True, capture_output=True)
    time.sleep(down_s)
    subprocess.run(_CLUSTERS[uri]["start"], check=True, capture_output=True)


def create_database(uri: str, name: str) -> str:
    """A new database in the cluster at `uri`, made by `alstudy tracking-db` (as its superuser) and owned by
    the role; its SQLAlchemy URI."""
    done = subprocess.run([*_CLUSTERS[uri]["setup"], "--database", name], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    # SQLAlchemy (MLflow's database layer) needs the driver named: postgresql:// means psycopg 3 to it.
    return uri.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://") + f"/{name}"


_CREDENTIALS: dict[str, str] = {}


def tracking_credentials() -> dict[str, str]:
    """The admin test servers start with, one per test process (restarts on one auth db keep it): the two
    variables MLflow's clients read, as a person exports them."""
    import secrets

    if not _CREDENTIALS:
        _CREDENTIALS.update(MLFLOW_TRACKING_USERNAME="alstudy-test", MLFLOW_TRACKING_PASSWORD=secrets.token_urlsafe(18))
    return dict(_CREDENTIALS)


@contextmanager
def tracking_server(
    backend_uri: str, folder: Path, auth: bool = True, env: dict | None = None, port: int | None = None
) -> Iterator[str]:
    """The project's alstudy/console/tracking_server.py on 127.0.0.1 (at `port`, or a free one); yields its
    URL once it answers. Basic auth is on, as in the command: its admin is `env`'s MLFLOW_TRACKING_USERNAME /
    MLFLOW_TRACKING_PASSWORD, else tracking_credentials(); while it runs they are in os.environ (where not
    set already), so this process's MLflow clients and the commands it starts log in. auth=False: --no-auth."""
    port = port or free_port()
    credentials = {**tracking_credentials(), **(env or {})} if auth else {}
    exported = {key: value for key, value in credentials.items() if key.startswith("MLFLOW_TRACKING_")}
    exported = {key: value for key, value in exported.items() if key not in os.environ}
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
    ]
    # A checked password is trusted for 10 min: MLflow's default checks it on every request (scrypt, about
    # 0.1 s of CPU each), which made the tracking tests' hundreds of requests a minute slower on 2 cores.
    command += ["--auth-cache-seconds", "600"] if auth else ["--no-auth"]
    folder.mkdir(parents=True, exist_ok=True)
    log = open(folder / "server.log", "a")
    server = subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, **credentials, **(env or {})},
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
        os.environ.update(exported)
        yield url
    finally:
        for key in exported:
            os.environ.pop(key, None)
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
    """A Ray cluster on this machine, started as the docs start one (`alstudy ray-start`); yields the head's
    address. Each node gets its own working folder (AL_GRID_WORKDIR), as separate machines would.

    One workdir: the docs' local cluster, every socket on 127.0.0.1. More: Ray adds no node to a local
    cluster, so this is the docs' cluster across machines, on this machine's IP, with token authentication;
    while it runs, os.environ holds RAY_AUTH_MODE and RAY_AUTH_TOKEN_PATH (a 0600 file), so that drivers the
    test starts connect as the docs' driver does."""
    import secrets

    from alstudy.scale import ray_node

    alstudy = str(Path(sys.executable).parent / "alstudy")
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths have a length limit
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    # Ray runs its workers at nice 15 (raylet's worker_niceness), polite on a node of its own; here the
    # node shares the cores with the other test workers, whose tests at nice 0 starved the cells (the grid
    # test took 560 s in the suite, 142 s alone).
    env["RAY_worker_niceness"] = "0"
    auth: dict[str, str] = {}
    address, across = f"127.0.0.1:{port}", []
    if len(workdirs) > 1:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.connect(("192.0.2.1", 9))  # sends nothing: the kernel picks the interface it would use
                ip = probe.getsockname()[0]
        except OSError:
            shutil.rmtree(temp, ignore_errors=True)
            pytest.skip("a Ray cluster of several nodes needs a network interface besides loopback")
        token = temp / "auth_token"
        descriptor = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(descriptor, secrets.token_hex(32).encode())
        os.close(descriptor)
        auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
        address, across = f"{ip}:{port}", ["--node-ip-address", ip]
    saved = {key: os.environ.get(key) for key in auth}
    try:
        for i, workdir in enumerate(workdirs):
            workdir.mkdir(parents=True, exist_ok=True)
            role = ["--head", "--port", str(port), "--client-server-port", str(free_port())]
            command = [alstudy, "ray-start", *(role if i == 0 else ["--address", address]), *across]
            command += ["--num-cpus", str(cpus_per_node), "--temp-dir", str(temp)]
            done = subprocess.run(
                command,
                env={**env, **auth, "AL_GRID_WORKDIR": str(workdir)},
                capture_output=True,
                text=True,
                timeout=180,
            )
            assert done.returncode == 0, " ".join(command) + "\n" + done.stdout[-3000:] + done.stderr[-3000:]
        os.environ.update(auth)
        yield address
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        ray_node.stop(str(temp), grace=2)  # this cluster's processes only; `ray stop` would stop every cluster here
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
        "ML_BLOCK_LOCAL_IP": "false",  # as docs/user-guide/labelling.md says, for a backend on this machine
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
