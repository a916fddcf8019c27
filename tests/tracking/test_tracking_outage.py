"""A tracking server, or its PostgreSQL, that goes away in the middle of a cell: the cell waits for it
within base.tracking_wait_seconds, or stops in one line and resumes from its round checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient
from services import (
    create_database,
    free_port,
    kill_tracking_server,
    postgres_cluster,
    restart_postgres,
    tracking_server,
)

from helpers.runs import make_project

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    with postgres_cluster(tmp_path_factory.mktemp("pg")) as uri:
        yield uri


OUTAGE_ROUNDS = 3


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
