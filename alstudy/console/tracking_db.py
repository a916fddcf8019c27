"""Set up PostgreSQL for the tracking server: a role that is not a superuser, its own database, a password.

    alstudy tracking-db --data-dir ~/tracking-pg/data --port 5433
    alstudy tracking-server --backend-store-uri postgresql+psycopg2://mlflow@127.0.0.1:5433/mlflow

A data folder that is not a cluster yet becomes one (initdb), listening on 127.0.0.1 at --port only, its
Unix socket in --socket-dir (default: the data folder, which only the cluster's owner can enter); one that
is, is started if it is down. Either way its pg_hba.conf must have no `trust` line: a new cluster gets
one `peer` line for its superuser (the OS account that owns it: `postgres` when this runs as root, you
otherwise) on the Unix socket and `scram-sha-256` on 127.0.0.1 for everyone else, nothing more.

The role (--role, default mlflow) logs in but is no superuser and cannot create databases or roles; each
--database (default mlflow) is created by the superuser, owned by the role, closed to other roles. Its
password is generated (or read from stdin with --password-stdin, never from the command line) and goes
into a 0600 pgpass file (--pgpass, default $PGPASSFILE or ~/.pgpass), where libpq (psycopg2, psql) finds
it: the server's URI carries none. PostgreSQL gets only its SCRAM verifier. Run again, the command keeps
the password the pgpass file already holds (--new-password changes it) and adds databases.
"""

from __future__ import annotations

import argparse
import base64
import glob
import hashlib
import hmac
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

HOST = "127.0.0.1"
NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}\Z")
SCRAM_ITERATIONS = 4096


class SetupError(Exception):
    """One line for the user: what is wrong and how to fix it."""


def cluster_owner() -> str:
    """The OS account that runs the cluster and is its superuser: PostgreSQL refuses to run as root."""
    return "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name


def as_owner(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def pg_bin(name: str) -> str:
    """A PostgreSQL program, from the folder of the `initdb` on PATH or else Debian's newest
    /usr/lib/postgresql/<version>/bin (not Debian's psql wrapper: slower, and it may pick another version)."""
    found = shutil.which("initdb")
    folders = [Path(found).resolve().parent] if found else []
    folders += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)]
    for folder in folders:
        if (folder / name).exists():
            return str(folder / name)
    raise SetupError(f"{name}: not found; install PostgreSQL (Debian: apt-get install -y postgresql)")


