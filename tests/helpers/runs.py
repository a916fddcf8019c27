"""A tiny learnable project and the al stage run in it: runs, crashes and resumes, their MLflow runs and files."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from alstudy import strategies
from alstudy.data.datasets import FASHION_MNIST
from alstudy.data.preprocess import Split, one_hot, write_splits
from helpers.repo import REPO, machine_precision

TINY = {
    "model": {
        "precision": machine_precision(),
        "filters": [4, 8, 8],
        "dense_units": 16,
        "epochs": 3,
        "batch_size": 16,
        "predict_batch_size": 64,
    },
    "al": {
        "strategies": list(strategies.STRATEGIES),
        "seeds": [0],
        "initial_size": 20,
        "query_size": 10,
        "rounds": 3,
        "log_models": "every",
    },
}


def learnable_split(n: int, seed: int) -> Split:
    """28x28 images whose class sets the brightness of one of ten horizontal bands, plus noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    x = rng.uniform(0, 0.3, size=(n, 28, 28, 1)).astype(np.float32)
    for i, c in enumerate(labels):
        x[i, 2 * c + 4 : 2 * c + 6, :, 0] += 0.7
    return Split(np.clip(x, 0, 1), one_hot(labels, 10))


def make_project(
    root: Path, overrides: dict | None = None, dataset: str = "fashion_mnist", copy_code: bool = False
) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["datasets"] = [dataset]
    for section, values in {**TINY, **(overrides or {})}.items():
        params[section].update(values)
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    if copy_code:  # a copy the test may edit (stages run from the project import it, not the installed one)
        shutil.copytree(REPO / "alstudy", root / "alstudy", ignore=shutil.ignore_patterns("__pycache__"))
    else:
        (root / "alstudy").symlink_to(REPO / "alstudy")  # checkpoint fingerprints read the code
    (root / "stages").symlink_to(REPO / "stages")  # `python -m stages.al` from the project, as DVC runs it
    write_splits(
        root / "data" / "prepared" / dataset,
        learnable_split(120, 0),
        learnable_split(40, 1),
        {"dataset": dataset, "class_names": list(FASHION_MNIST.class_names)},
    )
    return root


_EMPTY_STORE: list[Path] = []


def empty_store(target: Path) -> None:
    """An empty, fully migrated MLflow sqlite store at `target`, unless one is there: a copy of one made
    once per test process, since MLflow's migrations take 2-3 s per new store (creating a store, half-built
    ones included, is tested in tests/tracking/test_store.py)."""
    if target.exists():
        return
    if not _EMPTY_STORE:
        import tempfile

        template = Path(tempfile.mkdtemp(prefix="mlflow-template-")) / "mlflow.db"
        MlflowClient(f"sqlite:///{template}").search_experiments()  # creates and migrates it
        _EMPTY_STORE.append(template)
    shutil.copyfile(_EMPTY_STORE[0], target)


def run_al(project: Path, monkeypatch, strategy: str = "entropy", seed: int = 0, dataset: str = "fashion_mnist"):
    from stages import al

    empty_store(project / "mlflow.db")
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


def comparable(out: Path) -> tuple:
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


def runs_after_rerun(project: Path, monkeypatch, strategy: str = "entropy") -> list:
    run_al(project, monkeypatch, strategy=strategy)
    return runs_of(project, "cell")
