"""The MLflow store under parallel writers: created and migrated once, busy writes wait.

Several AL runs may start at once against one sqlite store (`dvc queue start -j N`).
Without care each process creates and migrates a fresh store at the same moment,
and the migrations collide and leave it half-built. So the first access to a
sqlite store (which creates or migrates it) and the creation of the experiment
happen under an exclusive file lock beside the store, one process at a time;
and every connection waits for a busy database (sqlite's busy timeout) instead
of failing at once.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qsl, urlencode

# How long a write waits for another process's write to finish before it fails.
BUSY_TIMEOUT_S = 300


def is_remote(uri: str) -> bool:
    """A tracking server (http, https), not a database or folder this process opens itself."""
    return uri.startswith(("http://", "https://"))


def describe_failure(uri: str, error: Exception) -> str:
    """One line naming the store and the fix, for an error opening it."""
    first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
    shown = uri.split("@")[-1] if "@" in uri else uri  # never echo a password from the URI
    if is_remote(uri):
        if any(code in first for code in ("401", "403", "Unauthorized", "Permission denied")):
            return (
                f"MLflow server {shown}: refused ({first}); set MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD to an account on that server"
            )
        return (
            f"MLflow server {shown}: cannot reach it ({first}); start it (docs/user-guide/tracking-server.md) "
            "or fix MLFLOW_TRACKING_URI / base.mlflow_tracking_uri"
        )
    path = sqlite_path(uri)
    if path is not None and ("disk I/O error" in first or "full" in first):
        return f"MLflow store {shown}: cannot write it ({first}); is the disk full? Free some space and rerun"
    if path is not None and "already exists" in first:
        runs = count_runs(path)
        return (
            f"MLflow store {shown}: an upgrade of its tables stopped half-way ({first}) and it holds {runs} "
            "runs; restore it from a backup, or move it aside and rerun (finished cells keep their results/ files)"
        )
    return (
        f"MLflow store {shown}: cannot open it ({first}); if the file is damaged, move it aside and rerun "
        "(runs already finished keep their results/ files)"
    )


def count_runs(path: Path) -> int | None:
    """Runs in a sqlite store, 0 where it has no runs table yet; None if it is no sqlite database."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            return connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0] if "runs" in tables else 0
    except sqlite3.DatabaseError:
        return None


def _forget_connections(path: Path) -> None:
    """Close this process's pooled connections to the store file: MLflow keeps one engine per URI for the
    process's life, and its connections would go on reading the broken file after it is renamed."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    engines = getattr(SqlAlchemyStore, "_engine_map", {})
    for uri in [uri for uri in engines if sqlite_path(uri) == path]:
        engines.pop(uri).dispose()


def set_aside_if_empty(uri: str) -> Path | None:
    """A sqlite store that cannot be opened but holds no runs (its creation stopped half-way: a full disk,
    a killed process) is moved aside, so the next open makes a new one; returns where it went."""
    path = sqlite_path(uri)
    if path is None or not path.exists() or count_runs(path) != 0:
        return None
    _forget_connections(path)
    aside = path.with_name(f"{path.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        path.rename(aside)
    except OSError:  # a read-only folder: the one-line error then names the store as it is
        return None
    for suffix in ("-journal", "-wal", "-shm"):  # sqlite's side files belong to the broken store
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(aside.with_name(aside.name + suffix))
    return aside


def sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite:/// URI, None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0])


def with_busy_timeout(uri: str) -> str:
    """A sqlite URI whose connections wait up to BUSY_TIMEOUT_S for a lock; other URIs unchanged."""
    if sqlite_path(uri) is None:
        return uri
    base, _, query = uri.partition("?")
    options = dict(parse_qsl(query))
    options.setdefault("timeout", str(BUSY_TIMEOUT_S))
    return f"{base}?{urlencode(options)}"


def create_private(path: Path) -> None:
    """Make a store's file, before MLflow first opens it, readable by its owner alone: sqlite would create
    it readable by every local user (0644 under the usual umask), runs, params and model paths included.
    An empty file is a new database to sqlite, and its journal files take the database file's mode."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


@contextmanager
def exclusive(uri: str) -> Iterator[None]:
    """Hold the store's creation lock (a no-op for stores that are not sqlite files)."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(
        os.open(path.with_name(path.name + ".lock"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    ) as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            create_private(path)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
