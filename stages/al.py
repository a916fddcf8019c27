"""DVC stages `al@<dataset>-<strategy>-<seed>` and, for another recipe than the default,
`al_recipe@<dataset>-<recipe>-<strategy>-<seed>`: one active-learning run, tracked in MLflow.

Writes results/<dataset>/[recipes/<recipe>/]<strategy>/s<seed>/ (alstudy/study/results.py). One process per cell
(alstudy/scale/process_lock.py); a killed run resumes from its last round checkpoint at the next
`dvc repro`, in the same MLflow run (alstudy/scale/cell.py).
"""

from __future__ import annotations

import argparse

from alstudy import strategies
from alstudy.learning.model import configure
from alstudy.params import load_params
from alstudy.paths import DEFAULT_RECIPE, cell_lock
from alstudy.runner import run_stage
from alstudy.scale import process_lock
from alstudy.scale.cell import cell_stage, run_cell


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True)  # validated against params.yaml's data.datasets
    parser.add_argument("--strategy", required=True, choices=strategies.names())
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--recipe", default=DEFAULT_RECIPE)  # validated against params.yaml's recipes
    args = parser.parse_args(argv)
    params = load_params()
    params.data.check(args.dataset)
    params = params.for_recipe(args.recipe)
    configure(params.model)  # threads; a bfloat16 run on a CPU without bfloat16 units stops here
    # One process per cell: a second one stops in one line, an orphan of a killed `dvc repro` is stopped.
    stage = cell_stage(args.dataset, args.strategy, args.seed, args.recipe)
    lock = cell_lock(args.dataset, args.strategy, args.seed, args.recipe)
    with process_lock.hold(lock, stage, rerun_hint="rerun `dvc repro`") as me:
        process_lock.stop_when_orphaned(stage, me.starter)
        run_cell(args.dataset, args.strategy, args.seed, params, args.recipe)


if __name__ == "__main__":
    run_stage(main)
