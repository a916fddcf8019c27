"""The grid runner: cells side by side on this machine, and as tasks on a real Ray cluster.

Both must give exactly the numbers of a sequential `dvc repro` of the same grid, and
leave DVC's record as `dvc repro` would. The Ray test starts a head and a second node
on 127.0.0.1, each with its own working folder, a bare Git remote, a local DVC remote,
PostgreSQL and an MLflow tracking server, and kills one worker with SIGKILL mid-cell.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient
from services import create_database, postgres_cluster, ray_cluster, tracking_server

from helpers.formats import make_fashion_mnist_dir
from helpers.repo import copy_repo, dvc, machine_precision

pytestmark = pytest.mark.slow

STRATEGIES, SEEDS, ROUNDS = ["random", "margin"], [0], 3  # two cells: side by side, one per Ray node
CELLS = [f"fashion_mnist/{s}/s{seed}" for s in STRATEGIES for seed in SEEDS]
KILLED = ("margin", 0)  # the cell whose Ray worker is killed mid-run


def git(args: list[str], cwd: Path) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def make_project(dest: Path, fashion_dir: Path, checksums: dict) -> Path:
    dest.mkdir(parents=True)
    copy_repo(dest)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["data"]["datasets"] = ["fashion_mnist"]
    params["download"]["sources"] = {"fashion_mnist": [str(fashion_dir)], "cifar10": ["http://127.0.0.1:9/"]}
    params["download"]["checksums"] = checksums
    params["model"].update(precision=machine_precision())
    params["model"].update(filters=[4, 4, 4], dense_units=8, epochs=2, batch_size=8, predict_batch_size=64)
    params["al"].update(
        strategies=STRATEGIES,
        seeds=SEEDS,
        initial_size=10,
        query_size=5,
        rounds=ROUNDS,
        pool_subsample=40,
        log_models="last",
    )
    params["study"]["sequential"] = None  # the seeds listed: the sequential reference runs the same cells
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(["commit", "-qam", "tiny grid"], dest)
    return dest


def python(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
    base["PATH"] = str(Path(sys.executable).parent) + os.pathsep + base.get("PATH", "")
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env={**base, **(env or {})}, capture_output=True, text=True, timeout=900
    )


def results(project: Path) -> dict[str, object]:
    """Every cell's curve (without timings) and queried indices."""
    out = {}
    for cell in CELLS:
        with open(project / "results" / cell / "curve.csv") as stream:
            out[f"{cell}/curve"] = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(stream)]
        out[f"{cell}/queries"] = (project / "results" / cell / "queries.csv").read_text()
    return out


def assert_recorded_like_repro(project: Path) -> None:
    status = dvc(["status", "--json"], project)
    assert status.returncode == 0 and json.loads(status.stdout) == {}, status.stdout + status.stderr
    metrics = dvc(["metrics", "show", "--json"], project)
    for cell in CELLS:
        assert f"results/{cell}/metrics.json" in metrics.stdout
    assert (project / "report" / "study.md").is_file() and (project / "plots/fashion_mnist/accuracy.png").is_file()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fashion")
    return folder, make_fashion_mnist_dir(folder, n_train=200, n_test=50)


@pytest.fixture(scope="module")
def sequential(tmp_path_factory, data):
    """The reference: a plain sequential `dvc repro` of the tiny grid's cells (and the stages before them)."""
    project = make_project(tmp_path_factory.mktemp("sequential") / "project", *data)
    done = dvc(["repro", "al"], project)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return results(project)


def test_cells_side_by_side_equal_sequential_repro(tmp_path, data, sequential):
    project = make_project(tmp_path / "project", *data)
    # A file where one cell's checkpoint folder goes makes that cell fail after its first round.
    blocker = project / "checkpoints/fashion_mnist/margin/s0"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("in the way")
    failed = python(["-m", "alstudy.console.grid", "--jobs", "2"], project)
    assert failed.returncode == 2, failed.stderr[-3000:]
    assert "2 of 2 al cells to run, 2 at a time" in failed.stderr
    assert "error: 1 of 2 cells failed (al@fashion_mnist-margin-0)" in failed.stderr
    status = json.loads(dvc(["status", "--json"], project).stdout)
    assert "al@fashion_mnist-margin-0" in status and "al@fashion_mnist-random-0" not in status

    blocker.unlink()
    done = python(["-m", "alstudy.console.grid", "--jobs", "2"], project)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "1 of 2 al cells to run" in done.stderr
    assert results(project) == sequential
    assert_recorded_like_repro(project)


def find_cell_process(strategy: str, seed: int) -> int | None:
    wanted = ["stages.al", "--strategy", strategy, "--seed", str(seed)]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().decode().split("\0")
            except OSError:
                continue
            if all(part in argv for part in wanted):
                return int(entry.name)
    return None


