"""Start a shared MLflow tracking server: PostgreSQL behind it, artifacts served through it.

    python -m alstudy.console.tracking_server --backend-store-uri postgresql+psycopg2://mlflow@127.0.0.1:5432/mlflow
    python -m alstudy.console.tracking_server --backend-store-uri ... --host 0.0.0.0 --auth   # other machines

It binds to 127.0.0.1 unless told otherwise, and refuses any other address
without --auth: with --auth it runs MLflow's basic-auth app, whose admin is
MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD from the environment (the
same variables every client sets), never from params.yaml or git; MLflow
creates that account when the auth database (--auth-db) is new. The auth
settings go to a private temporary file for the server's lifetime.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

LOOPBACK = ("127.0.0.1", "localhost", "::1")
MLFLOW_DEFAULT_PASSWORD = "password1234"


class ServerError(Exception):
    """One line for the user: what is wrong and how to fix it."""


def auth_config(username: str, password: str, auth_db: Path) -> str:
    return (
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{auth_db.resolve()}\n"
        f"admin_username = {username}\n"
        f"admin_password = {password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )


def credentials_from_env(env: dict) -> tuple[str, str]:
    username, password = env.get("MLFLOW_TRACKING_USERNAME", ""), env.get("MLFLOW_TRACKING_PASSWORD", "")
    if not username or not password:
        raise ServerError(
            "--auth: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD in the environment "
            "(the server's admin; clients use the same variables)"
        )
    if password == MLFLOW_DEFAULT_PASSWORD or len(password) < 12:
        raise ServerError(
            "--auth: MLFLOW_TRACKING_PASSWORD must be at least 12 characters and not MLflow's default; pick another"
        )
    return username, password


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
    parser.add_argument("--auth", action="store_true", help="MLflow's basic-auth app; needed off loopback")
    parser.add_argument("--auth-db", default="mlflow-auth.db", help="users and permissions (sqlite file)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = dict(os.environ)
    try:
        if args.host not in LOOPBACK and not args.auth:
            raise ServerError(
                f"--host {args.host}: other machines could reach a server nobody guards; "
                "add --auth (and set MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD)"
            )
        if not args.backend_store_uri.startswith("postgresql"):
            print(
                f"tracking_server: note: {args.backend_store_uri.split(':', 1)[0]} backend; a shared server "
                "is meant for PostgreSQL",
                file=sys.stderr,
            )
        with tempfile.TemporaryDirectory(prefix="mlflow-auth-") as private:
            if args.auth:
                username, password = credentials_from_env(env)
                if Path(args.auth_db).exists():  # MLflow creates the admin only into a new auth database
                    print(
                        f"tracking_server: {args.auth_db} exists: its accounts stand as they are; the admin's "
                        "password changes only through MLflow's user API (or start with a new --auth-db)",
                        file=sys.stderr,
                    )
                config = Path(private) / "basic_auth.ini"
                config.write_text(auth_config(username, password, Path(args.auth_db)))
                config.chmod(0o600)
                env["MLFLOW_AUTH_CONFIG_PATH"] = str(config)
                # The auth app's CSRF key; several servers behind one address must share it (set it yourself).
                env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_hex(32))
            server = subprocess.Popen(server_command(args), env=env)
            signal.signal(signal.SIGTERM, lambda *_: server.terminate())
            print(
                f"tracking_server: http://{args.host}:{args.port} (auth {'on' if args.auth else 'off'}); "
                f"point the pipeline at it with MLFLOW_TRACKING_URI",
                file=sys.stderr,
                flush=True,
            )
            try:
                return server.wait()
            except KeyboardInterrupt:
                server.terminate()
                return server.wait()
    except ServerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
