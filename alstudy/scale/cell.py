"""One cell of the grid (a dataset x strategy x seed): a resumable active-learning run tracked in MLflow.

The run checkpoints each round (alstudy/learning/checkpoint.py) before it logs it
(alstudy/tracking/cell_run.py), so a killed cell resumes from its last round in the same MLflow
run, and writes its results (alstudy/study/results.py). The DVC stage `al@...` (stages/al.py)
holds the cell's lock and calls `run_cell`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from alstudy import code_closure, strategies
from alstudy.data.preprocess import SPLIT_FILES, load_splits
from alstudy.learning import backends, checkpoint
from alstudy.learning.loop import check_budget, run_loop
from alstudy.learning.model import CNN
from alstudy.params import ModelParams, Params
from alstudy.paths import DEFAULT_RECIPE, checkpoint_dir, prepared_dir, run_dir
from alstudy.study import results
from alstudy.tracking import cell_run

log = logging.getLogger("al")
STAGE = "stages/al.py"


def cell_code(strategy: str, model: ModelParams) -> list[Path]:
    """What shapes the cell's numbers (its checkpoint fingerprint): this stage's import closure, its own
    strategy's module and its recipe's network and augmentation modules; a fix to another strategy or
    network resumes this cell."""
    return code_closure.cell_code(
        STAGE,
        f"alstudy/strategies/{strategies.canonical(strategy)}.py",
        backend_module=f"alstudy/learning/backends/{backends.running()}.py",
        recipe_modules=(
            f"alstudy/recipes/networks/{model.network}.py",
            *(f"alstudy/recipes/augmentations/{name}.py" for name in model.augmentation),
        ),
    )


def cell_stage(dataset: str, strategy: str, seed: int, recipe: str = DEFAULT_RECIPE) -> str:
    """The cell's DVC stage, as dvc.yaml's matrices name it."""
    if recipe == DEFAULT_RECIPE:
        return f"al@{dataset}-{strategy}-{seed}"
    return f"al_recipe@{dataset}-{recipe}-{strategy}-{seed}"


def run_config(params: Params, dataset: str, strategy: str, seed: int, recipe: str = DEFAULT_RECIPE) -> dict:
    """What shapes this run's numbers: its own strategy's options, not the other strategies'; its recipe's
    model (`params` are the recipe's, Params.for_recipe), and its name where it is not the default."""
    return {
        "dataset": dataset,
        "strategy": strategy,
        "seed": seed,
        **({"recipe": recipe} if recipe != DEFAULT_RECIPE else {}),
        **params.run_settings([strategy]),
        "compute": backends.compute(),  # the backend and device this process computes on (configure() set it)
    }


def run_cell(dataset: str, strategy: str, seed: int, params: Params, recipe: str = DEFAULT_RECIPE) -> None:
    """Run (or resume) one cell; `params` are its recipe's (Params.for_recipe)."""
    data_dir = prepared_dir(dataset)
    pool, test = load_splits(data_dir)
    check_budget(params.al, len(pool.x), dataset)
    names, n_classes = json.loads((data_dir / "meta.json").read_text()).get("class_names", []), pool.y.shape[1]
    config = run_config(params, dataset, strategy, seed, recipe)
    folder = checkpoint_dir(dataset, strategy, seed, recipe)
    fp = checkpoint.fingerprint(config, [data_dir / f for f in SPLIT_FILES], cell_code(strategy, params.model))
    cell = cell_run.CellId(dataset, strategy, seed, recipe)
    saved = checkpoint.load(folder, fp, cell.name)
    resumed = cell_run.Resumed(saved.run_id, saved.state.history, saved.model) if saved else None
    with cell_run.tracked(params, cell, config, names, n_classes, resumed) as run:

        def on_round(state, result, cnn: CNN) -> None:  # checkpoint first: the commit point of a round
            checkpoint.save(folder, state, cnn.model, run.run_id, fp)
            run.log_round(result, cnn.model)

        cnn = CNN(pool.x.shape[1:], n_classes, params.model, saved.model if saved else None)
        options, fresh = params.al.options(strategy), params.model.retrain_from_scratch
        state = run_loop(
            pool,
            test,
            strategy,
            params.al,
            cnn,
            seed,
            options=options,
            retrain_from_scratch=fresh,
            state=saved.state if saved else None,
            on_round=on_round,
            stop_set_size=params.stopping.stop_set,
        )
        compute = {**config["compute"], "precision": params.model.precision, "threads": params.model.threads}
        out = run_dir(dataset, strategy, seed, recipe)
        metrics = results.write(out, state, pool.labels, compute)
        run.finish(out, metrics)
    checkpoint.discard(folder)
    log.info(
        "%s: done; final accuracy %.4f, F1 %.4f with %d labels",
        run.name,
        *(metrics[k] for k in ("accuracy", "f1_macro", "n_labeled")),
    )
