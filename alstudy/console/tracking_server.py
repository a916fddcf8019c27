"""Start a shared MLflow tracking server: PostgreSQL behind it, artifacts served through it, basic auth on.

    alstudy tracking-db --data-dir ~/tracking-pg/data --port 5433       # its database, once
    export MLFLOW_TRACKING_USERNAME=study; read -rs MLFLOW_TRACKING_PASSWORD; export MLFLOW_TRACKING_PASSWORD
    alstudy tracking-server --backend-store-uri postgresql+psycopg2://mlflow@127.0.0.1:5433/mlflow
    alstudy tracking-server --backend-store-uri ... --host 0.0.0.0     # other machines (behind TLS)

Every local user of a machine reaches 127.0.0.1, so MLflow's basic-auth app is on by default: its admin
is MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD from the environment (the same variables every
client sets), never from params.yaml, git or a command line; MLflow creates that account when the auth
database (--auth-db, kept 0600) is new. --no-auth runs the open server, on loopback only, and says first
that every local user can then read and write the store.

The auth settings, the admin's password among them, never reach a disk: they are in an anonymous
in-memory file (memfd, sealed) that MLflow's processes read as /proc/<this process>/fd/<n> while this
process lives. Killed, even with SIGKILL, it leaves nothing behind.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from alstudy.tracking import store

LOOPBACK = ("127.0.0.1", "localhost", "::1")
MLFLOW_DEFAULT_PASSWORD = "password1234"
OPEN_WARNING = (
    "tracking_server: WARNING: --no-auth: every local user of this machine can read and write this store "
    "(127.0.0.1 is open to all of them); leave out --no-auth on a shared machine"
)


class ServerError(Exception):
    """One line for the user: what is wrong and how to fix it."""


def auth_config(username: str, password: str, auth_db: Path, cache_seconds: int = 0) -> str:
    username, password = username.replace("%", "%%"), password.replace("%", "%%")  # configparser's escape
    return (
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{auth_db.resolve()}\n"
        f"admin_username = {username}\n"
        f"admin_password = {password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        f"auth_cache_ttl_seconds = {cache_seconds}\n"
    )


def credentials_from_env(env: dict) -> tuple[str, str]:
    username, password = env.get("MLFLOW_TRACKING_USERNAME", ""), env.get("MLFLOW_TRACKING_PASSWORD", "")
    if not username or not password:
        raise ServerError(
            "basic auth (the default): set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD in the "
            "environment (the server's admin; clients use the same variables), the password without putting "
            "it on a command line: `read -rs MLFLOW_TRACKING_PASSWORD; export MLFLOW_TRACKING_PASSWORD`"
        )
    if any(value != value.strip() or "\n" in value or "\r" in value for value in (username, password)):
        raise ServerError("MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD: one line each, no space around")
    if password == MLFLOW_DEFAULT_PASSWORD or len(password) < 12:
        raise ServerError(
            "MLFLOW_TRACKING_PASSWORD must be at least 12 characters and not MLflow's default; pick another"
        )
    return username, password


def private_auth_db(path: Path) -> bool:
    """Make the auth database 0600 before MLflow opens it (an empty file is an empty SQLite database);
    whether it existed already."""
    existed = path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return existed


def memory_file(text: str) -> int:
    """An anonymous, sealed in-memory file holding `text`: no name on any disk, gone with this process."""
    if not hasattr(os, "memfd_create"):
        raise ServerError("basic auth needs Linux here (memfd_create, to keep the admin's password off disk)")
    fd = os.memfd_create("mlflow-basic-auth", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.write(fd, text.encode())
    seals = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    return fd


def server_command(args: argparse.Namespace) -> list[str]:
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    if mlflow is None:
        raise ServerError("mlflow: not found; run `bash scripts/setup.sh` and start this with .venv/bin/python")
    command = [
        mlflow,
        "server",
        "--backend-store-uri",
        args.backend_store_uri,
        "--serve-artifacts",
        "--artifacts-destination",
        str(Path(args.artifacts_destination).resolve()),
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--workers",
        str(args.workers),
    ]
    if args.auth:
        command += ["--app-name", "basic-auth"]
    return command


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend-store-uri", required=True, help="postgresql+psycopg2://user@host:port/database")
    parser.add_argument(
        "--artifacts-destination",
        default="mlartifacts-server",
        help="where the server keeps artifacts (default: ./mlartifacts-server)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--auth",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="MLflow's basic-auth app (default); --no-auth: open to every local user, loopback only",
    )
    parser.add_argument("--auth-db", default="mlflow-auth.db", help="users and permissions (sqlite file, 0600)")
    parser.add_argument(
        "--auth-cache-seconds",
        type=int,
        default=0,
        help="how long a worker trusts a password it checked (default 0: every request, about 0.1 s of CPU "
        "each); a changed or deleted password keeps working that long",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The server needs no client's password, and gets no other source for its admin than the settings below.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD")
    }
    # MLflow's job runner (seven huey worker processes) runs GenAI jobs a study never submits; set the
    # variable to true yourself to keep it.
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    try:
        # A sqlite store and the artifacts folder the server makes: its user's alone, as `alstudy` makes them.
        backend_file = store.sqlite_path(args.backend_store_uri)
        if backend_file is not None:
            backend_file.parent.mkdir(parents=True, exist_ok=True)
            store.create_private(backend_file)
        Path(args.artifacts_destination).mkdir(mode=0o700, parents=True, exist_ok=True)
        if not args.auth:
            if args.host not in LOOPBACK:
                raise ServerError(
                    f"--host {args.host} --no-auth: other machines could reach a server nobody guards; "
                    "leave out --no-auth (and set MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD)"
                )
            print(OPEN_WARNING, file=sys.stderr, flush=True)
        config = None
        if args.auth:
            username, password = credentials_from_env(os.environ)
            if private_auth_db(Path(args.auth_db)):  # MLflow creates the admin only into a new auth database
                print(
                    f"tracking_server: {args.auth_db} exists: its accounts stand as they are; the admin's "
                    "password changes only through MLflow's user API (or start with a new --auth-db)",
                    file=sys.stderr,
                )
            config = memory_file(auth_config(username, password, Path(args.auth_db), args.auth_cache_seconds))
            # MLflow's processes (the server, uvicorn's workers) are this user's: they may open our fd by /proc.
            env["MLFLOW_AUTH_CONFIG_PATH"] = f"/proc/{os.getpid()}/fd/{config}"
            # The auth app's CSRF key; several servers behind one address must share it (set it yourself).
            env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_hex(32))
        if not args.backend_store_uri.startswith("postgresql"):
            print(
                f"tracking_server: note: {args.backend_store_uri.split(':', 1)[0]} backend; a shared server "
                "is meant for PostgreSQL",
                file=sys.stderr,
            )
        server = subprocess.Popen(server_command(args), env=env)
        signal.signal(signal.SIGTERM, lambda *_: server.terminate())
        print(
            f"tracking_server: http://{args.host}:{args.port} (auth {'on' if args.auth else 'OFF'}); "
            f"point the pipeline at it with MLFLOW_TRACKING_URI",
            file=sys.stderr,
            flush=True,
        )
        try:
            return server.wait()
        except KeyboardInterrupt:
            server.terminate()
            return server.wait()
        finally:
            if config is not None:
                os.close(config)
    except ServerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
