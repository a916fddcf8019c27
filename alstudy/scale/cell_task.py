"""Running one al cell's command, here or in a worker's own clone of the project.

Standard library only: a Ray worker receives this module by value (it need not have
the project on its path); the project code the cell runs comes from the worker's
Git clone, its data from the DVC remote.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PR_SET_PDEATHSIG = 1
WORKDIR_ENV = "AL_GRID_WORKDIR"  # a worker node's working folder (clones, DVC cache)
# Cells that share a GPU take its memory as they need it: JAX (XLA) and TensorFlow would each take
# most of the device at start, and the second cell on it would find none left.
SHARED_GPU_ENV = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}


class CellFailed(Exception):
    """A cell's command exited non-zero (its own one-line error is in its output)."""


@dataclass(frozen=True)
class Cell:
    stage: str  # "al@fashion_mnist-margin-0"
    cmd: str  # the command dvc.yaml gives it
    outs: tuple[str, ...]  # its output files, relative to the project root
    data: tuple[str, ...]  # its inputs made by other stages (what a worker pulls)


@dataclass(frozen=True)
class RemoteJob:
    """What a Ray worker needs to run a cell without the driver's filesystem."""

    cell: Cell
    git_url: str
    commit: str
    git_ref: str  # the ref on the Git remote that holds `commit`
    dvc_url: str
    lock_text: str  # the driver's dvc.lock: which data versions to pull
    tracking_uri: str


def _die_with_parent():
    """A preexec_fn: the child gets SIGKILL when its parent dies, so a killed worker leaves no orphan run."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child should only make the call
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def venv_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment with this interpreter's bin/ first, so `python` and `dvc` are the venv's."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), **(extra or {})}


def run_command(cell: Cell, cwd: Path, env: dict[str, str] | None = None) -> None:
    """Run the cell's command as DVC would: outputs removed first, from the project root."""
    for out in cell.outs:
        (cwd / out).unlink(missing_ok=True)
    # No shell in between: the death signal must reach the cell's own process.
    code = subprocess.run(shlex.split(cell.cmd), cwd=cwd, env=venv_env(env), preexec_fn=_die_with_parent()).returncode
    if code != 0:
        raise CellFailed(f"{cell.stage} failed (exit {code}); its error is in the output above")


def on_gpu_env(gpu: str) -> dict[str, str]:
    """The environment of a cell that computes on GPU `gpu` (an index), beside other cells."""
    return {"CUDA_VISIBLE_DEVICES": gpu, **SHARED_GPU_ENV}


def _run(args: list[str], cwd: Path) -> None:
    done = subprocess.run(args, cwd=cwd, env=venv_env(), capture_output=True, text=True)
    if done.returncode != 0:
        detail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise CellFailed(f"`{' '.join(args)}` failed in {cwd}: {detail[0]}")


def prepare_clone(workdir: Path, job: RemoteJob) -> Path:
    """This cell's clone at the driver's commit, with its data pulled.

    One folder per cell, kept between attempts: a task Ray retries on the same node
    finds the cell's round checkpoint there and resumes from it.
    """
    clone = workdir / "cells" / job.cell.stage
    if not (clone / ".git").is_dir():
        partial = clone.with_name(clone.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)  # a clone an earlier attempt left half done
        partial.parent.mkdir(parents=True, exist_ok=True)
        _run(["git", "clone", "--quiet", "--no-checkout", job.git_url, str(partial)], workdir)
        partial.rename(clone)
    _run(["git", "fetch", "--quiet", "origin", job.git_ref], clone)
    _run(["git", "checkout", "--quiet", "--force", job.commit], clone)
    (clone / "dvc.lock").write_text(job.lock_text)
    dvc = str(Path(sys.executable).parent / "dvc")
    _run([dvc, "remote", "add", "--local", "--force", "--default", "grid", job.dvc_url], clone)
    _run([dvc, "cache", "dir", "--local", str(workdir / "dvc-cache")], clone)
    _run([dvc, "config", "--local", "cache.type", "hardlink,copy"], clone)
    # One pull at a time per node: cells on the same node share the DVC cache.
    with open(workdir / "pull.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _run([dvc, "pull", "--quiet", *job.cell.data], clone)
    return clone


def execute(job: RemoteJob) -> dict[str, bytes]:
    """A Ray task: run the cell in this node's clone and return its output files."""
    workdir = Path(os.environ.get(WORKDIR_ENV) or Path.home() / ".cache" / "al-grid").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    clone = prepare_clone(workdir, job)
    # Ray has set CUDA_VISIBLE_DEVICES to the GPU (or share of one) it reserved for this task.
    run_command(job.cell, clone, {"MLFLOW_TRACKING_URI": job.tracking_uri, **SHARED_GPU_ENV})
    return {out: (clone / out).read_bytes() for out in job.cell.outs}
