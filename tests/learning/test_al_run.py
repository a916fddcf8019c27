"""The active-learning stage on a tiny learnable dataset: what it logs to MLflow, that it learns,
reproducibility, refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from alstudy.errors import PipelineError
from helpers.runs import TINY, make_project, read_csv, run_al, runs_of

# Every test here runs the al stage (in this process or in subprocesses): minutes together.
pytestmark = pytest.mark.slow


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


def run_cell_process(project, strategy: str, seed: int) -> subprocess.CompletedProcess:
    """`python -m stages.al` as DVC runs it: a process of its own, so Keras takes params.yaml's backend."""
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "XLA_FLAGS", "PYTHONPATH")}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{project / 'mlflow.db'}"
    return subprocess.run(
        [sys.executable, "-m", "stages.al", "--dataset", "fashion_mnist", "--strategy", strategy, "--seed", str(seed)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_a_cell_on_another_backend_is_reproducible_and_records_it(tmp_path, backend):
    # CI installs jax (the tests extra); torch only where someone installed it (its CPU wheel is not on PyPI)
    pytest.importorskip(backend)
    overrides = {"model": {**TINY["model"], "backend": backend, "epochs": 15, "learning_rate": 0.01}}
    outs = []
    for name in ("a", "b"):
        project = make_project(tmp_path / name, overrides)
        done = run_cell_process(project, "bald", 2)  # MC-dropout passes and the epoch, on this backend
        assert done.returncode == 0, done.stderr[-3000:]
        outs.append(project / "results/fashion_mnist/bald/s2")
    a, b = outs
    assert read_csv(a / "queries.csv") == read_csv(b / "queries.csv")
    scores = [[(r["accuracy"], r["f1_macro"]) for r in json.loads((o / "rounds.json").read_text())] for o in outs]
    assert scores[0] == scores[1]
    (run,) = runs_of(tmp_path / "a", "cell")
    assert run.data.tags["backend"] == backend and run.data.tags["device"] == "cpu"
    assert run.data.params["model.backend"] == backend
    metrics = json.loads((a / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.3  # it learns (chance: 0.1)
    assert (metrics["backend"], metrics["device"], metrics["threads"]) == (backend, "cpu", 1)
