"""A study in MLflow: one parent run per dataset and configuration, the dataset's cells nested under it.

The parent, `<dataset>-summary` (tags kind=summary, dataset, config), holds the dataset's
summary and verdict metrics (under `summary/`, a chart section of their own), its figures
and the report; each cell `<dataset>-<strategy>-s<seed>` (tag kind=cell) is its child
through the `mlflow.parentRunId` tag, so the runs table folds a study into one row.

"Configuration" is what shapes a cell's numbers apart from which cell it is:
Params.run_settings() without any strategy's options (the budget, the candidate
subsample, the model and its training). Every strategy and seed of a dataset run under
those settings share one parent; adding a seed or a strategy, changing one strategy's
options, or a plot or study param keeps it (DVC reruns only the cells such a change
touches, and the others must stay in the same study); another budget or model is another
study, with a parent of its own. The key is a hash of the dataset and that configuration
(tag `config`; the cells carry it as tag `study`), the same in every process that reads
the same params.

Cells start before the plot stage exists and side by side (alstudy/console/grid.py, a Ray
cluster, a shared tracking server), so the parent is found or made by whichever process
needs it first. On a sqlite store the store's file lock makes that one process at a time.
No lock spans a tracking server and MLflow has no unique key on runs, so two workers there
can both find none and both make one: each then waits SETTLE_S for the others' runs to land,
looks again, all take the oldest, and a maker whose run is not the oldest deletes its own before
any cell uses it. What a skewed clock could still split, the plot stage mends: opening the
parent it nests every cell of the study under it and deletes any other parent of the same key.
"""

from __future__ import annotations

import time
from pathlib import Path

import mlflow
from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NOTE

from alstudy.paths import DEFAULT_RECIPE, study_unit
from alstudy.tracking import metric_names, store
from alstudy.tracking.outage import patient, patiently
from alstudy.tracking.runs import config_key

KIND = "summary"
CELL = "cell"
DESCRIPTION = "mlflow.note.content"  # the experiment's description, shown above its runs
BATCH = 1000
SETTLE_S = 2.0  # how long a run a concurrent maker created may take to show in a server's searches


def study_config(params, dataset: str) -> dict:
    return {"dataset": dataset, **params.run_settings([])}


def study_key(params, dataset: str) -> str:
    return config_key(study_config(params, dataset))


def parent_name(dataset: str, recipe: str = DEFAULT_RECIPE) -> str:
    return f"{dataset}-summary" if recipe == DEFAULT_RECIPE else f"{dataset}-{recipe}-summary"


def cell_tags(params, dataset: str, parent_id: str, recipe: str = DEFAULT_RECIPE) -> dict[str, str]:
    """The tags that put a cell into its study: set on a new run and again on a resumed one. `recipe`
    keeps each recipe's cells apart in the study's learning-curves view (alstudy/tracking/curves_view.py)."""
    return {
        "kind": CELL,
        "dataset": dataset,
        "recipe": recipe,
        "study": study_key(params, dataset),
        MLFLOW_PARENT_RUN_ID: parent_id,
    }


def _parents(experiment_id: str, dataset: str, key: str) -> list[Run]:
    runs = mlflow.search_runs(
        [experiment_id],
        output_format="list",
        filter_string=(f"tags.kind = '{KIND}' AND tags.dataset = '{dataset}' AND tags.config = '{key}'"),
    )
    return sorted(runs, key=lambda run: (run.info.start_time, run.info.run_id))


def _settings_params(config: dict) -> list[Param]:
    flat = {"dataset": config["dataset"]}
    for section in ("al", "model"):
        flat.update({f"{section}.{k}": v for k, v in config[section].items() if k != "strategy_options"})
    return [Param(key, str(value)) for key, value in flat.items()]


def parent_run_id(experiment_id: str, dataset: str, params, recipe: str = DEFAULT_RECIPE) -> str:
    """The study's parent run: found, or made now (see the module docstring for the race). A recipe's
    cells (their params the recipe's, so another configuration) have a parent of their own."""
    config = study_config(params, dataset)
    key = config_key(config)
    with store.exclusive(mlflow.get_tracking_uri()):
        found = _parents(experiment_id, dataset, key)
        if found:
            return found[0].info.run_id
        client = MlflowClient()
        default = recipe == DEFAULT_RECIPE
        cells = f"{dataset}-<strategy>-s<seed>" if default else f"{dataset}-{recipe}-<strategy>-s<seed>"
        note = (
            f"The {dataset} study{'' if default else f' under the {recipe} recipe'}: its cells ({cells}) are "
            "nested below. This run holds the summary and verdict metrics (summary/...), the figures (plots/) "
            "and the report (study.md)."
        )
        tags = {"kind": KIND, "dataset": dataset, "config": key, MLFLOW_RUN_NOTE: note}
        mine = client.create_run(
            experiment_id,
            run_name=parent_name(dataset, recipe),
            tags=tags if default else {**tags, "recipe": recipe},
        )
        client.log_batch(mine.info.run_id, params=_settings_params(config))
        if store.sqlite_path(mlflow.get_tracking_uri()) is None:
            # A server: give a maker that started with us time to land its run, so that we see it too (a
            # maker whose clock stamped its run earlier can otherwise land after our look and keep its own).
            time.sleep(SETTLE_S)
        oldest = (_parents(experiment_id, dataset, key) or [mine])[0]
        if oldest.info.run_id != mine.info.run_id:  # another worker made one first: use that one
            client.delete_run(mine.info.run_id)
        return oldest.info.run_id


