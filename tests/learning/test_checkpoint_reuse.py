"""When a round checkpoint is reused and when it is discarded: params, code, data and strategy options."""

from __future__ import annotations

import shutil

import pytest
import yaml
from mlflow.tracking import MlflowClient

from alstudy.data.preprocess import write_splits
from helpers.repo import edit_params
from helpers.runs import crash_after_round_zero, learnable_split, make_project, runs_after_rerun, runs_of

# Every test here runs the al stage (in this process or in subprocesses): minutes together.
pytestmark = pytest.mark.slow


def test_changed_params_discard_the_checkpoint(tmp_path, monkeypatch):
    project = make_project(tmp_path / "p")
    crash_after_round_zero(project, monkeypatch)
    edit_params(project, "model", "epochs", 2)
    runs = runs_after_rerun(project, monkeypatch)
    assert len(runs) == 2  # the stale run is left as it was; the new params got a fresh run
    finished = next(r for r in runs if r.info.status == "FINISHED")
    assert finished.data.params["model.epochs"] == "2"
    # Another model is another study: each run sits under the parent of its own configuration.
    parents = {p.info.run_id: p for p in runs_of(project, "summary")}
    assert len(parents) == 2 and {r.data.tags["mlflow.parentRunId"] for r in runs} == set(parents)
    assert parents[finished.data.tags["mlflow.parentRunId"]].data.params["model.epochs"] == "2"


@pytest.mark.parametrize(
    "module",
    [
        "alstudy/strategies/entropy.py",
        "alstudy/strategies/_base.py",
        "alstudy/learning/model.py",
        "alstudy/learning/training.py",
        "alstudy/learning/loop.py",
        "alstudy/data/preprocess.py",
    ],
)
def test_changed_code_discards_the_checkpoint(tmp_path, monkeypatch, module):
    project = make_project(tmp_path / "p", copy_code=True)
    crash_after_round_zero(project, monkeypatch)  # an entropy run
    (stale,) = runs_of(project, "cell")
    with open(project / module, "a") as stream:
        stream.write("\n# an edit that could change the numbers\n")
    (run,) = runs_after_rerun(project, monkeypatch)  # started over; then the stale run of the same config went
    assert run.info.run_id != stale.info.run_id and run.info.status == "FINISHED"
    assert [m.step for m in MlflowClient().get_metric_history(run.info.run_id, "accuracy")] == [0, 1, 2, 3]


def test_another_strategys_code_keeps_the_checkpoint(tmp_path, monkeypatch):
    project = make_project(tmp_path / "p", copy_code=True)
    crash_after_round_zero(project, monkeypatch)  # an entropy run
    with open(project / "alstudy/strategies/margin.py", "a") as stream:
        stream.write("\n# a fix to margin: entropy's numbers cannot change\n")
    assert len(runs_after_rerun(project, monkeypatch)) == 1


def test_changed_data_discards_the_checkpoint(tmp_path, monkeypatch):
    project = make_project(tmp_path / "p")
    crash_after_round_zero(project, monkeypatch)
    write_splits(
        project / "data" / "prepared" / "fashion_mnist",
        learnable_split(130, 2),
        learnable_split(40, 1),
        {"dataset": "fashion_mnist"},
    )
    (stale,) = runs_of(project, "cell")
    (run,) = runs_after_rerun(project, monkeypatch)  # one run per cell and configuration: the new data's
    assert run.info.run_id != stale.info.run_id


def test_unchanged_inputs_keep_the_checkpoint_and_other_strategies_options_do_not_matter(tmp_path, monkeypatch):
    project = make_project(tmp_path / "p")
    crash_after_round_zero(project, monkeypatch, strategy="bald")
    options = yaml.safe_load((project / "params.yaml").read_text())["al"]["strategy_options"]
    edit_params(project, "al", "strategy_options", {**options, "class_balanced": {"power": 0.5}})
    assert len(runs_after_rerun(project, monkeypatch, strategy="bald")) == 1  # resumed: one run


def test_changed_strategy_options_discard_that_strategys_checkpoint(tmp_path, monkeypatch):
    project = make_project(tmp_path / "p")
    crash_after_round_zero(project, monkeypatch, strategy="bald")
    options = yaml.safe_load((project / "params.yaml").read_text())["al"]["strategy_options"]
    edit_params(project, "al", "strategy_options", {**options, "bald": {"mc_passes": 3}})
    runs = runs_after_rerun(project, monkeypatch, strategy="bald")
    assert len(runs) == 2
    finished = next(r for r in runs if r.info.status == "FINISHED")
    assert finished.data.params["al.strategy_options.bald.mc_passes"] == "3"
    # A strategy's own options do not make another study: the other strategies' runs stay beside it.
    (parent,) = runs_of(project, "summary")
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}


def test_starting_over_without_the_checkpoint_removes_the_lost_attempts_run(tmp_path, monkeypatch):
    """A cell retried on another machine (alstudy/scale/cluster.py) has no checkpoint there: it starts
    over, and the run its killed attempt left RUNNING must not stay beside the new one."""
    project = make_project(tmp_path / "p")
    crash_after_round_zero(project, monkeypatch)
    (lost,) = runs_of(project, "cell")
    MlflowClient().update_run(lost.info.run_id, status="RUNNING")  # as SIGKILL leaves it
    shutil.rmtree(project / "checkpoints")
    (run,) = runs_after_rerun(project, monkeypatch)
    assert run.info.run_id != lost.info.run_id and run.info.status == "FINISHED"
    assert [m.step for m in MlflowClient().get_metric_history(run.info.run_id, "accuracy")] == [0, 1, 2, 3]
    assert MlflowClient().get_run(lost.info.run_id).info.lifecycle_stage == "deleted"
