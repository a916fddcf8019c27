"""The recipe as a grid axis: al.recipes adds a cell per dataset x recipe x strategy x seed (stage al_recipe),
under results/<dataset>/recipes/<recipe>/, its MLflow run named and tagged with the recipe and nested under a
parent of its own; the default recipe's cells keep their paths, stage and run names."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient
from scipy import stats

from alstudy.errors import PipelineError
from alstudy.params import parse_params
from alstudy.paths import cell_lock, checkpoint_dir, run_dir
from alstudy.scale.cell import cell_stage
from alstudy.tracking.cell_run import CellId
from helpers.repo import REPO_ROOT
from helpers.runs import TINY, make_project, read_csv, runs_of


def test_the_default_recipe_keeps_its_paths_and_names_and_a_recipe_nests_under_its_dataset():
    assert str(run_dir("fashion_mnist", "margin", 0)) == "results/fashion_mnist/margin/s0"
    assert str(run_dir("fashion_mnist", "margin", 0, "default")) == "results/fashion_mnist/margin/s0"
    assert (
        str(run_dir("fashion_mnist", "margin", 0, "augmented")) == "results/fashion_mnist/recipes/augmented/margin/s0"
    )
    assert str(checkpoint_dir("cifar10", "bald", 3, "resnet")) == "checkpoints/cifar10/recipes/resnet/bald/s3"
    assert str(cell_lock("cifar10", "bald", 3, "resnet")) == "checkpoints/cifar10/recipes/resnet/bald/s3.lock"
    assert cell_stage("fashion_mnist", "margin", 0) == "al@fashion_mnist-margin-0"
    assert cell_stage("fashion_mnist", "margin", 0, "augmented") == "al_recipe@fashion_mnist-augmented-margin-0"
    assert CellId("fashion_mnist", "margin", 0).name == "fashion_mnist-margin-s0"
    assert CellId("fashion_mnist", "margin", 0, "augmented").name == "fashion_mnist-augmented-margin-s0"


@pytest.mark.parametrize(
    "recipes, message",
    [
        (["tuned"], "al.recipes: tuned not under recipes (default, longer, augmented,"),
        (["default"], "al.recipes: `default` always runs; list only the other recipes"),
        (["augmented", "augmented"], "al.recipes: lists a recipe twice"),
    ],
)
def test_a_wrong_al_recipes_list_stops_in_one_line(recipes, message):
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    raw["al"]["recipes"] = recipes
    with pytest.raises(PipelineError, match="^params.yaml: " + re.escape(message)):
        parse_params(raw)


def test_for_recipe_swaps_the_model_and_nothing_else():
    params = parse_params(yaml.safe_load((REPO_ROOT / "params.yaml").read_text()))
    assert params.for_recipe("default") is params
    augmented = params.for_recipe("augmented")
    assert augmented.model == params.recipe("augmented") and augmented.al == params.al
    # A recipe's cells are another study configuration; the grid's recipes list is no part of any.
    assert augmented.run_settings() != params.run_settings()
    listed = params.model_copy(update={"al": params.al.model_copy(update={"recipes": ["augmented"]})})
    assert listed.run_settings() == params.run_settings()


def test_the_grid_runs_each_recipe_of_al_recipes_as_cells_of_their_own(tmp_path, monkeypatch):
    from alstudy.scale.grid import grid_cells

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([str(Path(sys.executable).parent / "dvc"), "init", "-q"], cwd=tmp_path, check=True)
    shutil.copy(REPO_ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    raw["data"]["datasets"] = ["fashion_mnist"]
    raw["data"]["imbalanced"] = {}
    raw["al"].update(strategies=["random"], seeds=[0], recipes=["augmented", "resnet"])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.chdir(tmp_path)  # as `alstudy grid` runs: from the project root
    cells, _ = grid_cells(tmp_path)
    by_stage = {cell.stage: cell for cell in cells}
    assert set(by_stage) == {
        "al@fashion_mnist-random-0",
        "al_recipe@fashion_mnist-augmented-random-0",
        "al_recipe@fashion_mnist-resnet-random-0",
    }
    resnet = by_stage["al_recipe@fashion_mnist-resnet-random-0"]
    assert resnet.cmd.endswith("--strategy random --seed 0 --recipe resnet")
    assert "results/fashion_mnist/recipes/resnet/random/s0/curve.csv" in resnet.outs
    assert by_stage["al@fashion_mnist-random-0"].outs == tuple(
        f"results/fashion_mnist/random/s0/{f}" for f in ("rounds.json", "queries.csv", "curve.csv", "metrics.json")
    )


@pytest.mark.slow
def test_a_recipe_reads_as_a_study_of_its_own_and_the_report_says_whether_each_verdict_survives_it(
    tmp_path, monkeypatch
):
    from helpers.runs import empty_store
    from stages import al, plot, report, verdicts

    small = {"al": {**TINY["al"], "strategies": ["random", "margin"], "seeds": [0, 1], "rounds": 2}}
    project = make_project(tmp_path / "p", {**small, "model": {**TINY["model"], "epochs": 2}})
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["recipes"] = {"default": {}, "flipped": {"augmentation": {"flip": {}, "cutout": {"size": 6}}, "epochs": 3}}
    raw["al"]["recipes"] = ["flipped"]
    raw["al"]["strategy_options"] = {"random": {}, "margin": {}}
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    empty_store(project / "mlflow.db")
    monkeypatch.chdir(project)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlflow.db'}")
    for recipe in ("default", "flipped"):
        for strategy in ("random", "margin"):
            for seed in ("0", "1"):
                al.main(["--dataset", "fashion_mnist", "--strategy", strategy, "--seed", seed, "--recipe", recipe])

    default, recipe = (
        project / "results/fashion_mnist/margin/s0",
        project / "results/fashion_mnist/recipes/flipped/margin/s0",
    )
    assert [r["n_labeled"] for r in read_csv(default / "curve.csv")] == [
        r["n_labeled"] for r in read_csv(recipe / "curve.csv")
    ]
    assert read_csv(default / "curve.csv") != read_csv(recipe / "curve.csv")  # another recipe, other numbers
    assert json.loads((recipe / "metrics.json").read_text())["n_labeled"] == 40

    cells = {run.info.run_name: run for run in runs_of(project, "cell")}
    assert len(cells) == 8 and "fashion_mnist-margin-s0" in cells
    flipped = cells["fashion_mnist-flipped-margin-s0"]
    assert (
        flipped.data.tags["recipe"] == "flipped" and cells["fashion_mnist-margin-s0"].data.tags["recipe"] == "default"
    )
    assert flipped.data.params["model.epochs"] == "3" and "flip" in flipped.data.params["model.augmentation"]
    assert "recipe" not in cells["fashion_mnist-margin-s0"].data.params and "al.recipes" not in flipped.data.params

    # The study stages, per unit (the dataset under a recipe), then the verdicts over the whole study.
    for argv in (["--dataset", "fashion_mnist"], ["--dataset", "fashion_mnist", "--recipe", "flipped"]):
        plot.main(argv)
    verdicts.main([])
    report.main([])
    assert (project / "plots/fashion_mnist~flipped/accuracy.png").read_bytes().startswith(b"\x89PNG")
    statistics = {
        unit: json.loads((project / f"metrics/statistics/{unit}.json").read_text())["aubc"]["accuracy"]
        for unit in ("fashion_mnist", "fashion_mnist~flipped")
    }
    assert statistics["fashion_mnist"] != statistics["fashion_mnist~flipped"]
    found = json.loads((project / "metrics/verdicts/fashion_mnist~flipped.json").read_text())
    # One Holm family: per metric, margin - random in each unit, and what the recipe buys.
    metrics = parse_params(raw).study.metrics
    assert found["family"]["comparisons"] == 3 * len(metrics)
    buys = found["random"]["vs_random_under_default"]["accuracy"]
    recomputed = np.subtract(statistics["fashion_mnist~flipped"]["random"], statistics["fashion_mnist"]["random"])
    assert buys["differences"] == pytest.approx(recomputed.tolist())
    assert buys["p"] == pytest.approx(stats.ttest_rel(*[statistics[u]["random"] for u in statistics][::-1]).pvalue)
    assert set(found["margin"]) == {"vs_random"}
    assert set(json.loads((project / "metrics/verdicts/fashion_mnist.json").read_text())["margin"]) == {"vs_random"}

    text = (project / "report/study.md").read_text()
    assert "## Recipes: does each verdict survive a better training recipe?" in text
    assert "| the recipe itself (`random`) | reference | " in text and "| `margin` on top | " in text
    assert re.search(r"- `margin` against `random`: \w+ under the default recipe[;,] .*`flipped`", text)
    assert "](figures/fashion_mnist-recipes-accuracy.png)" in text
    assert (project / "report/figures/fashion_mnist-recipes-accuracy.png").read_bytes().startswith(b"\x89PNG")
    assert "| fashion_mnist~flipped | `margin` − `random` |" in text  # its verdict in the headline table
    assert "`<dataset>-<recipe>-summary`" in text and "`summary/random.aubc_<metric>_vs_random_under_default`" in text

    parents = {run.info.run_name: run for run in runs_of(project, "summary")}
    assert set(parents) == {"fashion_mnist-summary", "fashion_mnist-flipped-summary"}
    mine = parents["fashion_mnist-flipped-summary"]
    assert mine.data.tags["recipe"] == "flipped"
    assert flipped.data.tags["mlflow.parentRunId"] == mine.info.run_id
    assert (
        cells["fashion_mnist-margin-s0"].data.tags["mlflow.parentRunId"] == parents["fashion_mnist-summary"].info.run_id
    )
    assert mine.data.metrics["summary/random.aubc_accuracy_vs_random_under_default"] == pytest.approx(
        float(np.mean(recomputed))
    )
    assert "summary/margin.aubc_accuracy" in mine.data.metrics
    assert "summary/random.aubc_accuracy_vs_random_under_default" not in parents["fashion_mnist-summary"].data.metrics
    artifacts = {a.path for a in MlflowClient().list_artifacts(mine.info.run_id, "plots")}
    assert {"plots/accuracy.png", "plots/fashion_mnist-recipes-accuracy.png"} <= artifacts
