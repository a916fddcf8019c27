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
    return (
        f"MLflow store {shown}: cannot open it ({first}); if the file is damaged, move it aside and rerun "
        "(runs already finished keep their results/ files)"
    )


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


@contextmanager
def exclusive(uri: str) -> Iterator[None]:
    """Hold the store's creation lock (a no-op for stores that are not sqlite files)."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
