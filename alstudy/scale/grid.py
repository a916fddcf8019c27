"""Run the grid's al cells side by side, and let DVC record them as if `dvc repro` had.

`dvc repro` runs one stage at a time, and a run uses `model.threads` cores, so on a
machine with more cores most of them idle. The runner:

1. brings the stages the al cells depend on up to date (`dvc repro <those stages>`);
2. asks DVC which al cells are stale and runs their commands side by side, on this
   machine (`local_launcher`) or as Ray tasks (`alstudy.scale.cluster.ray_launcher`);
3. records each finished cell with `dvc commit`, one at a time (dvc.lock has one
   writer), so dvc.lock, `dvc status` and `dvc metrics show` read as after `dvc repro`;
4. ends with `dvc repro`, which finds the cells up to date and makes plots and report.

With `study.sequential` set, `run_study` repeats this, adding seeds, until the verdicts
are in (alstudy/scale/looks.py).

A failed cell stops no other: the rest finish and are recorded, then the runner names
the failures and stops. Rerunning goes on from there (cells resume from checkpoints).
"""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Iterator

from dvc.repo import Repo

from alstudy.errors import PipelineError
from alstudy.params import SequentialParams, load_params
from alstudy.scale import process_lock
from alstudy.scale.cell_task import Cell, on_gpu_env, run_command, venv_env
from alstudy.scale.looks import Outcome, run_looks

log = logging.getLogger("grid")
GRID_STAGES = ("al", "al_recipe")  # dvc.yaml's cell matrices: the default recipe's, the other recipes'
GRID_LOCK = Path(".dvc") / "tmp" / "alstudy-grid.lock"  # DVC's scratch folder: ignored by git

# Runs the given cells somewhere; yields each cell when it has finished, with its error if it failed.
Launcher = Callable[[Path, list[Cell]], Iterator[tuple[Cell, Exception | None]]]


def dvc(args: list[str], root: Path, *, quiet: bool = False) -> str:
    """Run a DVC command in the project; a failure becomes one line naming the command."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), *args], cwd=root, env=venv_env(), capture_output=quiet, text=True
    )
    if done.returncode != 0:
        last = (done.stderr or "").strip().splitlines()[-1:] if quiet else []
        detail = f": {last[0]}" if last else " (its output is above)"
        raise PipelineError(f"`dvc {' '.join(args)}` failed{detail}")
    return done.stdout or ""


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def upstream_of(graph, stage) -> set:
    """Every stage `stage` depends on, directly or not (DVC's graph: edges point to dependencies)."""
    seen, todo = set(), [stage]
    while todo:
        for before in graph.successors(todo.pop()):
            if before not in seen:
                seen.add(before)
                todo.append(before)
    return seen


def grid_cells(root: Path) -> tuple[list[Cell], list[str]]:
    """The al cells, with the commands dvc.yaml gives them, and the stages they depend on."""
    with Repo(str(root)) as repo:
        graph = repo.index.graph  # edges run from a stage to the stages it depends on
        cells, upstream = [], set()
        for stage in repo.index.stages:
            name = getattr(stage, "name", "")
            if "@" not in name or name.split("@", 1)[0] not in GRID_STAGES:
                continue
            before = upstream_of(graph, stage)
            upstream |= {s.addressing for s in before}
            made_upstream = {str(out.def_path) for s in before for out in s.outs}
            cells.append(
                Cell(
                    stage=stage.addressing,
                    cmd=stage.cmd,
                    outs=tuple(str(out.def_path) for out in stage.outs),
                    data=tuple(str(d.def_path) for d in stage.deps if str(d.def_path) in made_upstream),
                )
            )
    return cells, sorted(upstream)


def stale_cells(root: Path, cells: list[Cell]) -> list[Cell]:
    with Repo(str(root)) as repo:
        changed = repo.status(targets=[cell.stage for cell in cells])
    return [cell for cell in cells if cell.stage in changed]


def local_launcher(jobs: int, gpus: list[str] | None = None) -> Launcher:
    """Cells as processes on this machine, `jobs` at a time; with `gpus` (a GPU index per slot,
    alstudy/scale/gpu_plan.py), as many at a time as slots, each cell on its slot's GPU."""

    def launch(root: Path, cells: list[Cell]) -> Iterator[tuple[Cell, Exception | None]]:
        slots: queue.Queue[str | None] = queue.Queue()
        for slot in gpus or [None] * jobs:
            slots.put(slot)

        def run(cell: Cell) -> None:
            gpu = slots.get()
            try:
                run_command(cell, root, None if gpu is None else on_gpu_env(gpu))
            finally:
                slots.put(gpu)

        with ThreadPoolExecutor(max_workers=len(gpus) if gpus else jobs) as pool:
            futures = {pool.submit(run, cell): cell for cell in cells}
            for future in as_completed(futures):
                yield futures[future], future.exception()

    return launch


def run_grid(root: Path, launch: Launcher, where: str) -> None:
    """The grid, one at a time per workspace: a second grid would run the same cells into the same runs."""
    with process_lock.hold(root / GRID_LOCK, f"alstudy grid in {root}"):
        _run_grid(root, launch, where)


def run_study(root: Path, launch: Launcher, where: str, plan: SequentialParams, *, one_look: bool = False) -> Outcome:
    """The grid, look after look, adding seeds until every verdict is decided or a cap is reached."""
    from alstudy.study.replication import study_verdicts

    with process_lock.hold(root / GRID_LOCK, f"alstudy grid in {root}"):
        return run_looks(
            root,
            run_look=lambda: _run_grid(root, launch, where),
            read_verdicts=lambda: study_verdicts(root),
            read_seeds=lambda: load_params(root / "params.yaml").al.seeds,
            plan=plan,
            one_look=one_look,
        )


def _run_grid(root: Path, launch: Launcher, where: str) -> None:
    cells, upstream = grid_cells(root)
    if upstream:
        log.info("bringing %s up to date", ", ".join(upstream))
        dvc(["repro", *upstream], root)
    todo = stale_cells(root, cells)
    log.info("%d of %d al cells to run, %s", len(todo), len(cells), where)
    failed: list[str] = []
    started = time.monotonic()
    for done, (cell, error) in enumerate(launch(root, todo), start=1):
        if error is not None:
            failed.append(cell.stage)
            log.error("%s", error)
            continue
        dvc(["commit", "--force", "--quiet", cell.stage], root, quiet=True)
        log.info(
            "%s recorded in dvc.lock (%d/%d, %.0f s so far)", cell.stage, done, len(todo), time.monotonic() - started
        )
    if failed:
        raise PipelineError(
            f"{len(failed)} of {len(todo)} cells failed ({', '.join(failed)}); the others are "
            "recorded in dvc.lock; fix the cause and rerun to run only these"
        )
    log.info("all cells recorded; `dvc repro` for the stages after them")
    dvc(["repro"], root)