def gather_cells(experiment_id: str, dataset: str, parent_id: str, key: str, recipe: str = DEFAULT_RECIPE) -> None:
    """Nest every cell of the study under `parent_id`, tag it with its recipe (cells logged before recipes
    existed have none) and delete any other parent of the same key."""
    client = MlflowClient()
    cells = mlflow.search_runs(
        [experiment_id],
        output_format="list",
        filter_string=(f"tags.kind = '{CELL}' AND tags.dataset = '{dataset}' AND tags.study = '{key}'"),
    )
    for cell in cells:
        if cell.data.tags.get(MLFLOW_PARENT_RUN_ID) != parent_id:
            client.set_tag(cell.info.run_id, MLFLOW_PARENT_RUN_ID, parent_id)
        if "recipe" not in cell.data.tags:
            client.set_tag(cell.info.run_id, "recipe", recipe)
    for other in _parents(experiment_id, dataset, key):
        if other.info.run_id != parent_id:
            client.delete_run(other.info.run_id)


def publish(
    experiment_id: str,
    dataset: str,
    params,
    metrics: dict[str, float] | None = None,
    artifacts: list[tuple[Path, str | None]] = (),
    recipe: str = DEFAULT_RECIPE,
) -> str:
    """Log into the study's parent run (a recipe's: `params` are then the recipe's, Params.for_recipe):
    summary and verdict metrics under `summary/` (a chart section apart from the cells' per-round ones),
    and files as (path, artifact folder). For the plot, verdicts and report stages, which run after the
    cells; it gathers the cells under the parent first.

    Waits out a store that is away, as the cells do (alstudy/tracking/outage.py), and may be sent again
    whole: the metrics carry one timestamp, so MLflow keeps one copy; artifacts and tags overwrite."""
    timestamp = int(time.time() * 1000)
    metrics = {metric_names.metric_name(metric_names.SUMMARY, key): value for key, value in (metrics or {}).items()}

    def once() -> str:
        run_id = parent_run_id(experiment_id, dataset, params, recipe)
        gather_cells(experiment_id, dataset, run_id, study_key(params, dataset), recipe)
        client = MlflowClient()
        # Tags, not params: a parent outlives a change of the grid, and a param cannot change its value.
        tags = {"strategies": ", ".join(params.al.strategies), "seeds": ", ".join(map(str, params.al.seeds))}
        entries = [Metric(key, value, timestamp, 0) for key, value in metrics.items()]
        for start in range(0, max(len(entries), 1), BATCH):  # MLflow takes at most 1,000 metrics a call
            client.log_batch(
                run_id, metrics=entries[start : start + BATCH], tags=[RunTag(k, v) for k, v in tags.items()]
            )
        for path, folder in artifacts:
            client.log_artifact(run_id, str(path), artifact_path=folder)
        client.set_terminated(run_id, "FINISHED")
        return run_id

    return patiently(f"logging the {study_unit(dataset, recipe)} study's summary", once)


def description(params) -> str:
    al = params.al
    return (
        f"Deep active learning on {', '.join(params.data.datasets)}: strategies {', '.join(al.strategies)}; "
        f"seeds {', '.join(map(str, al.seeds))}; {al.initial_size} random labels, then {al.rounds} rounds of "
        f"{al.query_size}.\n\nOne run per dataset x strategy x seed, nested under its dataset's "
        "`<dataset>-summary` run (summary metrics, figures, report): unfold it (the + beside its name) to "
        "chart its cells' curves, one per run, x = round (`n_labeled` can be the x axis)."
    )


@patient("describing the experiment")
def describe_experiment(experiment_id: str, params) -> None:
    """The experiment's description names the grid last run into it (written only when it changes)."""
    text = description(params)
    client = MlflowClient()
    if client.get_experiment(experiment_id).tags.get(DESCRIPTION) == text:
        return
    try:
        client.set_experiment_tag(experiment_id, DESCRIPTION, text)
    except MlflowException:
        # Cells that start together write it at once; on PostgreSQL all but one then fail on the tag's key.
        if client.get_experiment(experiment_id).tags.get(DESCRIPTION) != text:
            raise
