"""The active-learning stage on a tiny learnable dataset: MLflow contents, reproducibility, resuming."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from alstudy import strategies
from alstudy.data.preprocess import write_splits
from alstudy.errors import PipelineError
from alstudy.learning.model import cpu_has_bfloat16
from helpers import TINY, learnable_split, make_project

# Every test here runs the al stage (in this process or in subprocesses): minutes together.
pytestmark = pytest.mark.slow


def run_al(project: Path, monkeypatch, strategy: str = "entropy", seed: int = 0, dataset: str = "fashion_mnist"):
    from stages import al

    monkeypatch.chdir(project)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlflow.db'}")
    al.main(["--dataset", dataset, "--strategy", strategy, "--seed", str(seed)])
    return project / "results" / dataset / strategy / f"s{seed}"


def runs_of(project: Path, kind: str) -> list:
    """The project's MLflow runs of one kind: "cell" (one per dataset x strategy x seed) or "summary"
    (a study's parent)."""
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    return mlflow.search_runs(
        experiment_names=["deep-active-learning"], output_format="list", filter_string=f"tags.kind = '{kind}'"
    )


def read_csv(path: Path) -> list[dict]:
    with open(path) as stream:
        return list(csv.DictReader(stream))


@pytest.fixture
def al_project(tmp_path):
    return make_project(tmp_path / "p")


def test_run_logs_rounds_models_and_results(al_project, monkeypatch):
    project = al_project
    out = run_al(project, monkeypatch, strategy="margin")

    curve = read_csv(out / "curve.csv")
    assert [int(r["n_labeled"]) for r in curve] == [20, 30, 40, 50]
    queries = read_csv(out / "queries.csv")
    assert len(queries) == 50 and len({q["pool_index"] for q in queries}) == 50
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_labeled"] == 50 and metrics["accuracy"] == pytest.approx(float(curve[-1]["accuracy"]))
    rounds = json.loads((out / "rounds.json").read_text())
    assert [sum(r["query_class_counts"]) for r in rounds] == [20, 10, 10, 10]
    assert all(len(r["f1_per_class"]) == 10 for r in rounds)
    assert not (project / "checkpoints" / "fashion_mnist" / "margin" / "s0").exists()

    (run,) = runs_of(project, "cell")
    assert run.info.run_name == "fashion_mnist-margin-s0" and run.info.status == "FINISHED"
    assert {run.data.tags[k] for k in ("dataset", "strategy", "seed")} == {"fashion_mnist", "margin", "0"}
    # The first cell of a study made its parent, before any plot stage: the cell is nested under it.
    (parent,) = runs_of(project, "summary")
    assert parent.info.run_name == "fashion_mnist-summary" and run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert parent.data.tags["dataset"] == "fashion_mnist" and parent.data.params["al.query_size"] == "10"
    assert "fashion_mnist" in mlflow.get_experiment(run.info.experiment_id).tags["mlflow.note.content"]
    assert run.data.params["al.query_size"] == "10" and run.data.params["model.epochs"] == "3"
    client = MlflowClient()
    # Per-class metrics by class name ("T-shirt/top" is not a name MLflow stores: its key is in a tag).
    assert json.loads(run.data.tags["class_keys"])["t_shirt_top"] == "T-shirt/top"
    for key in (
        "accuracy",
        "balanced_accuracy",
        "f1_macro",
        "n_labeled",
        "f1/ankle_boot",
        "queried/t_shirt_top",
        "time/train_seconds",
    ):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [0, 1, 2, 3], key
    n_labeled = [m.value for m in client.get_metric_history(run.info.run_id, "n_labeled")]
    assert n_labeled == [20, 30, 40, 50]
    # The stopping criterion: each round's model against the one before, on the stop set (the whole tiny pool).
    kappas = client.get_metric_history(run.info.run_id, "stopping/kappa")
    assert [m.step for m in kappas] == [1, 2, 3] and all(-1 <= m.value <= 1 for m in kappas)
    assert curve[0]["agreement"] == "" and [float(r["agreement"]) for r in curve[1:]] == pytest.approx(
        [m.value for m in sorted(kappas, key=lambda m: m.step)], abs=1e-6
    )
    models = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
    assert sorted(m.name for m in models) == ["round-000", "round-001", "round-002", "round-003"]
    last = next(m for m in models if m.name == "round-003")
    assert last.source_run_id == run.info.run_id
    assert {(m.key, m.step) for m in last.metrics} >= {("accuracy", 3), ("f1_macro", 3)}
    reloaded = mlflow.keras.load_model(f"models:/{last.model_id}")
    assert reloaded.predict(np.zeros((2, 28, 28, 1), np.float32), verbose=0).shape == (2, 10)
    assert {a.path for a in client.list_artifacts(run.info.run_id, "results")} >= {
        "results/curve.csv",
        "results/metrics.json",
        "results/queries.csv",
        "results/rounds.json",
    }


def test_learns_the_tiny_task(tmp_path, monkeypatch):
    project = make_project(tmp_path / "p", {"model": {**TINY["model"], "epochs": 15, "learning_rate": 0.01}})
    out = run_al(project, monkeypatch, strategy="random")
    accuracy = [float(r["accuracy"]) for r in read_csv(out / "curve.csv")]
    assert accuracy[-1] > 0.3  # chance is 0.1


def test_same_seed_same_queries_and_metrics(tmp_path, monkeypatch):
    a = run_al(make_project(tmp_path / "a"), monkeypatch, strategy="entropy", seed=3)
    b = run_al(make_project(tmp_path / "b"), monkeypatch, strategy="entropy", seed=3)
    c = run_al(make_project(tmp_path / "c"), monkeypatch, strategy="entropy", seed=4)
    assert read_csv(a / "queries.csv") == read_csv(b / "queries.csv")
    assert (
        json.loads((a / "rounds.json").read_text())[-1]["accuracy"]
        == json.loads((b / "rounds.json").read_text())[-1]["accuracy"]
    )
    assert read_csv(a / "queries.csv") != read_csv(c / "queries.csv")


def test_the_cell_runs_its_own_strategy(tmp_path, monkeypatch):
    """Same seed, same initial set: a margin cell's queries are margin's, not random's."""
    project = make_project(tmp_path / "p")
    picks = {
        name: read_csv(run_al(project, monkeypatch, strategy=name, seed=0) / "queries.csv")
        for name in ("random", "margin")
    }
    first_round = {
        name: sorted(int(r["pool_index"]) for r in rows if r["round"] == "1") for name, rows in picks.items()
    }
    initial = {name: [r for r in rows if r["round"] == "0"] for name, rows in picks.items()}
    assert initial["random"] == initial["margin"] and first_round["random"] != first_round["margin"]
    cells = {r.data.tags["strategy"]: r for r in runs_of(project, "cell")}
    assert set(cells) == {"random", "margin"}


def _comparable(out: Path) -> tuple:
    rounds = json.loads((out / "rounds.json").read_text())
    drop = {"train_seconds", "score_seconds", "eval_seconds"}
    return read_csv(out / "queries.csv"), [{k: v for k, v in r.items() if k not in drop} for r in rounds]


def crash_and_resume(project: Path, monkeypatch, strategy: str = "entropy") -> Path:
    """Run the cell, stop it (KeyboardInterrupt) right after round 1's checkpoint, before MLflow sees
    round 1, then run it again: it resumes."""
    from alstudy.learning import checkpoint

    real_save = checkpoint.save

    def save_then_die(folder, state, *args, **kwargs):
        real_save(folder, state, *args, **kwargs)
        if state.next_round == 2:  # rounds 0 and 1 are checkpointed; MLflow has not seen round 1
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_al(project, monkeypatch, strategy=strategy)
    monkeypatch.setattr(checkpoint, "save", real_save)
    return run_al(project, monkeypatch, strategy=strategy)


def assert_one_finished_run(project: Path, rounds: int) -> None:
    """One MLflow run for the cell, FINISHED, no step logged twice, still under its study's parent."""
    (run,) = runs_of(project, "cell")
    assert run.info.status == "FINISHED"
    steps = [m.step for m in MlflowClient().get_metric_history(run.info.run_id, "accuracy")]
    assert steps == list(range(rounds + 1))
    (parent,) = runs_of(project, "summary")
    assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id


# The warm-start case runs in bfloat16 where the CPU has it: bfloat16 resumes are checked at no extra run.
@pytest.mark.parametrize(
    "retrain_from_scratch, precision", [(True, "float32"), (False, "bfloat16" if cpu_has_bfloat16() else "float32")]
)
def test_crash_after_a_round_then_resume_equals_uninterrupted(tmp_path, monkeypatch, retrain_from_scratch, precision):
    overrides = {"model": {**TINY["model"], "retrain_from_scratch": retrain_from_scratch, "precision": precision}}
    reference = run_al(make_project(tmp_path / "ref", overrides), monkeypatch)
    project = make_project(tmp_path / "crash", overrides)
    resumed = crash_and_resume(project, monkeypatch)
    assert _comparable(resumed) == _comparable(reference)
    assert_one_finished_run(project, TINY["al"]["rounds"])


# Every strategy resumes to the numbers of an uninterrupted run (what it keeps between rounds, and its
# random draws, come back from the checkpoint); in this process, as no TensorFlow start-up is needed.
@pytest.mark.parametrize("strategy", list(strategies.STRATEGIES))
def test_every_strategy_resumes_to_the_uninterrupted_numbers(tmp_path, monkeypatch, strategy):
    overrides = {"al": {**TINY["al"], "log_models": "last"}}
    reference = run_al(make_project(tmp_path / "ref", overrides), monkeypatch, strategy=strategy)
    project = make_project(tmp_path / "crash", overrides)
    resumed = crash_and_resume(project, monkeypatch, strategy=strategy)
    assert _comparable(resumed) == _comparable(reference)
    assert_one_finished_run(project, TINY["al"]["rounds"])


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
    assert _comparable(out) == _comparable(reference)
    assert_one_finished_run(project, 4)


def crash_after_round_zero(project: Path, monkeypatch, strategy: str = "entropy") -> None:
    from alstudy.learning import checkpoint

    real_save = checkpoint.save

    def save_then_die(folder, state, *args, **kwargs):
        real_save(folder, state, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_al(project, monkeypatch, strategy=strategy)
    monkeypatch.setattr(checkpoint, "save", real_save)
    assert (project / "checkpoints" / "fashion_mnist" / strategy / "s0" / "state.json").exists()


def edit_params(project: Path, section: str, key: str, value) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params[section][key] = value
    (project / "params.yaml").write_text(yaml.safe_dump(params))


def runs_after_rerun(project: Path, monkeypatch, strategy: str = "entropy") -> list:
    run_al(project, monkeypatch, strategy=strategy)
    return runs_of(project, "cell")


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
    with open(project / module, "a") as stream:
        stream.write("\n# an edit that could change the numbers\n")
    assert len(runs_after_rerun(project, monkeypatch)) == 2


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
    assert len(runs_after_rerun(project, monkeypatch)) == 2


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


def test_budget_larger_than_pool_fails_at_start(tmp_path, monkeypatch):
    project = make_project(tmp_path / "p", {"al": {**TINY["al"], "rounds": 20}})
    with pytest.raises(PipelineError, match=r"al: .*220 labels.*120-image pool"):
        run_al(project, monkeypatch)


def test_unknown_strategy_is_refused_in_one_line(al_project):
    result = subprocess.run(
        [sys.executable, "-m", "stages.al", "--dataset", "fashion_mnist", "--strategy", "qbc", "--seed", "0"],
        cwd=al_project,
        env=dict(os.environ),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "invalid choice: 'qbc'" in result.stderr and "class_balanced" in result.stderr


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
