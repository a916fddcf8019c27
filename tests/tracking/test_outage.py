"""Waiting out a tracking store that went away: what counts as an outage, the bound, the one line, the run's end.

The real server and database restarts are in test_tracking_server.py; these use a fake clock."""

from __future__ import annotations

import logging
import os

import mlflow
import pytest
import requests
import sqlalchemy
from mlflow.exceptions import MlflowException
from mlflow.protos import databricks_pb2 as codes

from alstudy.errors import PipelineError
from alstudy.params import BaseParams
from alstudy.tracking import outage
from alstudy.tracking import runs as tracking


class Clock:
    """time.monotonic and time.sleep for outage.py: sleeping moves the clock, nothing waits."""

    def __init__(self):
        self.now, self.slept = 1000.0, []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(outage.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(outage.time, "sleep", fake.sleep)
    monkeypatch.setattr(outage, "_patience", outage.Patience())
    for key in outage.CLIENT_RETRIES:
        monkeypatch.delenv(key, raising=False)
    return fake


def failing(times: int, error: Exception, result: str = "logged"):
    calls = []

    def call():
        calls.append(1)
        if len(calls) <= times:
            raise error
        return result

    return call, calls


UNREACHABLE = MlflowException(
    "API request to http://127.0.0.1:5000/api/2.0/mlflow/runs/log-batch failed with "
    "exception HTTPConnectionPool: Max retries exceeded"
)  # INTERNAL_ERROR


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (UNREACHABLE, True),
        (MlflowException("overloaded", error_code=codes.TEMPORARILY_UNAVAILABLE), True),
        (requests.exceptions.ConnectionError("connection refused"), True),
        (ConnectionResetError("reset by peer"), True),
        (MlflowException("no such run", error_code=codes.RESOURCE_DOES_NOT_EXIST), False),
        (MlflowException("bad name", error_code=codes.INVALID_PARAMETER_VALUE), False),
        (ValueError("a bug"), False),
    ],
)
def test_what_counts_as_the_store_being_away(clock, error, transient):
    outage.configure("http://127.0.0.1:5000", 60)
    assert outage.is_transient(error) is transient


def test_a_database_connection_error_counts_for_postgresql_not_for_a_sqlite_file(clock):
    error = sqlalchemy.exc.OperationalError("INSERT ...", {}, Exception("server closed the connection"))
    outage.configure("postgresql://mlflow:secret@db.example:5432/mlflow", 60)
    assert outage.is_transient(error)
    outage.configure("sqlite:////tmp/mlflow.db", 60)
    assert not outage.is_transient(error)


def test_a_call_is_retried_until_the_store_is_back(clock, caplog):
    outage.configure("http://127.0.0.1:5000", 120)
    call, calls = failing(4, UNREACHABLE)
    with caplog.at_level(logging.INFO, logger="tracking"):
        assert outage.patiently("logging round 3", call) == "logged"
    assert len(calls) == 5 and sum(clock.slept) == 4 * outage.RETRY_EVERY_S
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2  # one line when it went away, one when it came back: not one per retry
    assert "MLflow server http://127.0.0.1:5000 is unreachable while logging round 3" in messages[0]
    assert "retrying for up to 120 s" in messages[0]
    assert "is back after 20 s; logging round 3 done" in messages[1]


def test_past_the_wait_the_run_stops_in_one_line_without_the_password(clock):
    outage.configure("postgresql://mlflow:secret@db.example:5432/mlflow", 30)
    call, calls = failing(1000, sqlalchemy.exc.OperationalError("SELECT", {}, Exception("connection refused")))
    with pytest.raises(outage.TrackingUnavailable) as raised:
        outage.patiently("logging round 7", call)
    message = str(raised.value)
    assert isinstance(raised.value, PipelineError) and "\n" not in message and "secret" not in message
    assert message.startswith("MLflow store db.example:5432/mlflow: unreachable for 30 s while logging round 7")
    assert "rerun `dvc repro` to resume" in message and "base.tracking_wait_seconds" in message
    assert sum(clock.slept) == pytest.approx(30) and len(calls) == 7  # every 5 s, then once more at the bound


