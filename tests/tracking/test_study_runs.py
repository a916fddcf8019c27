"""A study's parent run in MLflow: one per dataset and configuration, found or made by the first cell."""

from __future__ import annotations

import mlflow
import pytest
from mlflow.tracking import MlflowClient
from services import REPO

from alstudy.params import load_params
from alstudy.tracking import runs as tracking
from alstudy.tracking import study_runs


@pytest.fixture
def params():
    return load_params(REPO / "params.yaml")


@pytest.fixture
def experiment(tmp_path, monkeypatch) -> str:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tracking.setup(load_params(REPO / "params.yaml").base)


def parents(experiment: str) -> list:
    return mlflow.search_runs([experiment], output_format="list", filter_string="tags.kind = 'summary'")


def settings(params, **changes):
    """`params` with some al or model settings changed."""
    sections = {name: getattr(params, name).model_copy(update=values) for name, values in changes.items()}
    return params.model_copy(update=sections)


def test_one_parent_per_dataset_and_configuration(params, experiment):
    first = study_runs.parent_run_id(experiment, "fashion_mnist", params)
    assert study_runs.parent_run_id(experiment, "fashion_mnist", params) == first  # found, not made again
    # Which cells run, a strategy's options, plot and study params: the same study.
    same = params.model_copy(
        update={
            "al": params.al.model_copy(
                update={
                    "seeds": [0, 1, 2, 3],
                    "strategies": ["random", "margin"],
                    "strategy_options": {**params.al.strategy_options, "margin": {}},
                }
            ),
            "plot": params.plot.model_copy(update={"target_fraction": 0.5}),
        }
    )
    assert study_runs.parent_run_id(experiment, "fashion_mnist", same) == first
    # Another dataset, budget or model: another study.
    others = {
        study_runs.parent_run_id(experiment, "cifar10", params),
        study_runs.parent_run_id(experiment, "fashion_mnist", settings(params, al={"query_size": 7})),
        study_runs.parent_run_id(experiment, "fashion_mnist", settings(params, model={"epochs": 2})),
    }
    assert len(others) == 3 and first not in others
    runs = {r.info.run_id: r for r in parents(experiment)}
    assert set(runs) == others | {first}
    assert runs[first].info.run_name == "fashion_mnist-summary"
    assert runs[first].data.params["al.query_size"] == str(params.al.query_size)


def test_a_worker_that_made_a_second_parent_in_a_race_deletes_it_and_uses_the_first(params, experiment, monkeypatch):
    """Two workers on a tracking server both found no parent and both made one (no lock spans a server)."""
    earlier = study_runs.parent_run_id(experiment, "fashion_mnist", params)  # the other worker's
    real = study_runs._parents
    looks = []

    def missed_it_at_first(*args):
        looks.append(1)
        return [] if len(looks) == 1 else real(*args)

    monkeypatch.setattr(study_runs, "_parents", missed_it_at_first)
    assert study_runs.parent_run_id(experiment, "fashion_mnist", params) == earlier
    monkeypatch.undo()
    assert [r.info.run_id for r in parents(experiment)] == [earlier]


def test_the_plot_stage_gathers_cells_a_split_race_left_under_another_parent(params, experiment):
    key = study_runs.study_key(params, "fashion_mnist")
    client = MlflowClient()
    first = study_runs.parent_run_id(experiment, "fashion_mnist", params)
    stray = client.create_run(
        experiment,
        run_name="fashion_mnist-summary",
        tags={"kind": "summary", "dataset": "fashion_mnist", "config": key},
    ).info.run_id
    cells = [
        client.create_run(
            experiment,
            run_name=f"fashion_mnist-random-s{seed}",
            tags=study_runs.cell_tags(params, "fashion_mnist", parent),
        ).info.run_id
        for seed, parent in enumerate([first, stray, stray])
    ]
    published = study_runs.publish(experiment, "fashion_mnist", params, metrics={"random.aubc_accuracy": 0.5})
    assert published == first
    assert {client.get_run(c).data.tags["mlflow.parentRunId"] for c in cells} == {first}
    assert client.get_run(stray).info.lifecycle_stage == "deleted"
    stored = client.get_run(first)
    assert stored.data.metrics == {"summary/random.aubc_accuracy": 0.5} and stored.info.status == "FINISHED"
    assert stored.data.tags["seeds"] == ", ".join(map(str, params.al.seeds))


def test_publishing_tags_cells_logged_before_recipes_with_the_default_recipe(params, experiment):
    """The learning-curves view selects a recipe's cells by their `recipe` tag, which older cells lack."""
    client = MlflowClient()
    parent = study_runs.parent_run_id(experiment, "fashion_mnist", params)
    tags = {k: v for k, v in study_runs.cell_tags(params, "fashion_mnist", parent).items() if k != "recipe"}
    old = client.create_run(experiment, run_name="fashion_mnist-random-s0", tags=tags).info.run_id
    study_runs.publish(experiment, "fashion_mnist", params)
    assert client.get_run(old).data.tags["recipe"] == "default"


def test_the_experiment_describes_the_grid(params, experiment):
    study_runs.describe_experiment(experiment, params)
    text = MlflowClient().get_experiment(experiment).tags["mlflow.note.content"]
    for name in [*params.data.datasets, *params.al.strategies]:
        assert name in text
    assert "seeds " + ", ".join(map(str, params.al.seeds)) in text


def test_cells_that_describe_the_experiment_at_once_do_not_fail(params, experiment, monkeypatch):
    """On PostgreSQL, two inserts of the experiment's description at once: the second fails on the key."""
    client = MlflowClient()
    real = MlflowClient.set_experiment_tag

    def another_cell_got_there_first(self, experiment_id, key, value):
        real(self, experiment_id, key, value)
        raise mlflow.exceptions.MlflowException("duplicate key value violates unique constraint")

    monkeypatch.setattr(MlflowClient, "set_experiment_tag", another_cell_got_there_first)
    study_runs.describe_experiment(experiment, params)  # the text is there: no error
    assert client.get_experiment(experiment).tags["mlflow.note.content"] == study_runs.description(params)
