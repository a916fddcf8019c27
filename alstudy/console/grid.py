"""`dvc repro` with the grid's al cells side by side: on every core here, or on a Ray cluster.

    python -m alstudy.console.grid                    # cores // model.threads cells at once on this machine
    python -m alstudy.console.grid --jobs 4
    python -m alstudy.console.grid --cells-per-gpu 8  # on a machine with GPUs (model.backend: jax)
    python -m alstudy.console.grid --ray 10.0.0.5:6379 --git-remote origin --dvc-remote storage

The numbers are those of `dvc repro` (each run uses model.threads threads either way);
dvc.lock, `dvc status`, `dvc metrics show`, the plots and the report see every cell as
if `dvc repro` had run it. See alstudy/scale/grid.py and alstudy/scale/cluster.py.
With `study.sequential` in params.yaml (the default study), it then adds seeds to
al.seeds, a step at a time, until every verdict is in or a cap is reached
(alstudy/scale/looks.py); on a Ray cluster it stops after each step for a commit.
"""

from __future__ import annotations

import argparse
import logging

from alstudy.params import load_params
from alstudy.paths import project_root
from alstudy.runner import run_stage
from alstudy.scale.gpu_plan import gpu_slots
from alstudy.scale.grid import available_cores, local_launcher, run_grid, run_study

log = logging.getLogger("grid")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--jobs", "-j", type=int, default=0, help="cells at once on this machine (default: cores // model.threads)"
    )
    parser.add_argument("--ray", metavar="ADDRESS", help="run the cells as tasks on this Ray cluster (host:port)")
    parser.add_argument("--git-remote", default="origin", help="Git remote the workers clone from (default: origin)")
    parser.add_argument("--dvc-remote", help="DVC remote the workers pull data from (default: DVC's default remote)")
    parser.add_argument(
        "--cells-per-gpu",
        type=int,
        help="cells sharing each GPU, here or on Ray (default here: as many as the cores feed; on Ray: none)",
    )
    parser.add_argument(
        "--gpus-per-cell", type=float, default=0.0, help="GPUs Ray reserves per cell, a fraction to share (default 0)"
    )
    parser.add_argument("--retries", type=int, default=3, help="Ray retries of a cell whose worker dies (default 3)")
    args = parser.parse_args(argv)
    params = load_params()
    threads, root = params.model.threads, project_root()

    if args.ray:
        from alstudy.scale.cluster import ray_launcher
        from alstudy.tracking.runs import tracking_uri

        launch = ray_launcher(
            args.ray,
            git_remote=args.git_remote,
            dvc_remote=args.dvc_remote,
            tracking_uri=tracking_uri(params.base),
            cpus_per_cell=threads,
            gpus_per_cell=args.gpus_per_cell or (1 / args.cells_per_gpu if args.cells_per_gpu else 0.0),
            retries=args.retries,
        )
        where = f"as Ray tasks on {args.ray} ({threads} CPU each)"
    else:
        model = params.model
        gpus = gpu_slots(
            args.cells_per_gpu, backend=model.backend, device=model.device, threads=threads, cores=available_cores()
        )
        jobs = len(gpus) if gpus else args.jobs or max(1, available_cores() // threads)
        launch = local_launcher(jobs, gpus)
        where = f"{jobs} at a time on this machine ({threads} {model.backend} thread{'s' * (threads > 1)} each)"
        if gpus:
            where += f" on {len(set(gpus))} GPU{'s' * (len(set(gpus)) > 1)}"
    plan = params.study.sequential
    if plan is None:
        run_grid(root, launch, where)
    else:
        run_study(root, launch, where, plan, one_look=bool(args.ray))


if __name__ == "__main__":
    run_stage(main)