def _version(folder: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", Path(folder).parent.name))


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without libpq's PG* settings, which would redirect the connections made here."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("PG")}, **extra}


def pg_ctl(data: Path, action: str, log: Path | None = None, mode: str | None = None) -> list[str]:
    """The pg_ctl command line that starts, stops or queries the cluster in `data`, as its owner."""
    command = [pg_bin("pg_ctl"), "-D", str(data)]
    if log is not None:
        command += ["-l", str(log)]
    if mode is not None:
        command += ["-m", mode]
    return as_owner([*command, "-w", action])


def run(command: list[str], what: str, input: str | None = None, env: dict | None = None) -> str:
    done = subprocess.run(command, input=input, capture_output=True, text=True, cwd="/", env=env or clean_env())
    if done.returncode != 0:
        detail = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise SetupError(f"{what}: {detail[-1] if detail else f'exit status {done.returncode}'}")
    return done.stdout


def quote_conf(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def hba_lines(superuser: str) -> str:
    return (
        "# Written by `alstudy tracking-db`: no `trust` anywhere.\n"
        "# TYPE  DATABASE  USER  ADDRESS  METHOD\n"
        f"local   all       {superuser}           peer\n"
        f"host    all       all   {HOST}/32  scram-sha-256\n"
    )


def init_cluster(data: Path, port: int, socket_dir: Path, no_fsync: bool) -> None:
    owner = cluster_owner()
    if os.geteuid() == 0:
        data.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.chown(data, owner, owner)
    initdb = [pg_bin("initdb"), "-D", str(data), "-U", owner, "-E", "UTF8"]
    initdb += ["--auth-local=peer", "--auth-host=scram-sha-256"] + (["--no-sync"] if no_fsync else [])
    run(as_owner(initdb), "initdb")
    (data / "pg_hba.conf").write_text(hba_lines(owner))  # the file keeps its owner and mode
    settings = {
        "listen_addresses": quote_conf(HOST),
        "port": str(port),
        "unix_socket_directories": quote_conf(str(socket_dir)),
        "password_encryption": "'scram-sha-256'",
    }
    if no_fsync:
        settings["fsync"] = "off"
    with open(data / "postgresql.conf", "a") as conf:
        conf.write("\n# alstudy tracking-db\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))


def trust_lines(hba: str) -> list[str]:
    """pg_hba.conf's lines whose method is `trust` (it comes after the type, database and user)."""
    return [line.strip() for line in hba.splitlines() if "trust" in line.split("#", 1)[0].split()[3:]]


def scram_verifier(password: str) -> str:
    """What PostgreSQL stores for a SCRAM-SHA-256 password (RFC 5802/7677), made here: the server never
    sees the password itself, so no log or statement view can show it."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, SCRAM_ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    stored = hashlib.sha256(client_key).digest()
    return f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{b64(salt)}${b64(stored)}:{b64(server_key)}"


def pgpass_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def pgpass_key(port: int, role: str) -> str:
    return f"{HOST}:{port}:*:{role}:"


def read_pgpass(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return ""
    with os.fdopen(fd) as stream:
        return stream.read()


def write_pgpass(path: Path, port: int, role: str, password: str) -> None:
    """Replace this role's line (or add it) in a 0600 file; not through a symlink."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "r+") as stream:
        kept = [line for line in stream.read().splitlines() if line and not line.startswith(pgpass_key(port, role))]
        stream.seek(0)
        stream.truncate()
        stream.write("".join(f"{line}\n" for line in [*kept, pgpass_key(port, role) + pgpass_escape(password)]))


def password_from_stdin() -> str:
    password = sys.stdin.readline().rstrip("\n")
    if len(password) < 16 or not all(" " <= c <= "~" for c in password):
        raise SetupError("--password-stdin: give at least 16 printable ASCII characters on one line")
    return password


def setup(args: argparse.Namespace) -> str:
    for name in [args.role, *args.database]:
        if not NAME.match(name):
            raise SetupError(f"{name!r}: use lower-case letters, digits and _ for role and database names")
    data, socket_dir = Path(args.data_dir).expanduser().absolute(), Path(args.socket_dir or args.data_dir)
    socket_dir = socket_dir.expanduser().absolute()
    pgpass = Path(args.pgpass or os.environ.get("PGPASSFILE") or Path.home() / ".pgpass").expanduser().absolute()
    log = Path(args.log).expanduser().absolute() if args.log else data / "server.log"
    new_cluster = not (data / "PG_VERSION").exists()
    if new_cluster:
        init_cluster(data, args.port, socket_dir, args.no_fsync)
    if subprocess.run(pg_ctl(data, "status"), capture_output=True, cwd="/").returncode != 0:
        run(pg_ctl(data, "start", log=log), f"pg_ctl start (its log: {log})")

    superuser = cluster_owner()
    psql = [pg_bin("psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"]
    as_super = as_owner([*psql, "-h", str(socket_dir), "-p", str(args.port), "-U", superuser, "-d", "postgres"])
    hba_file = run([*as_super, "-c", "SHOW hba_file"], "connecting as the superuser over the Unix socket").strip()
    hba = run(as_owner(["cat", hba_file]), f"reading {hba_file}")
    if trust_lines(hba):
        raise SetupError(
            f"{hba_file}: `{trust_lines(hba)[0]}`: trust lets every local user in without a password; "
            "use scram-sha-256 (peer for the superuser on the Unix socket)"
        )

    exists = run([*as_super, "-c", f"SELECT 1 FROM pg_roles WHERE rolname = '{args.role}'"], "psql").strip() == "1"
    has_line = any(line.startswith(pgpass_key(args.port, args.role)) for line in read_pgpass(pgpass).splitlines())
    password = None
    if args.password_stdin:
        password = password_from_stdin()
    elif args.new_password or not (exists and has_line):
        password = secrets.token_urlsafe(24)
    role = f'"{args.role}"'
    attributes = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
    sql = [] if exists else [f"CREATE ROLE {role};"]
    sql.append(f"ALTER ROLE {role} {attributes}" + (f" PASSWORD '{scram_verifier(password)}';" if password else ";"))
    for database in args.database:
        sql += [
            f"SELECT 'CREATE DATABASE \"{database}\" OWNER {role}' "
            f"WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{database}')\\gexec",
            f'ALTER DATABASE "{database}" OWNER TO {role};',
            f'REVOKE ALL ON DATABASE "{database}" FROM PUBLIC;',
        ]
    run(as_super, "creating the role and its databases", input="\n".join(sql) + "\n")
    if password:
        write_pgpass(pgpass, args.port, args.role, password)

    for database in args.database:  # the way the tracking server will connect: TCP, SCRAM, the pgpass file
        check = [pg_bin("psql"), "-X", "-At", "-w", f"host={HOST} port={args.port} user={args.role} dbname={database}"]
        owner = run(
            [*check, "-c", "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"],
            f"logging in as {args.role} with the password in {pgpass} (--new-password sets a new one)",
            env=clean_env(PGPASSFILE=str(pgpass)),
        ).strip()
        if owner != "f":
            raise SetupError(f"role {args.role} is a superuser; ALTER ROLE {args.role} NOSUPERUSER")
    return (
        f"tracking_db: {'new cluster' if new_cluster else 'cluster'} {data} on {HOST}:{args.port}; role "
        f"{args.role} (not a superuser, password {'kept' if not password else 'set'}, in {pgpass}, 0600) owns "
        f"{', '.join(args.database)}\n"
        f"tracking_db: stop it with `{' '.join(pg_ctl(data, 'stop'))}`, start it with "
        f"`{' '.join(pg_ctl(data, 'start', log=log))}`\n"
        f"tracking_db: alstudy tracking-server --backend-store-uri "
        f"postgresql+psycopg2://{args.role}@{HOST}:{args.port}/{args.database[0]}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="the cluster's data folder (made if it is not one)")
    parser.add_argument("--port", type=int, default=5432, help=f"its TCP port on {HOST}")
    parser.add_argument("--socket-dir", help="folder of its Unix socket (default: the data folder)")
    parser.add_argument("--role", default="mlflow", help="the tracking server's role (default: mlflow)")
    parser.add_argument(
        "--database", action="append", help="a database owned by the role (repeat it for more; default: mlflow)"
    )
    parser.add_argument("--pgpass", help="the 0600 file for the password (default: $PGPASSFILE or ~/.pgpass)")
    parser.add_argument("--password-stdin", action="store_true", help="read the password from stdin (one line)")
    parser.add_argument("--new-password", action="store_true", help="generate a new password even if one is kept")
    parser.add_argument("--log", help="the server's log (default: server.log in the data folder)")
    parser.add_argument(
        "--no-fsync", action="store_true", help="a throw-away cluster (tests): faster, loses data in a crash"
    )
    args = parser.parse_args(argv)
    args.database = args.database or ["mlflow"]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        print(setup(args), file=sys.stderr)
    except SetupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
