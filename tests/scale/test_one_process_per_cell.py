"""One process per cell, whatever is killed or started twice: an orphan of a killed `dvc repro`, two
grids in one workspace, a second process on a running cell, `dvc repro -f` of a finished cell. Each
ends with one MLflow run per cell and every round logged exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient

from alstudy.scale import process_lock
from helpers.formats import make_fashion_mnist_dir
from helpers.repo import copy_repo, dvc, machine_precision

pytestmark = pytest.mark.slow

ROUNDS = 3
STRATEGIES, SEEDS = ["random", "margin"], [0]


def git(args: list[str], cwd: Path) -> None:
    subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def env() -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
    return {**base, "PATH": str(Path(sys.executable).parent) + os.pathsep + base.get("PATH", "")}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cells")
    checksums = make_fashion_mnist_dir(root / "fashion", n_train=200, n_test=50)
    dest = root / "project"
    dest.mkdir()
    copy_repo(dest)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["data"]["datasets"] = ["fashion_mnist"]
    params["download"]["sources"] = {"fashion_mnist": [str(root / "fashion")], "cifar10": ["http://127.0.0.1:9/"]}
    params["download"]["checksums"] = checksums
    params["model"].update(precision=machine_precision(), filters=[4, 4, 4], dense_units=8, epochs=2, batch_size=8)
    params["al"].update(
        strategies=STRATEGIES, seeds=SEEDS, initial_size=10, query_size=5, rounds=ROUNDS, pool_subsample=40
    )
    params["al"]["log_models"] = "every"  # a model upload per round: rounds long enough to kill one mid-run
    # The grid asks for verdicts: one seed tests nothing, so it adds a step of seeds, up to the cap of 2.
    params["study"]["sequential"] = {"seeds_per_look": 2, "max_seeds": 2, "max_hours": 1.0}
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(["commit", "-qam", "tiny grid"], dest)
    return dest


def cell_runs(project: Path, name: str) -> list:
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    return mlflow.search_runs(
        experiment_names=["deep-active-learning"],
        output_format="list",
        filter_string=f"attributes.run_name = '{name}'",
    )


def assert_logged_once(project: Path, name: str) -> None:
    """One run of the cell in the store, FINISHED, each round's accuracy there once."""
    (run,) = cell_runs(project, name)
    assert run.info.status == "FINISHED"
    steps = [m.step for m in MlflowClient().get_metric_history(run.info.run_id, "accuracy")]
    assert sorted(steps) == list(range(ROUNDS + 1)), (name, steps)


def running_holder(lock: Path, timeout: float = 300) -> process_lock.Holder:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        holder = process_lock.read_holder(lock)
        if holder is not None and holder.process.alive():
            return holder
        time.sleep(0.02)
    raise AssertionError(f"nothing came to hold {lock}")


def test_an_orphan_of_a_killed_dvc_repro_is_stopped_and_each_round_logged_once(project, tmp_path):
    stage, cell = "al@fashion_mnist-random-0", project / "checkpoints/fashion_mnist/random"
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(
            [str(Path(sys.executable).parent / "dvc"), "repro", stage], cwd=project, env=env(), stdout=log, stderr=log
        )
        deadline = time.monotonic() + 300
        while not (cell / "s0" / "state.json").exists():  # round 0 checkpointed
            assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()
            time.sleep(0.02)
        orphan = process_lock.read_holder(cell / "s0.lock").process
        os.kill(orphan.pid, signal.SIGSTOP)  # frozen: it cannot notice its dvc dying; the next process must
        first.kill()  # kill -9 of `dvc repro`, not of the cell
        first.wait()
    assert orphan.alive(), "the cell should outlive the dvc that started it"

    second = dvc(["repro", stage], project)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert f"{stage}: process {orphan.pid} on " in second.stderr
    assert "was left running after its starter died; stopping it" in second.stderr
    assert "resuming after round" in second.stderr  # into the same run, from the orphan's checkpoint
    assert not orphan.alive()
    assert_logged_once(project, "fashion_mnist-random-s0")


def test_a_second_grid_and_a_second_cell_process_stop_in_one_line(project, tmp_path):
    grid = [sys.executable, "-m", "alstudy.console.grid", "--jobs", "1"]
    with open(tmp_path / "grid.log", "w") as log:
        first = subprocess.Popen(grid, cwd=project, env=env(), stdout=log, stderr=log)
        holder = running_holder(project / "checkpoints/fashion_mnist/margin/s0.lock")  # its first cell runs
        os.kill(holder.process.pid, signal.SIGSTOP)  # held still while the others try: a cell takes seconds
        second = subprocess.run(grid, cwd=project, env=env(), capture_output=True, text=True, timeout=300)
        same_cell = subprocess.run(
            [sys.executable, "-m", "stages.al", "--dataset", "fashion_mnist", "--strategy", "margin", "--seed", "0"],
            cwd=project,
            env=env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        os.kill(holder.process.pid, signal.SIGCONT)
        assert first.wait(timeout=900) == 0, (tmp_path / "grid.log").read_text()[-4000:]

    assert second.returncode == 2
    (line,) = second.stderr.strip().splitlines()[-1:]
    assert line.startswith(f"error: alstudy grid in {project}: already running in process {first.pid} on ")
    assert same_cell.returncode == 2
    assert (
        same_cell.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: al@fashion_mnist-margin-0: already running in process {holder.process.pid} on ")
    )
    for strategy in STRATEGIES:
        for seed in [*SEEDS, 1]:
            assert_logged_once(project, f"fashion_mnist-{strategy}-s{seed}")
    # After its look at seed 0 the grid added seed 1 to params.yaml, ran its cells, and stopped at the cap.
    assert yaml.safe_load((project / "params.yaml").read_text())["al"]["seeds"] == [0, 1]
    log = (tmp_path / "grid.log").read_text()
    assert "look at 1 seed: too few seeds to test" in log and "added seed 1 to al.seeds in params.yaml" in log
    assert "seed cap (study.sequential.max_seeds 2) reached" in log or "every comparison is decided at 2" in log
    verdicts = json.loads((project / "metrics/verdicts/fashion_mnist.json").read_text())
    assert (
        verdicts["family"]["looks"] == [2] and verdicts["margin"]["vs_random"]["accuracy"]["p_sequential"] is not None
    )


def test_dvc_repro_force_of_a_finished_cell_replaces_its_run(project):
    (before,) = cell_runs(project, "fashion_mnist-margin-s0")
    done = dvc(["repro", "-f", "al@fashion_mnist-margin-0"], project)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"replaced the MLflow run {before.info.run_id} of an earlier run of this cell" in done.stderr
    assert_logged_once(project, "fashion_mnist-margin-s0")
    (after,) = cell_runs(project, "fashion_mnist-margin-s0")
    assert after.info.run_id != before.info.run_id