def test_a_refused_request_is_not_retried(clock):
    outage.configure("http://127.0.0.1:5000", 300)
    call, calls = failing(1, MlflowException("bad metric name", error_code=codes.INVALID_PARAMETER_VALUE))
    with pytest.raises(MlflowException, match="bad metric name"):
        outage.patiently("logging round 1", call)
    assert len(calls) == 1 and clock.slept == []


def test_a_zero_wait_stops_at_the_first_failure(clock):
    outage.configure("http://127.0.0.1:5000", 0)
    call, calls = failing(1, UNREACHABLE)
    with pytest.raises(outage.TrackingUnavailable, match="unreachable for 0 s"):
        outage.patiently("ending the run", call)
    assert len(calls) == 1


def test_mlflow_retries_briefly_unless_the_user_said_otherwise(clock, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "9")
    outage.configure("http://127.0.0.1:5000", 300)
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "9"
    factor = "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"
    assert os.environ[factor] == outage.CLIENT_RETRIES[factor]


# --------------------------------------------------------------------------- how a cell's run ends


@pytest.fixture
def store(tmp_path, monkeypatch, clock):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tracking.setup(BaseParams())


def status(run_id: str) -> str:
    return mlflow.get_run(run_id).info.status


def test_a_run_ends_finished_failed_or_left_for_the_next_attempt(store):
    with tracking.ending(mlflow.start_run(experiment_id=store)) as run:
        pass
    assert status(run.info.run_id) == "FINISHED" and mlflow.active_run() is None

    with pytest.raises(ValueError):
        with tracking.ending(mlflow.start_run(experiment_id=store)) as run:
            raise ValueError("a bug")
    assert status(run.info.run_id) == "FAILED" and mlflow.active_run() is None

    with pytest.raises(KeyboardInterrupt):
        with tracking.ending(mlflow.start_run(experiment_id=store)) as run:
            raise KeyboardInterrupt
    assert status(run.info.run_id) == "KILLED"


def test_after_a_long_outage_the_run_is_taken_off_mlflow_s_stack(store, monkeypatch):
    ended = []
    monkeypatch.setattr(
        mlflow.tracking.MlflowClient,
        "set_terminated",
        lambda self, run_id, status=None, end_time=None: ended.append(status) or (_ for _ in ()).throw(UNREACHABLE),
    )
    with pytest.raises(outage.TrackingUnavailable):
        with tracking.ending(mlflow.start_run(experiment_id=store)):
            raise outage.TrackingUnavailable("MLflow server x: unreachable for 300 s while logging round 2")
    assert ended == ["FAILED"] and mlflow.active_run() is None  # tried once, quietly; nothing left to end at exit


def test_a_round_sent_again_after_its_answer_was_lost_is_stored_once(store, monkeypatch):
    """The server stored the batch and died before answering: the retry sends the same batch (same
    timestamp), which MLflow keeps once."""
    import time as clock_module

    from alstudy.learning.loop import RoundResult

    real_log_metrics, calls = mlflow.log_metrics, []

    def stored_then_answer_lost(*args, **kwargs):
        real_log_metrics(*args, **kwargs)
        calls.append(1)
        end = clock_module.perf_counter() + 0.005  # a retry comes later than the first try (sleep is faked here)
        while clock_module.perf_counter() < end:
            pass
        if len(calls) == 1:
            raise requests.exceptions.ConnectionError("connection reset by peer")

    monkeypatch.setattr(mlflow, "log_metrics", stored_then_answer_lost)
    result = RoundResult(1, 30, 0.5, 0.5, 0.45, [0.4, 0.5], [5, 5], 3, 1.0, 0.1, 0.1)
    with mlflow.start_run(experiment_id=store) as run:
        tracking.log_round(result, ["bolt", "gear"])
    assert len(calls) == 2
    for key in ("accuracy", "f1/gear", "time/train_seconds"):
        assert [m.step for m in mlflow.tracking.MlflowClient().get_metric_history(run.info.run_id, key)] == [1], key