def parent_of(pid: int) -> int:
    return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])


def kill_worker_mid_cell(workdirs: list[Path], killed: list[str], stop: threading.Event) -> None:
    """Once the cell has checkpointed a round, SIGKILL the Ray worker running it."""
    strategy, seed = KILLED
    state = Path("checkpoints/fashion_mnist") / strategy / f"s{seed}" / "state.json"
    cell = f"al@fashion_mnist-{strategy}-{seed}"
    while not stop.is_set():
        if any((w / "cells" / cell / state).exists() for w in workdirs):
            pid = find_cell_process(strategy, seed)
            if pid is not None:
                worker = parent_of(pid)
                name = (Path("/proc") / str(worker) / "cmdline").read_bytes().decode(errors="replace")
                os.kill(worker, signal.SIGKILL)
                killed.append(name)
                return
        time.sleep(0.02)


@pytest.mark.ray
@pytest.mark.postgres
def test_ray_cluster_runs_the_grid_like_local_repro(tmp_path, data, sequential):
    remote = tmp_path / "remote.git"
    git(["init", "-q", "--bare", str(remote)], tmp_path)
    project = make_project(tmp_path / "driver", *data)
    git(["remote", "add", "origin", str(remote)], project)
    assert dvc(["remote", "add", "-d", "storage", str(tmp_path / "dvc-store")], project).returncode == 0
    git(["commit", "-qam", "DVC remote"], project)
    workdirs = [tmp_path / "node-head", tmp_path / "node-2"]

    with (
        postgres_cluster(tmp_path / "pg") as postgres,
        tracking_server(create_database(postgres, "grid"), tmp_path / "server") as url,
        ray_cluster(workdirs) as address,
    ):
        killed: list[str] = []
        stop = threading.Event()
        killer = threading.Thread(target=kill_worker_mid_cell, args=(workdirs, killed, stop), daemon=True)
        killer.start()
        done = python(["-m", "alstudy.console.grid", "--ray", address], project, {"MLFLOW_TRACKING_URI": url})
        stop.set()
        (tmp_path / "driver.log").write_text(done.stdout + done.stderr)  # for reading after a failure
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
        assert killed and "ray" in killed[0].lower(), killed

        # The same numbers as a sequential local `dvc repro`, and DVC's record as after one.
        assert results(project) == sequential
        assert_recorded_like_repro(project)
        # Workers really ran in their own clones, on both nodes.
        for workdir in workdirs:
            assert list((workdir / "cells").glob("al@fashion_mnist-*/.git")), workdir

        # One finished MLflow run per cell on the server, every round logged once, the killed one too.
        mlflow.set_tracking_uri(url)
        runs = mlflow.search_runs(experiment_names=["deep-active-learning"], output_format="list")
        cells = [r for r in runs if r.data.tags.get("kind") != "summary"]
        names = sorted(r.info.run_name for r in cells)
        assert names == sorted(f"fashion_mnist-{s}-s{seed}" for s in STRATEGIES for seed in SEEDS)
        # One study: its parent, made by whichever worker came first, holds every cell, the retried one too.
        (parent,) = [r for r in runs if r.data.tags.get("kind") == "summary"]
        assert {r.data.tags.get("mlflow.parentRunId") for r in cells} == {parent.info.run_id}
        client = MlflowClient()
        for run in cells:
            assert run.info.status == "FINISHED"
            steps = [m.step for m in client.get_metric_history(run.info.run_id, "accuracy")]
            assert sorted(steps) == list(range(ROUNDS + 1)), (run.info.run_name, steps)


def test_ray_path_refuses_a_store_workers_cannot_reach_and_uncommitted_code(tmp_path):
    from alstudy.errors import PipelineError
    from alstudy.scale.cluster import committed_head, ray_launcher

    with pytest.raises(PipelineError, match="Ray workers cannot log to sqlite:///.*MLFLOW_TRACKING_URI"):
        ray_launcher(
            "127.0.0.1:1",
            git_remote="origin",
            dvc_remote=None,
            tracking_uri="sqlite:///tmp/mlflow.db",
            cpus_per_cell=1,
            gpus_per_cell=0,
            retries=3,
        )
    git(["init", "-q"], tmp_path)
    (tmp_path / "params.yaml").write_text("al: {}\n")
    git(["add", "params.yaml"], tmp_path)
    git(["commit", "-qm", "params"], tmp_path)
    assert len(committed_head(tmp_path)) == 40
    (tmp_path / "params.yaml").write_text("al: {rounds: 3}\n")
    with pytest.raises(
        PipelineError, match="Ray workers run your last commit, but these files changed since: params.yaml;"
    ):
        committed_head(tmp_path)
