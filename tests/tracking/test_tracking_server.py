"""A shared tracking server backed by a real PostgreSQL: parallel cells, served artifacts, basic auth (on by
default). Another local user against it and its database: test_shared_machine.py.

A server or a database that restarts in the middle of a cell: test_tracking_outage.py."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from services import (
    REPO,
    create_database,
    free_port,
    postgres_cluster,
    tracking_credentials,
    tracking_server,
)

from alstudy.errors import PipelineError
from alstudy.params import BaseParams
from alstudy.tracking import runs as tracking
from helpers.runs import make_project

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

STRATEGIES = ["random", "margin", "bald"]
ROUNDS = 3


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    with postgres_cluster(tmp_path_factory.mktemp("pg")) as uri:
        yield uri


def run_cells_in_parallel(project, url: str, env_extra: dict | None = None) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": url, **(env_extra or {})}
    cells = [
        subprocess.Popen(
            [sys.executable, "-m", "stages.al", "--dataset", "fashion_mnist", "--strategy", s, "--seed", "0"],
            cwd=project,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for s in STRATEGIES
    ]
    for cell in cells:
        _, err = cell.communicate(timeout=600)
        assert cell.returncode == 0, err[-3000:]


def test_parallel_cells_log_every_step_and_model_to_a_server_on_postgres(postgres, tmp_path, monkeypatch):
    backend = create_database(postgres, "tracking")
    project = make_project(
        tmp_path / "p",
        {
            "al": {
                "strategies": STRATEGIES,
                "seeds": [0],
                "initial_size": 20,
                "query_size": 10,
                "rounds": ROUNDS,
                "log_models": "every",
            }
        },
    )
    with tracking_server(backend, tmp_path / "server") as url:
        run_cells_in_parallel(project, url)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        mlflow.set_tracking_uri(url)
        runs = mlflow.search_runs(experiment_names=["deep-active-learning"], output_format="list")
        cells = [r for r in runs if r.data.tags.get("kind") == "cell"]
        assert sorted(r.info.run_name for r in cells) == sorted(f"fashion_mnist-{s}-s0" for s in STRATEGIES)
        # The cells started together, each looking for the study's parent: one made it, all are under it.
        (parent,) = [r for r in runs if r.data.tags.get("kind") == "summary"]
        assert len(runs) == len(cells) + 1 and parent.info.run_name == "fashion_mnist-summary"
        assert {r.data.tags["mlflow.parentRunId"] for r in cells} == {parent.info.run_id}
        client = MlflowClient()
        for run in cells:
            assert run.info.status == "FINISHED"
            for key in ("accuracy", "balanced_accuracy", "f1_macro", "n_labeled"):
                steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
                assert steps == list(range(ROUNDS + 1)), (run.info.run_name, key)
            assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # served through the server
        models = mlflow.search_logged_models(experiment_ids=[runs[0].info.experiment_id], output_format="list")
        assert len(models) == len(STRATEGIES) * (ROUNDS + 1)
        reloaded = mlflow.keras.load_model(f"models:/{models[0].model_id}")
        assert reloaded.predict(np.zeros((1, 28, 28, 1), np.float32), verbose=0).shape == (1, 10)
        assert (tmp_path / "server" / "artifacts").is_dir()
        assert not (project / "mlartifacts").exists() and not (project / "mlflow.db").exists()


def test_basic_auth_refuses_clients_without_credentials(postgres, tmp_path, monkeypatch):
    backend = create_database(postgres, "guarded")
    admin = tracking_credentials()
    for key, value in admin.items():  # the admin's, as a person exports them before starting the server
        monkeypatch.setenv(key, value)
    with tracking_server(backend, tmp_path / "server") as url:  # basic auth: the command's default
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
        monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
        with pytest.raises(PipelineError, match=r"refused .*set MLFLOW_TRACKING_USERNAME"):
            tracking.setup(BaseParams())
        for key, value in admin.items():
            monkeypatch.setenv(key, value)
        experiment_id = tracking.setup(BaseParams())
        with mlflow.start_run(experiment_id=experiment_id, run_name="guarded-run"):
            mlflow.log_metric("accuracy", 0.5, step=0)
        (run,) = mlflow.search_runs([experiment_id], output_format="list")
        assert run.info.run_name == "guarded-run" and run.data.metrics["accuracy"] == 0.5


def test_the_server_script_guards_the_network_and_the_password(tmp_path):
    command = [sys.executable, "-m", "alstudy.console.tracking_server", "--backend-store-uri"]
    no_client_env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}

    def start(*args, env=None):
        return subprocess.run(
            [*command, "postgresql://mlflow@127.0.0.1:1/x", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            env={**no_client_env, **(env or {})},
        )

    exposed = start("--host", "0.0.0.0", "--no-auth")
    assert exposed.returncode == 2 and "leave out --no-auth" in exposed.stderr
    no_credentials = start()  # basic auth is on by default
    assert no_credentials.returncode == 2 and "MLFLOW_TRACKING_USERNAME" in no_credentials.stderr
    assert "read -rs MLFLOW_TRACKING_PASSWORD" in no_credentials.stderr  # never on a command line
    weak = start(env={"MLFLOW_TRACKING_USERNAME": "a", "MLFLOW_TRACKING_PASSWORD": "password1234"})
    assert weak.returncode == 2 and "at least 12 characters" in weak.stderr

    # --no-auth on loopback runs, and its first line says who can then read and write the store.
    store = f"sqlite:///{tmp_path / 'open.db'}"
    server = subprocess.Popen(
        [
            *command,
            store,
            "--no-auth",
            "--port",
            str(free_port()),
            "--artifacts-destination",
            str(tmp_path / "artifacts"),
        ],
        cwd=REPO,
        env=no_client_env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        first = server.stderr.readline()
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        server.stderr.close()
    assert first.startswith("tracking_server: WARNING: --no-auth: every local user of this machine can read and write")
    # the store and the artifacts the server would write are its user's alone
    assert stat.S_IMODE((tmp_path / "open.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "artifacts").stat().st_mode) == 0o700
