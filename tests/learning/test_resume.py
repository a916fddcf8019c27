"""A run stopped mid-way (an exception, SIGKILL) resumes from its round checkpoint to the numbers of an
uninterrupted run, in the same MLflow run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from alstudy import strategies
from alstudy.learning.model import cpu_has_bfloat16
from helpers.runs import TINY, assert_one_finished_run, comparable, crash_and_resume, make_project, run_al

# Every test here runs the al stage (in this process or in subprocesses): minutes together.
pytestmark = pytest.mark.slow


# The warm-start case runs in bfloat16 where the CPU has it: bfloat16 resumes are checked at no extra run.
@pytest.mark.parametrize(
    "retrain_from_scratch, precision", [(True, "float32"), (False, "bfloat16" if cpu_has_bfloat16() else "float32")]
)
def test_crash_after_a_round_then_resume_equals_uninterrupted(tmp_path, monkeypatch, retrain_from_scratch, precision):
    overrides = {"model": {**TINY["model"], "retrain_from_scratch": retrain_from_scratch, "precision": precision}}
    reference = run_al(make_project(tmp_path / "ref", overrides), monkeypatch)
    project = make_project(tmp_path / "crash", overrides)
    resumed = crash_and_resume(project, monkeypatch)
    assert comparable(resumed) == comparable(reference)
    assert_one_finished_run(project, TINY["al"]["rounds"])


# Every strategy resumes to the numbers of an uninterrupted run (what it keeps between rounds, and its
# random draws, come back from the checkpoint); in this process, as no TensorFlow start-up is needed.
@pytest.mark.parametrize("strategy", list(strategies.STRATEGIES))
def test_every_strategy_resumes_to_the_uninterrupted_numbers(tmp_path, monkeypatch, strategy):
    # Two query rounds: the crash comes after round 1's checkpoint, so round 2 is the resumed one.
    overrides = {"al": {**TINY["al"], "rounds": 2, "log_models": "last"}}
    reference = run_al(make_project(tmp_path / "ref", overrides), monkeypatch, strategy=strategy)
    project = make_project(tmp_path / "crash", overrides)
    resumed = crash_and_resume(project, monkeypatch, strategy=strategy)
    assert comparable(resumed) == comparable(reference)
    assert_one_finished_run(project, 2)


def test_sigkill_mid_run_resumes_in_the_same_mlflow_run(tmp_path, monkeypatch, strategy="badge"):
    """A process killed at any moment (here: between rounds 1 and 2, as a lost machine or an OOM kill would)."""
    reference = run_al(
        make_project(tmp_path / "ref", {"al": {**TINY["al"], "rounds": 4}}), monkeypatch, strategy=strategy
    )
    project = make_project(tmp_path / "kill", {"al": {**TINY["al"], "rounds": 4}})
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"}
    cmd = [sys.executable, "-m", "stages.al", "--dataset", "fashion_mnist", "--strategy", strategy, "--seed", "0"]
    state_file = project / "checkpoints" / "fashion_mnist" / strategy / "s0" / "state.json"
    proc = subprocess.Popen(cmd, cwd=project, env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if state_file.exists() and len(json.loads(state_file.read_text())["history"]) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"

    resumed = subprocess.run(cmd, cwd=project, env=env, stderr=subprocess.PIPE, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming after round" in resumed.stderr
    out = project / "results" / "fashion_mnist" / strategy / "s0"
    assert comparable(out) == comparable(reference)
    assert_one_finished_run(project, 4)
