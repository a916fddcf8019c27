"""The MLflow store with several writers at once: real processes, a real sqlite file."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from alstudy.errors import PipelineError
from alstudy.params import BaseParams
from alstudy.tracking import runs as tracking
from alstudy.tracking import store

REPO = Path(__file__).resolve().parents[2]
WRITER = """
import sys, time
import mlflow
from alstudy.tracking import runs as tracking
from alstudy.params import BaseParams
start = float(sys.argv[1])
while time.time() < start:
    time.sleep(0.001)
experiment_id = tracking.setup(BaseParams())
with mlflow.start_run(experiment_id=experiment_id, run_name="writer-" + sys.argv[2]):
    for step in range(15):
        mlflow.log_metrics({"accuracy": step / 15, "f1_macro": step / 20, "n_labeled": step}, step=step)
"""


@pytest.mark.slow  # six processes importing MLflow at once
def test_writers_starting_together_on_a_fresh_store_lose_nothing(tmp_path):
    db = tmp_path / "mlflow.db"
    assert not db.exists()
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{db}"}
    start = time.time() + 6  # every process imports MLflow first, then all open the store at once
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(start), str(i)], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True
        )
        for i in range(6)
    ]
    for writer in writers:
        _, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err[-2000:]
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    runs = mlflow.search_runs(experiment_names=["deep-active-learning"], output_format="list")
    assert sorted(r.info.run_name for r in runs) == [f"writer-{i}" for i in range(6)]
    client = MlflowClient()
    for run in runs:
        assert run.info.status == "FINISHED"
        for key in ("accuracy", "f1_macro", "n_labeled"):
            assert sorted(m.step for m in client.get_metric_history(run.info.run_id, key)) == list(range(15))


def test_sqlite_connections_wait_for_a_busy_store():
    uri = store.with_busy_timeout("sqlite:////data/mlflow.db")
    assert uri == f"sqlite:////data/mlflow.db?timeout={store.BUSY_TIMEOUT_S}"
    assert store.with_busy_timeout("sqlite:////data/mlflow.db?timeout=5") == "sqlite:////data/mlflow.db?timeout=5"
    assert store.with_busy_timeout("postgresql://u@127.0.0.1/db") == "postgresql://u@127.0.0.1/db"
    assert store.sqlite_path(uri) == Path("/data/mlflow.db")


def test_a_new_local_store_and_its_artifacts_are_for_their_owner_alone(project, monkeypatch):
    """Another local user reads neither the runs nor the models (sqlite would make the file 0644)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    experiment_id = tracking.setup(BaseParams())
    with mlflow.start_run(experiment_id=experiment_id):
        mlflow.log_metric("accuracy", 0.5)
        mlflow.log_text("a model would be here", "model/notes.txt")
    modes = {name: stat.S_IMODE((project / name).stat().st_mode) for name in ("mlflow.db", "mlflow.db.lock")}
    assert modes == {"mlflow.db": 0o600, "mlflow.db.lock": 0o600}
    assert stat.S_IMODE((project / "mlartifacts").stat().st_mode) == 0o700
    (run,) = MlflowClient().search_runs([experiment_id])
    assert run.data.metrics == {"accuracy": 0.5}
    assert (project / "mlartifacts").as_uri() in run.info.artifact_uri  # under the private folder


def test_a_damaged_store_is_one_line_naming_it(tmp_path, monkeypatch):
    db = tmp_path / "mlflow.db"
    db.write_text("this is not a database")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    with pytest.raises(PipelineError) as caught:
        tracking.setup(BaseParams())
    message = str(caught.value)
    assert "\n" not in message and str(db) in message and "move it aside" in message


def test_an_experiment_created_by_another_worker_meanwhile_is_used(tmp_path, monkeypatch):
    # On a tracking server no file lock spans the workers: two can both find no experiment and create it.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    real_create = mlflow.create_experiment

    def created_by_someone_else_first(name, **kwargs):
        real_create(name, **kwargs)  # the other worker wins the race
        raise mlflow.exceptions.MlflowException(
            f"Experiment(name={name}) already exists", error_code=mlflow.protos.databricks_pb2.RESOURCE_ALREADY_EXISTS
        )

    monkeypatch.setattr(mlflow, "create_experiment", created_by_someone_else_first)
    experiment_id = tracking.setup(BaseParams())
    assert mlflow.get_experiment(experiment_id).name == "deep-active-learning"


# Makes a store as MLflow does on first use, with writes past `limit` bytes failing as on a full disk.
HALF_BUILT = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
import mlflow
mlflow.set_tracking_uri("sqlite:///" + sys.argv[1])
try:
    mlflow.search_experiments()
except Exception as error:
    print(str(error).splitlines()[0])
"""


def half_built_store(db: Path) -> None:
    """A real store whose creation ran out of space mid-migration: MLflow refuses to open it after."""
    done = subprocess.run([sys.executable, "-c", HALF_BUILT, str(db), "600000"], capture_output=True, text=True)
    assert "disk I/O error" in done.stdout, done.stdout + done.stderr
    with sqlite3.connect(db) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "_alembic_tmp_experiments" in tables  # the state the operator found (MLflow is pinned)


@pytest.mark.slow  # a subprocess importing MLflow
def test_a_store_whose_creation_stopped_half_way_is_rebuilt_when_it_holds_no_runs(tmp_path, monkeypatch, caplog):
    db = tmp_path / "mlflow.db"
    half_built_store(db)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    experiment_id = tracking.setup(BaseParams())
    assert MlflowClient().get_experiment(experiment_id).name == BaseParams().experiment
    (aside,) = tmp_path.glob("mlflow.db.broken-*")
    assert "its creation stopped half-way" in caplog.text and str(aside) in caplog.text


@pytest.mark.slow
def test_a_half_upgraded_store_with_runs_is_one_line_naming_the_fix(tmp_path, monkeypatch):
    db = tmp_path / "mlflow.db"
    half_built_store(db)
    with sqlite3.connect(db) as connection:  # a run an older MLflow wrote before the upgrade
        columns = [row[1] for row in connection.execute("PRAGMA table_info(runs)")]
        connection.execute(
            f"INSERT INTO runs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            ["r1" if c == "run_uuid" else None for c in columns],
        )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    with pytest.raises(PipelineError) as caught:
        tracking.setup(BaseParams())
    message = str(caught.value)
    assert "\n" not in message and str(db) in message
    assert "stopped half-way" in message and "holds 1 runs" in message and "restore it from a backup" in message
    assert not list(tmp_path.glob("mlflow.db.broken-*"))  # a store with runs is never moved by us
