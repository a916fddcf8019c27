"""The grid's al cells as tasks on a Ray cluster; the driver's DVC stays the record.

Workers share no filesystem with the driver. Before the tasks go out, the driver
pushes its commit to the Git remote (under refs/al-grid/<commit>, away from your
branches) and the cells' input data to the DVC remote. Each task then, on its node
(alstudy/scale/cell_task.py): clones that commit into a folder of its own, pulls the
data, runs the cell against the shared MLflow tracking server and returns the
cell's output files (a few KB: curve, queried indices, metrics). The driver writes
them into its workspace and `dvc commit`s the cell (alstudy/scale/grid.py).

A task whose worker dies (a killed process, a lost node) is retried by Ray. On the
same node it finds the cell's round checkpoint in its clone and resumes, in the same
MLflow run; elsewhere it starts the cell over, and the unfinished MLflow run of the
lost attempt is removed (stages/al.py), so each cell ends with one run, each round
logged once.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from typing import Iterator

from alstudy.errors import PipelineError
from alstudy.fileio import atomic_path
from alstudy.scale import cell_task, ray_node
from alstudy.scale.cell_task import Cell, CellFailed, RemoteJob
from alstudy.scale.grid import Launcher, dvc
from alstudy.tracking import store

log = logging.getLogger("cluster")
REF_PREFIX = "refs/al-grid/"
# What the cells' code and configuration are: workers get them from Git, so they must be committed.
COMMITTED = ["dvc.yaml", "params.yaml", "pyproject.toml", "alstudy", "stages"]


def git(args: list[str], root: Path) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise PipelineError(f"`git {' '.join(args)}` failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return done.stdout.strip()


def committed_head(root: Path) -> str:
    """HEAD, provided the cells' code and params in the workspace are what it holds."""
    changed = git(["diff", "HEAD", "--name-only", "--", *COMMITTED], root).splitlines()
    changed += git(["ls-files", "--others", "--exclude-standard", "--", *COMMITTED], root).splitlines()
    if changed:
        raise PipelineError(
            f"Ray workers run your last commit, but these files changed since: "
            f"{', '.join(changed[:5])}; commit (or stash) them first"
        )
    return git(["rev-parse", "HEAD"], root)


def dvc_remote_url(root: Path, name: str | None) -> tuple[str, str]:
    """(name, url) of the DVC remote to share data through: `name`, or DVC's default remote."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        remotes, default = repo.config.get("remote", {}), repo.config.get("core", {}).get("remote")
    name = name or default
    if name is None or name not in remotes:
        raise PipelineError(
            f"no DVC remote {name or '(default)'} for the workers to pull data from; add one "
            "they can all reach: `dvc remote add -d storage <url>` (s3://, ssh://, a shared path)"
        )
    return name, remotes[name]["url"]


def ray_launcher(
    address: str,
    *,
    git_remote: str,
    dvc_remote: str | None,
    tracking_uri: str,
    cpus_per_cell: int,
    gpus_per_cell: float,
    retries: int,
) -> Launcher:
    if not store.is_remote(tracking_uri):
        raise PipelineError(
            f"Ray workers cannot log to {tracking_uri}: start a tracking server "
            "(docs/user-guide/tracking-server.md) and set MLFLOW_TRACKING_URI=http://<server>:5000"
        )

    def launch(root: Path, cells: list[Cell]) -> Iterator[tuple[Cell, Exception | None]]:
        os.environ.update(ray_node.driver_env(address))  # before ray is imported: Ray reads it once
        import ray  # only the cluster path needs it
        from ray import cloudpickle

        commit = committed_head(root)
        git_url = git(["remote", "get-url", git_remote], root)
        ref = REF_PREFIX + commit
        log.info("pushing commit %s to %s (%s)", commit[:10], git_remote, ref)
        git(["push", "--quiet", git_remote, f"{commit}:{ref}"], root)
        remote_name, dvc_url = dvc_remote_url(root, dvc_remote)
        data = sorted({path for cell in cells for path in cell.data})
        if data:
            log.info("pushing %s to the DVC remote %s", ", ".join(data), remote_name)
            dvc(["push", "--quiet", "-r", remote_name, *data], root)
        lock_text = (root / "dvc.lock").read_text()

        try:
            ray.init(address=address, log_to_driver=True)
        except (ConnectionError, ray.exceptions.AuthenticationError) as error:
            raise PipelineError(
                f"cannot connect to the Ray cluster at {address} ({str(error).split('. ')[0]}); if it uses token "
                "authentication, `export RAY_AUTH_MODE=token` with its token in ~/.ray/auth_token (mode 600)"
            ) from None
        try:
            cloudpickle.register_pickle_by_value(cell_task)  # workers need not have this project on their path
            task = ray.remote(num_cpus=cpus_per_cell, num_gpus=gpus_per_cell, max_retries=retries)(cell_task.execute)
            pending = {
                task.options(name=cell.stage).remote(
                    RemoteJob(cell, git_url, commit, ref, dvc_url, lock_text, tracking_uri)
                ): cell
                for cell in cells
            }
            while pending:
                [ready], _ = ray.wait(list(pending), num_returns=1)
                cell = pending.pop(ready)
                try:
                    files = ray.get(ready)
                except ray.exceptions.RayTaskError as error:  # the cell itself failed: not retried
                    yield cell, CellFailed(f"{cell.stage}: {str(error.cause) or type(error.cause).__name__}")
                    continue
                except ray.exceptions.RayError as error:  # its worker died more than `retries` times
                    yield cell, CellFailed(f"{cell.stage}: lost after {retries} retries ({type(error).__name__})")
                    continue
                for out, content in files.items():
                    path = root / out
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with atomic_path(path) as tmp:
                        Path(tmp).write_bytes(content)
                yield cell, None
        finally:
            ray.shutdown()

    return launch
