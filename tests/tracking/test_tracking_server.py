"""A shared tracking server backed by a real PostgreSQL: parallel cells, served artifacts, basic auth, and a
server or a database that restarts in the middle of a cell."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from services import (
    REPO,
    create_database,
    free_port,
    kill_tracking_server,
    postgres_cluster,
    restart_postgres,
    tracking_server,
)

from alstudy.errors import PipelineError
from alstudy.params import BaseParams
from alstudy.tracking import runs as tracking
from helpers import make_project

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
    admin = {"MLFLOW_TRACKING_USERNAME": "study-admin", "MLFLOW_TRACKING_PASSWORD": "a-long-test-password"}
    with tracking_server(backend, tmp_path / "server", auth=True, env=admin) as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
        monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
        with pytest.raises(PipelineError, match=r"refused .*set MLFLOW_TRACKING_USERNAME"):
            tracking.setup(BaseParams())
        for key, value in admin.items():
            monkeypatch.setenv(key, value)
        experiment_id = tracking.setup(BaseParams())
        with mlflow.start_run(experiment_id=experiment_id, run_name="guarded-run"):
            mlflow.log_metric("accuracy", 0.5, step=0)
        (run,) = mlflow.search_runs([experiment_id], output_format="list")
        assert run.info.run_name == "guarded-run" and run.data.metrics["accuracy"] == 0.5


def test_the_server_script_guards_the_network_and_the_password():
    def start(*args, env=None):
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "alstudy.console.tracking_server",
                "--backend-store-uri",
                "postgresql://mlflow@127.0.0.1:1/x",
                *args,
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}, **(env or {})},
        )

    exposed = start("--host", "0.0.0.0")
    assert exposed.returncode == 2 and "add --auth" in exposed.stderr
    no_credentials = start("--auth")
    assert no_credentials.returncode == 2 and "MLFLOW_TRACKING_USERNAME" in no_credentials.stderr
    weak = start("--auth", env={"MLFLOW_TRACKING_USERNAME": "a", "MLFLOW_TRACKING_PASSWORD": "password1234"})
    assert weak.returncode == 2 and "at least 12 characters" in weak.stderr


# --------------------------------------------------------------------------- outages in the middle of a cell

OUTAGE_ROUNDS = 4


def start_cell(project, url: str, strategy: str, log_file):
    env = {**os.environ, "MLFLOW_TRACKING_URI": url}
    return subprocess.Popen(
        [sys.executable, "-m", "stages.al", "--dataset", "fashion_mnist", "--strategy", strategy, "--seed", "0"],
        cwd=project,
        env=env,
        stderr=log_file,
        stdout=log_file,
        text=True,
    )


def wait_for_round(url: str, name: str, round_: int, cell, timeout: float = 300) -> None:
    """Until the cell `name` has logged `round_` (it is running between two rounds then)."""
    client, deadline = MlflowClient(url), time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert cell.poll() is None, "the cell ended before the outage"
        runs = (
            client.search_runs(
                client.get_experiment_by_name("deep-active-learning").experiment_id,
                filter_string=f"attributes.run_name = '{name}'",
            )
            if client.get_experiment_by_name("deep-active-learning")
            else []
        )
        if runs and round_ in {m.step for m in client.get_metric_history(runs[0].info.run_id, "accuracy")}:
            return
        time.sleep(0.3)
    raise AssertionError(f"{name} did not log round {round_} in {timeout} s")


def assert_logged_once(url: str, name: str) -> None:
    """Every round's metrics exactly once, one ready model per round, the run FINISHED."""
    client = MlflowClient(url)
    experiment = client.get_experiment_by_name("deep-active-learning")
    (run,) = client.search_runs(experiment.experiment_id, filter_string=f"attributes.run_name = '{name}'")
    assert run.info.status == "FINISHED"
    for key in ("accuracy", "f1_macro", "n_labeled", "f1/ankle_boot", "time/train_seconds"):
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
        assert steps == list(range(OUTAGE_ROUNDS + 1)), (name, key, steps)
    models = client.search_logged_models(
        [experiment.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
    )
    assert sorted(m.name for m in models) == [f"round-{r:03d}" for r in range(OUTAGE_ROUNDS + 1)]
    assert {str(m.status) for m in models} == {"READY"}


def outage_project(path, wait_s: int):
    return make_project(
        path,
        {
            "al": {
                "strategies": ["random", "margin"],
                "seeds": [0],
                "initial_size": 20,
                "query_size": 10,
                "rounds": OUTAGE_ROUNDS,
                "log_models": "every",
            },
            "base": {"tracking_wait_seconds": wait_s},
        },
    )


def test_a_cell_waits_out_a_server_crash_and_a_database_restart(postgres, tmp_path):
    backend = create_database(postgres, "outage")
    project = outage_project(tmp_path / "p", wait_s=120)
    port = free_port()
    server_dir = tmp_path / "server"
    logs = {strategy: open(tmp_path / f"{strategy}.log", "w") for strategy in ("random", "margin")}
    with tracking_server(backend, server_dir, port=port) as url:
        # The server is killed after round 1 and is back 8 s later (and its start-up): the cell waits for it.
        cell = start_cell(project, url, "random", logs["random"])
        wait_for_round(url, "fashion_mnist-random-s0", 1, cell)
        kill_tracking_server(url)
        time.sleep(8)
    with tracking_server(backend, server_dir, port=port) as url:
        assert cell.wait(timeout=600) == 0, (tmp_path / "random.log").read_text()[-3000:]
        # PostgreSQL itself stops after round 1 and starts 8 s later; the server stays up.
        cell = start_cell(project, url, "margin", logs["margin"])
        wait_for_round(url, "fashion_mnist-margin-s0", 1, cell)
        restart_postgres(postgres, down_s=8)
        assert cell.wait(timeout=600) == 0, (tmp_path / "margin.log").read_text()[-3000:]
        for strategy in ("random", "margin"):
            logs[strategy].close()
            log = (tmp_path / f"{strategy}.log").read_text()
            assert "is unreachable while logging round" in log and "is back after" in log, log[-3000:]
            assert_logged_once(url, f"fashion_mnist-{strategy}-s0")


def test_a_cell_stops_in_one_line_past_its_wait_and_resumes_from_its_checkpoint(postgres, tmp_path):
    backend = create_database(postgres, "long_outage")
    project = outage_project(tmp_path / "p", wait_s=5)
    port, server_dir = free_port(), tmp_path / "server"
    with open(tmp_path / "first.log", "w") as log_file:
        with tracking_server(backend, server_dir, port=port) as url:
            cell = start_cell(project, url, "random", log_file)
            wait_for_round(url, "fashion_mnist-random-s0", 1, cell)
            kill_tracking_server(url)
            assert cell.wait(timeout=300) == 2
    errors = [line for line in (tmp_path / "first.log").read_text().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "unreachable for 5 s while logging round" in errors[0], errors
    assert "Traceback" not in (tmp_path / "first.log").read_text()
    with open(tmp_path / "second.log", "w") as log_file:
        with tracking_server(backend, server_dir, port=port) as url:
            cell = start_cell(project, url, "random", log_file)
            assert cell.wait(timeout=600) == 0, (tmp_path / "second.log").read_text()[-3000:]
            assert_logged_once(url, "fashion_mnist-random-s0")
    assert "resuming after round" in (tmp_path / "second.log").read_text()
