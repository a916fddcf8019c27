"""A shared machine: another local user gets nothing from the tracking server or its PostgreSQL.

PostgreSQL is set up by `alstudy tracking-db`, the command docs/user-guide/tracking-server.md gives, and
`alstudy tracking-server` starts with its defaults (basic auth on). Then, as the OS user `nobody`: the
database refuses the role without its password over TCP, and everyone over the Unix socket; the tracking
server's REST API answers 401. The role is no superuser, the auth database is 0600, and no file under
the temporary folder holds the admin's password, neither while the server runs nor after a SIGKILL.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import stat
import subprocess
import tempfile
import time
import urllib.request
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest
from services import cluster_folder, kill_tracking_server, postgres_bin, postgres_cluster, tracking_server

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def as_nobody(*command: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`command` as the local user `nobody`, with a bare environment (plus `env`)."""
    assignments = [f"{key}={value}" for key, value in {"PATH": "/usr/bin:/bin", **(env or {})}.items()]
    return subprocess.run(
        ["runuser", "-u", "nobody", "--", "env", "-i", *assignments, *command],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )


def nobody_posts(url: str, body: dict) -> str:
    """The HTTP status `nobody` gets for a POST without credentials."""
    if shutil.which("curl"):
        done = as_nobody(
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            json.dumps(body),
            url,
        )
        return done.stdout.strip()
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None:
        pytest.fail("neither curl nor /usr/bin/python3 is here to make a request as nobody")
    code = (
        "import sys, urllib.request, urllib.error\n"
        "request = urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), method='POST',"
        " headers={'Content-Type': 'application/json'})\n"
        "try:\n    print(urllib.request.urlopen(request, timeout=30).status)\n"
        "except urllib.error.HTTPError as error:\n    print(error.code)\n"
    )
    return as_nobody(python, "-c", code, url, json.dumps(body)).stdout.strip()


def files_holding(secret: str, roots: list[Path], since: float) -> list[str]:
    """Regular files under `roots`, written at or after `since` (a time.time()), whose bytes contain `secret`.
    Only those: /tmp also holds other tests' projects and, in CI, the clone's virtual environments (gigabytes
    that took a minute of CPU to read, and that no server wrote to)."""
    needle, found = secret.encode(), []
    for root in roots:
        for folder, _, names in os.walk(root):
            for name in names:
                path = Path(folder) / name
                try:
                    if path.is_symlink() or not path.is_file() or path.stat().st_mtime < since:
                        continue
                    if needle in path.read_bytes():
                        found.append(str(path))
                except OSError:
                    continue  # gone meanwhile, or not a file one can read
    return found


def test_another_local_user_gets_nothing_from_the_server_or_its_database(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root: it runs commands as another local user (runuser -u nobody)")
    psql = str(postgres_bin() / "psql")
    admin = {"MLFLOW_TRACKING_USERNAME": "study-admin", "MLFLOW_TRACKING_PASSWORD": secrets.token_urlsafe(24)}
    temp_roots = sorted({Path("/tmp"), Path(tempfile.gettempdir()), tmp_path})
    started = time.time() - 2  # before anything holding the password existed (a coarse file clock's margin)
    with postgres_cluster(tmp_path / "pg") as postgres:
        port, cluster = postgres.rsplit(":", 1)[1].split("/")[0], cluster_folder(postgres)
        # Over TCP as the tracking server's role, without its password: nobody cannot read the owner's pgpass.
        tcp = as_nobody(
            psql,
            "-X",
            "-w",
            f"host=127.0.0.1 port={port} user=mlflow dbname=mlflow",
            "-c",
            "SELECT 1",
            env={"PGPASSFILE": os.environ["PGPASSFILE"]},
        )
        assert tcp.returncode != 0 and "no password supplied" in tcp.stderr, tcp.stderr
        # Over the Unix socket: `peer` lets in only the OS user postgres as postgres; no line for anyone else.
        for user, refusal in (("postgres", "Peer authentication failed"), ("mlflow", "no pg_hba.conf entry")):
            local = as_nobody(
                psql, "-X", "-w", "-h", str(cluster), "-p", port, "-U", user, "-d", "postgres", "-c", "SELECT 1"
            )
            assert local.returncode != 0 and refusal in local.stderr, (user, local.stderr)
        hba = (cluster / "data" / "pg_hba.conf").read_text()
        assert not [line for line in hba.splitlines() if "trust" in line.split("#", 1)[0]], hba
        # The owner, with the password from its pgpass file: a role that is no superuser.
        with closing(psycopg2.connect(postgres)) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user")
            assert cursor.fetchone() == (False, False, False)
            cursor.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'mlflow'")
            assert cursor.fetchone() == ("mlflow",)
        assert stat.S_IMODE(Path(os.environ["PGPASSFILE"]).stat().st_mode) == 0o600

        backend = postgres.replace("postgresql://", "postgresql+psycopg2://")
        with tracking_server(backend, tmp_path / "server", env=admin) as url:  # the command's default: auth on
            create = f"{url}/api/2.0/mlflow/experiments/create"
            assert nobody_posts(create, {"name": "intruder"}) == "401"
            login = base64.b64encode(
                f"{admin['MLFLOW_TRACKING_USERNAME']}:{admin['MLFLOW_TRACKING_PASSWORD']}".encode()
            )
            request = urllib.request.Request(
                create,
                data=json.dumps({"name": "admitted"}).encode(),
                headers={"Content-Type": "application/json", "Authorization": f"Basic {login.decode()}"},
            )
            assert urllib.request.urlopen(request, timeout=30).status == 200  # the same request, logged in
            assert stat.S_IMODE((tmp_path / "server" / "auth.db").stat().st_mode) == 0o600
            assert files_holding(admin["MLFLOW_TRACKING_PASSWORD"], temp_roots, started) == []
            kill_tracking_server(url)  # SIGKILL to the command, MLflow and its workers
        assert files_holding(admin["MLFLOW_TRACKING_PASSWORD"], temp_roots, started) == []
