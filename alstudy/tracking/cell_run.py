"""A cell's MLflow run from start to finish: one context manager for the al stage.

    with cell_run.tracked(params, CellId(dataset, strategy, seed, recipe), config, names, n_classes, resumed) as run:
        ... run.log_round(result, model) after each round's checkpoint ...
        run.finish(results_dir, metrics)

On entry: the store and experiment (waiting out an outage), the study's parent run, then either the
checkpoint's run reopened (rounds checkpointed but not yet logged are logged now, once) or a new run
named and tagged after the cell, after deleting the runs a killed attempt left RUNNING. On a clean
exit the run ends FINISHED and the cell's earlier runs of the same configuration are deleted, so the
store keeps one run per cell and configuration (`dvc repro -f` included). The caller holds the cell's
lock (alstudy/scale/process_lock.py): no other process is using those runs.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from alstudy.paths import DEFAULT_RECIPE
from alstudy.tracking import metric_names, runs, study_runs

if TYPE_CHECKING:  # types only: tracking does not need the learning code to run
    from alstudy.learning.loop import RoundResult
    from alstudy.params import Params

log = logging.getLogger("al")


@dataclass(frozen=True)
class CellId:
    """Which cell: a dataset, strategy and seed under a recipe (`default`: params.yaml's model section)."""

    dataset: str
    strategy: str
    seed: int
    recipe: str = DEFAULT_RECIPE

    @property
    def name(self) -> str:
        """The MLflow run's name: <dataset>-<strategy>-s<seed>, the recipe after the dataset if not the default."""
        if self.recipe == DEFAULT_RECIPE:
            return runs.run_name(self.dataset, self.strategy, self.seed)
        return runs.run_name(f"{self.dataset}-{self.recipe}", self.strategy, self.seed)


@dataclass(frozen=True)
class Resumed:
    """What a cell resumes from: its checkpoint's run, rounds and last model."""

    run_id: str | None
    history: list[RoundResult]
    model: object


@dataclass
class CellRun:
    run_id: str
    name: str
    classes: list[str]  # the class keys of metric names (f1/<class>, queried/<class>)
    rounds: int
    log_models: str  # al.log_models: every | last | never

    def wants_model(self, round_: int) -> bool:
        return self.log_models == "every" or (self.log_models == "last" and round_ == self.rounds)

    def log_round(self, result: RoundResult, model) -> None:
        runs.log_round(result, self.classes, model if self.wants_model(result.round) else None)
        log.info(
            "%s round %d/%d: %d labelled, accuracy %.4f, F1 %.4f, %.1f s",
            self.name,
            result.round,
            self.rounds,
            result.n_labeled,
            result.accuracy,
            result.f1_macro,
            result.seconds,
        )

    def log_missing(self, resumed: Resumed) -> None:
        """Rounds checkpointed but not in MLflow (killed in between), logged now, once."""
        done = runs.logged_steps(self.run_id)
        last = resumed.history[-1].round
        for result in resumed.history:
            if result.round not in done:
                model = resumed.model if result.round == last and self.wants_model(last) else None
                runs.log_round(result, self.classes, model)

    def finish(self, results_dir: Path, metrics: dict) -> None:
        runs.log_final(results_dir, metrics)


@contextmanager
def tracked(
    params: Params,
    cell: CellId,
    config: dict,
    class_names: list[str],
    n_classes: int,
    resumed: Resumed | None,
) -> Iterator[CellRun]:
    """The cell's run; `params` are its recipe's (Params.for_recipe)."""
    al, name, dataset, strategy, seed = params.al, cell.name, cell.dataset, cell.strategy, cell.seed
    experiment_id = runs.setup(params.base)
    study_runs.describe_experiment(experiment_id, params)
    # Made by the study's first cell; a recipe's cells have one of their own.
    parent_id = study_runs.parent_run_id(experiment_id, dataset, params, cell.recipe)
    key = runs.config_key(config)
    if resumed is None:
        for run_id in runs.remove_unfinished_runs(experiment_id, name, key):
            log.info("%s: starting over; removed the unfinished MLflow run %s of an earlier attempt", name, run_id)
    else:
        log.info("%s: resuming after round %d of %d", name, resumed.history[-1].round, al.rounds)
    run = runs.start_or_resume_run(
        experiment_id,
        name,
        resumed.run_id if resumed else None,
        tags={
            "dataset": dataset,
            "strategy": strategy,
            "seed": str(seed),
            "config": key,
            **config.get("compute", {}),  # backend and device
            **study_runs.cell_tags(params, dataset, parent_id, cell.recipe),
            **metric_names.class_tags(class_names, n_classes),
        },
        params={
            "dataset": dataset,
            "strategy": strategy,
            "seed": seed,
            **({"recipe": cell.recipe} if cell.recipe != DEFAULT_RECIPE else {}),
            **runs.flat_params("al", al, {"strategy_options", "recipes"}),
            **{f"model.{key}": value for key, value in params.model.settings().items()},
            **runs.flat_params(f"al.strategy_options.{strategy}", al.options(strategy)),
        },
    )
    classes = metric_names.class_keys(class_names, n_classes)
    with runs.ending(run):
        open_run = CellRun(run.info.run_id, name, classes, al.rounds, al.log_models)
        if resumed is not None:
            open_run.log_missing(resumed)
        yield open_run
    for earlier in runs.remove_superseded_runs(experiment_id, name, key, keep=open_run.run_id):
        log.info("%s: replaced the MLflow run %s of an earlier run of this cell (`dvc repro -f`)", name, earlier)
