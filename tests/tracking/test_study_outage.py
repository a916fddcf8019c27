"""The stages after the cells (plot, verdicts, report) wait out a tracking server that is away, as cells
do: opening the experiment and publishing into the study's parent run, through `study_runs.publish`."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from services import free_port

from alstudy.params import BaseParams, load_params
from alstudy.tracking import outage, study_runs
from alstudy.tracking import runs as tracking
from helpers.repo import REPO_ROOT

pytestmark = pytest.mark.slow  # a real MLflow server, stopped and started


class Server:
    """`mlflow server` on a sqlite store at a fixed port, to stop and start again as a restart would."""

    def __init__(self, folder: Path):
        self.folder, self.port, self.process = folder, free_port(), None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        mlflow = str(Path(sys.executable).parent / "mlflow")
        self.process = subprocess.Popen(
            [mlflow, "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
            + ["--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}"]
            + ["--artifacts-destination", str(self.folder / "artifacts")],
            cwd=self.folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # GenAI jobs: none here
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/health", timeout=2)
                return
            except OSError:
                assert time.monotonic() < deadline and self.process.poll() is None, "mlflow server did not start"
                time.sleep(0.3)

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def start_in(self, seconds: float) -> threading.Thread:
        def later():
            time.sleep(seconds)
            self.start()

        thread = threading.Thread(target=later, daemon=True)
        thread.start()
        return thread


@pytest.fixture
def server(tmp_path, monkeypatch):
    server = Server(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.chdir(tmp_path)
    yield server
    if server.process and server.process.poll() is None:
        server.stop()


def test_the_study_stages_wait_for_the_server_and_publish_once(server, caplog):
    caplog.set_level(logging.INFO, logger="tracking")
    params = load_params(REPO_ROOT / "params.yaml")
    base = BaseParams(tracking_wait_seconds=120)
    summary = {"random.aubc_accuracy": 0.71, "margin.aubc_accuracy": 0.74}
    report = Path("study.md")
    report.write_text("# the study\n")

    back = server.start_in(4)  # away when the stage starts: opening the experiment waits
    experiment_id = tracking.setup(base)
    back.join()
    assert "unreachable while opening the experiment" in caplog.text

    server.stop()  # away again when the stage publishes
    back = server.start_in(4)
    run_id = study_runs.publish(experiment_id, "fashion_mnist", params, metrics=summary, artifacts=[(report, None)])
    back.join()
    assert "while logging the fashion_mnist study's summary" in caplog.text and "is back after" in caplog.text

    study_runs.publish(experiment_id, "fashion_mnist", params, metrics=summary)  # a rerun publishes again
    client = MlflowClient()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["kind"] == "summary"
    assert [m.value for m in client.get_metric_history(run_id, "summary/margin.aubc_accuracy")] == [0.74, 0.74]
    assert [f.path for f in client.list_artifacts(run_id)] == ["study.md"]


def test_past_the_wait_a_study_stage_stops_in_one_line(server):
    server.start()
    experiment_id = tracking.setup(BaseParams(tracking_wait_seconds=3))
    server.stop()
    params = load_params(REPO_ROOT / "params.yaml")
    with pytest.raises(outage.TrackingUnavailable) as caught:
        study_runs.publish(experiment_id, "fashion_mnist", params, metrics={"random.aubc_accuracy": 0.7})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"MLflow server {server.url}: unreachable for 3 s while logging the fashion_mnist")
