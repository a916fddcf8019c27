"""`dvc repro` of the whole pipeline in a temporary git copy of the repo, on tiny upstream-format data.

The data is served from 127.0.0.1 in the exact upstream formats; the test checks
every stage's outputs, the MLflow store, the metrics files and the plots, and
that a second `dvc repro` has nothing to do.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from alstudy.data.datasets import FASHION_MNIST
from helpers.formats import make_fashion_mnist_dir
from helpers.images import make_image_folder
from helpers.repo import copy_repo, dvc, machine_precision

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# parts: an image folder. CIFAR-10's stages run the same code on its own reader (tests/data/test_data_stages.py).
# Fashion-MNIST itself is downloaded and prepared as the variant's source; its cells are any dataset's code.
DATASETS = ["fashion_mnist_imbalanced", "parts"]
STRATEGIES = ["random", "coreset"]  # the baseline and one that needs embeddings (every strategy: tests/learning)
SEEDS = [0, 1]
ROUNDS = 2
LABELLING = "sorting"  # a labelling project


def tiny_params(dest: Path, fashion_url: str, checksums: dict[str, str], dead_url: str) -> None:
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["data"]["datasets"] = DATASETS
    params["data"]["folders"] = {
        "parts": {"path": "data/raw/parts", "image_size": [16, 16], "color_mode": "rgb", "test_fraction": 0.25}
    }
    params["download"]["sources"] = {"fashion_mnist": [str(dead_url), str(fashion_url)]}
    params["download"]["checksums"] = checksums
    params["model"].update(precision=machine_precision())
    params["model"].update(filters=[4, 4, 4], dense_units=8, epochs=1, batch_size=16, predict_batch_size=64)
    params["al"].update(
        strategies=STRATEGIES,
        seeds=SEEDS,
        initial_size=10,
        query_size=5,
        rounds=ROUNDS,
        pool_subsample=30,
        log_models="never",  # models as MLflow logs them: tests/learning/test_al_run.py
    )
    # A labelling project declared before its first batch must not stop the study's `dvc repro`.
    params["label"]["projects"] = {
        LABELLING: {
            "unlabelled": "data/raw/to_label",
            "classes": ["bolt", "gear"],
            "batch_size": 4,
            "image_size": [16, 16],
        }
    }
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def read_csv(path: Path) -> list[dict]:
    with open(path) as stream:
        return list(csv.DictReader(stream))


@pytest.fixture
def repro(tmp_path, http_server, dead_url):
    fashion_dir, project = tmp_path / "fashion", tmp_path / "project"
    checksums = make_fashion_mnist_dir(fashion_dir, n_train=200, n_test=50)
    project.mkdir()
    copy_repo(project)
    make_image_folder(project / "data/raw/parts", per_class=12)
    make_image_folder(project / "data/raw/to_label", per_class=5, seed=3)
    fashion_url = http_server(fashion_dir)
    tiny_params(project, fashion_url, checksums, dead_url)
    # As the README says: the images versioned by DVC, so experiment copies (--temp, --queue) get them too.
    for folder in ("data/raw/parts", "data/raw/to_label"):
        added = dvc(["add", folder], project)
        assert added.returncode == 0, added.stderr[-2000:]
    first = dvc(["repro"], project)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    return project, first, fashion_url


def test_dvc_repro_runs_the_whole_study(repro):
    project, first, fashion_url = repro

    # download + preprocess + imbalance
    for name in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert (project / "data/raw/fashion_mnist" / name).is_file()
    shapes = {"fashion_mnist": (200, 28, 28, 1), "parts": (27, 16, 16, 3)}
    for dataset, shape in shapes.items():
        x = np.load(project / "data/prepared" / dataset / "x_train.npy", mmap_mode="r")
        assert x.shape == shape and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    imbalance = json.loads((project / "metrics/imbalance/fashion_mnist_imbalanced.json").read_text())
    counts = [imbalance["train_class_counts"][name] for name in FASHION_MNIST.class_names]
    assert counts[0] == 20 and counts[-1] == 2 and counts == sorted(counts, reverse=True)

    # one AL run per dataset x strategy x seed
    for dataset in DATASETS:
        for strategy in STRATEGIES:
            for seed in SEEDS:
                out = project / "results" / dataset / strategy / f"s{seed}"
                curve = read_csv(out / "curve.csv")
                assert [int(r["n_labeled"]) for r in curve] == [10, 15, 20]
                assert json.loads((out / "metrics.json").read_text())["n_labeled"] == 20
                assert len(read_csv(out / "queries.csv")) == 20

    # plots and summary metrics per dataset
    for dataset in DATASETS:
        for figure in (
            "accuracy.png",
            "balanced_accuracy.png",
            "f1_macro.png",
            "queried_classes.png",
            "per_class_f1.png",
            "rare_classes.png",
            "penalty_accuracy.png",
            "penalty_f1_macro.png",
            "difference_accuracy.png",
            "difference_f1_macro.png",
        ):
            data = (project / "plots" / dataset / figure).read_bytes()
            assert data.startswith(b"\x89PNG") and len(data) > 10_000
        wide = read_csv(project / "plots" / dataset / "accuracy.csv")
        assert list(wide[0]) == ["n_labeled", *STRATEGIES] and len(wide) == ROUNDS + 1
        summary = json.loads((project / "metrics/summary" / f"{dataset}.json").read_text())
        assert set(summary) == set(STRATEGIES)
        for values in summary.values():
            assert 0 <= values["aubc_accuracy"] <= 1 and values["n_seeds"] == 2
        assert (
            "labels_random_needs" in summary["coreset"] and "rounds_better_than_random_accuracy" in summary["coreset"]
        )
        statistics = json.loads((project / "metrics/statistics" / f"{dataset}.json").read_text())
        assert set(statistics["accuracy"]["versus_random"]) == set(STRATEGIES) - {"random"}
        assert len(statistics["f1_macro"]["penalty_matrix"]) == len(STRATEGIES)
        assert len(statistics["aubc"]["accuracy"]["coreset"]) == len(SEEDS)
        # the headline: every dataset x {accuracy, macro-F1} x the one pair of strategies, Holm-corrected together
        verdicts = json.loads((project / "metrics/verdicts" / f"{dataset}.json").read_text())
        assert verdicts["family"]["comparisons"] == len(DATASETS) * 2
        assert set(verdicts["coreset"]) == {"vs_random"}
        assert 0 <= verdicts["coreset"]["vs_random"]["accuracy"]["p_holm"] <= 1

    # the study report: every dataset and strategy, its figures, logged to MLflow
    report = (project / "report" / "study.md").read_text()
    for name in [*DATASETS, *STRATEGIES]:
        assert name in report
    assert "## Across datasets" in report and "../plots/parts/penalty_accuracy.png" in report
    assert report.index("## Verdicts") < report.index("## Across datasets")  # the headline comes first
    # every cell recorded what it computed with, and the report says all ran alike
    assert f"- compute: every cell on tensorflow, cpu, {machine_precision()}, 1 thread" in report
    assert "Mixed setups" not in report
    # No DVC output is left empty (DVC warns "'report/figures' is empty" for one): a study without recipes
    # has no recipe figures, and the folder says so.
    assert "is empty" not in first.stdout + first.stderr
    assert [p.name for p in (project / "report/figures").iterdir()] == ["README.txt"]

    # the labelling project's first batch (a random draw: no labels yet)
    batch = read_csv(project / "labelling" / LABELLING / "batch-001/manifest.csv")
    assert len(batch) == 4 and (project / "labels" / f"{LABELLING}.csv").is_file()

    # MLflow: the default store at the project root
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["deep-active-learning"], output_format="list")
    by_name = {r.info.run_name: r for r in runs}
    expected = {f"{d}-{s}-s{seed}" for d in DATASETS for s in STRATEGIES for seed in SEEDS}
    assert expected | {f"{d}-summary" for d in DATASETS} | {f"label-{LABELLING}"} == set(by_name)
    client = MlflowClient()
    assert json.loads(by_name["parts-random-s0"].data.tags["class_keys"]) == {
        "bolt": "bolt",
        "gear": "gear",
        "nut": "nut",
    }
    assert [m.step for m in client.get_metric_history(by_name["parts-random-s0"].info.run_id, "f1/gear")] == [0, 1, 2]
    for name in expected:
        run = by_name[name]
        assert run.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "f1_macro")] == [0, 1, 2]
        # nested under its dataset's study run
        assert run.data.tags["mlflow.parentRunId"] == by_name[f"{run.data.tags['dataset']}-summary"].info.run_id
    assert all(by_name[f"{d}-summary"].info.status == "FINISHED" for d in DATASETS)
    summary_run = by_name["fashion_mnist_imbalanced-summary"]
    assert "summary/coreset.aubc_accuracy" in summary_run.data.metrics
    assert "summary/coreset.aubc_accuracy_vs_random_p_holm" in summary_run.data.metrics  # from the verdicts stage
    artifacts = {a.path for a in client.list_artifacts(summary_run.info.run_id, "plots")}
    assert {"plots/queried_classes.png", "plots/penalty_accuracy.png", "plots/per_class_f1.png"} <= artifacts
    assert "study.md" in {a.path for a in client.list_artifacts(summary_run.info.run_id)}

    # DVC sees the metrics and the plots
    shown = dvc(["metrics", "show", "--json"], project)
    assert shown.returncode == 0 and "aubc_accuracy" in shown.stdout and "train_class_counts" in shown.stdout
    assert "metrics/verdicts/fashion_mnist_imbalanced.json" in shown.stdout and "p_holm" in shown.stdout
    plots = dvc(["plots", "show", "--json"], project)
    assert plots.returncode == 0, plots.stderr
    rendered = json.loads(plots.stdout)
    assert not rendered.get("errors") and "plots/parts/accuracy.csv" in rendered["data"]

    # A second repro has nothing to do, and fetches nothing.
    requests_before = len(fashion_url.requests)
    second = dvc(["repro"], project)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Running stage" not in second.stdout
    assert len(fashion_url.requests) == requests_before

    # A new image in the folder makes its stage stale (and, through it, that dataset's cells), nothing else.
    make_image_folder(project / "data/raw/parts/extra", per_class=1, classes=("bolt",))
    (project / "data/raw/parts/extra/bolt/img_000.png").rename(project / "data/raw/parts/bolt/new.png")
    shutil.rmtree(project / "data/raw/parts/extra")
    status = json.loads(dvc(["status", "--json"], project).stdout)
    assert set(status) == {"folder@parts", "data/raw/parts.dvc"}, sorted(status)

    # Rerunning a plot stage with the same config updates its summary run instead of adding one.
    forced = dvc(["repro", "--force", "--single-item", "plot@parts"], project)
    assert forced.returncode == 0, forced.stderr[-3000:]
    runs = mlflow.search_runs(experiment_names=["deep-active-learning"], output_format="list")
    assert [r.info.run_name for r in runs].count("parts-summary") == 1

    # An experiment run in DVC's temporary copy (.dvc/tmp/exps/...) logs into the same MLflow
    # store at the project root, and `dvc exp show` reports its metrics.
    exp = dvc(
        [
            "exp",
            "run",
            "--temp",
            "-n",
            "small-queries",
            "-S",
            "al.query_size=3",
            "-S",
            "data.datasets=[fashion_mnist]",
            "-S",
            "al.seeds=[0]",
            "-S",
            "al.strategies=[random]",
        ],
        project,
    )
    assert exp.returncode == 0, exp.stdout[-3000:] + exp.stderr[-3000:]
    runs = mlflow.search_runs(experiment_names=["deep-active-learning"], output_format="list")
    small = [r for r in runs if r.data.params.get("al.query_size") == "3" and r.data.tags["kind"] == "cell"]
    assert [r.info.run_name for r in small] == ["fashion_mnist-random-s0"]
    assert all(r.info.status == "FINISHED" for r in small)
    # another budget, another study: a parent of its own
    (study,) = [r for r in runs if r.data.params.get("al.query_size") == "3" and r.data.tags["kind"] == "summary"]
    assert {r.data.tags["mlflow.parentRunId"] for r in small} == {study.info.run_id}
    table = dvc(["exp", "show", "--json"], project)
    assert table.returncode == 0 and "small-queries" in table.stdout and "aubc_accuracy" in table.stdout
