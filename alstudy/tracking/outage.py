"""A tracking server or database that goes away mid-run: wait for it within a bound, or stop in one line.

MLflow's client retries a failed request on its own, with a backoff that grows to minutes and a
traceback at the end. A run's calls go through `patiently` instead: MLflow retries briefly, then
this module retries every few seconds for up to `base.tracking_wait_seconds`, saying so in the log,
and past that stops the run with one line. A cell checkpoints each round before logging it, so the
next attempt resumes from the checkpoint and logs each missing round once (stages/al.py).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

import requests
import sqlalchemy
from mlflow.exceptions import MlflowException

from alstudy.errors import PipelineError

log = logging.getLogger("tracking")
T = TypeVar("T")

# Error codes of a store that is away or overloaded, rather than of a request that is wrong.
TRANSIENT_CODES = {"INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"}
RETRY_EVERY_S = 5.0
# MLflow's own retries, kept short (about 3 s): the waiting is done here, with a bound and a log line.
CLIENT_RETRIES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}


class TrackingUnavailable(PipelineError):
    """The tracking store stayed away longer than the run was told to wait."""


@dataclass
class Patience:
    store: str = "the MLflow store"
    wait_s: float = 300.0
    remote_database: bool = True  # a server or a database over the network: its connection errors pass


_patience = Patience()


def configure(uri: str, wait_s: float) -> None:
    """How long this process's runs wait for the store at `uri`; MLflow's own retries made short.

    A user's own MLFLOW_HTTP_REQUEST_* settings are kept."""
    shown = uri.split("@")[-1] if "@" in uri else uri  # never echo a password from the URI
    _patience.store = f"MLflow {'server' if uri.startswith(('http://', 'https://')) else 'store'} {shown}"
    _patience.wait_s = float(wait_s)
    _patience.remote_database = not uri.startswith(("sqlite:", "file:", "/")) and "://" in uri
    for key, value in CLIENT_RETRIES.items():
        os.environ.setdefault(key, value)


def is_transient(error: BaseException) -> bool:
    """True for a store that is unreachable or failing for now, False for a request it refuses."""
    if isinstance(error, MlflowException):
        return error.error_code in TRANSIENT_CODES
    if isinstance(
        error,
        (
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            requests.exceptions.ChunkedEncodingError,
            ConnectionError,
            TimeoutError,
        ),
    ):
        return True
    # A database the process opens itself (PostgreSQL restarting); a local sqlite file has its own busy wait.
    return _patience.remote_database and isinstance(
        error, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:160] if text else type(error).__name__


def patiently(what: str, call: Callable[..., T], *args, **kwargs) -> T:
    """`call(*args, **kwargs)`, retried while the store is away, for up to the configured wait.

    `what` says what the run was doing, for the log and the error ("logging round 3")."""
    started = None
    while True:
        try:
            result = call(*args, **kwargs)
        except Exception as error:
            if not is_transient(error):
                raise
            now = time.monotonic()
            if started is None:
                started = now
                log.warning(
                    "%s is unreachable while %s (%s); retrying for up to %.0f s",
                    _patience.store,
                    what,
                    _first_line(error),
                    _patience.wait_s,
                )
            if now - started >= _patience.wait_s:
                raise TrackingUnavailable(
                    f"{_patience.store}: unreachable for {_patience.wait_s:.0f} s while {what} "
                    f"({_first_line(error)}); finished rounds are checkpointed: bring it back and rerun "
                    "`dvc repro` to resume (base.tracking_wait_seconds sets the wait)"
                ) from None
            time.sleep(min(RETRY_EVERY_S, max(0.0, started + _patience.wait_s - now)))
            continue
        if started is not None:
            log.info("%s is back after %.0f s; %s done", _patience.store, time.monotonic() - started, what)
        return result


def patient(what: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorator form of `patiently`, for a function that is one step of a run."""

    def wrap(function: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(function)
        def waiting(*args, **kwargs) -> T:
            return patiently(what, function, *args, **kwargs)

        return waiting

    return wrap
