"""Each benchmark (benchmarks/, outside the package) on tiny inputs, through its default path, every
section included: a change to the loop's or a strategy's interface must not break them silently."""

from __future__ import annotations

import json

import pytest

from alstudy.data.preprocess import write_splits
from alstudy.errors import PipelineError
from alstudy.learning.model import cpu_has_bfloat16
from alstudy.params import ModelParams, load_params
from helpers.formats import debian_fashion_mnist_installed, make_fashion_mnist_dir
from helpers.runs import learnable_split

pytestmark = pytest.mark.slow


def tiny_prepared(folder):
    write_splits(folder, learnable_split(300, 0), learnable_split(60, 1), {"dataset": "tiny"})
    return folder


def test_strategy_benchmark_times_every_registered_strategy(tmp_path):
    from alstudy.strategies import STRATEGIES
    from benchmarks import bench_strategies

    data = tiny_prepared(tmp_path / "data")
    timing = bench_strategies.time_queries(data, n_labeled=40, query_size=10, seed=0, names=list(STRATEGIES))
    assert set(timing["strategies"]) == set(STRATEGIES)
    assert timing["n_candidates"] == 260 and timing["proba_pass_s"] > 0
    assert timing["strategies"]["bald"]["mc_passes"] == 20


def test_strategy_benchmark_default_path_measures_memory_in_a_subprocess(tmp_path, capsys):
    from benchmarks import bench_strategies

    data = tiny_prepared(tmp_path / "data")
    out = tmp_path / "strategies.json"
    bench_strategies.main(
        ["--data-dir", str(data), "--labeled", "40", "--query-size", "10", "--strategy", "coreset"]
        + ["--memory-pool-size", "300", "--json", str(out)]
    )
    results = json.loads(out.read_text())
    assert set(results["timing"]["strategies"]) == set(results["memory"]) == {"coreset"}
    assert results["memory"]["coreset"]["peak_rss_mb"] > 100
    output = capsys.readouterr().out
    assert "coreset:" in output and "memory, coreset: peak RSS" in output


def test_loop_benchmark_default_path_runs_every_section(tmp_path, capsys):
    """Every section but 7 (below, in-process) through bench_al.main, as `python -m benchmarks.bench_al` runs:
    the baseline and every variant (one seed), training (a process per thread count), scoring, the
    arithmetic limit, memory (a subprocess on a synthetic pool), MLflow's log_model."""
    from benchmarks import bench_al

    data = tiny_prepared(tmp_path / "data")
    out = tmp_path / "bench.json"
    tiny = ["--rounds", "1", "--initial-size", "20", "--query-size", "10", "--epochs", "1", "--seeds", "0"]
    small = ["--train-images", "64", "--matmul-sizes", "128", "--memory-pool-size", "400"]
    bench_al.main(
        ["--data-dir", str(data), *tiny, *small, "--memory-image-size", "16", "16", "3"]
        + ["--skip-convolutions", "--json", str(out)]
    )
    results = json.loads(out.read_text())
    loops = results["loops"]
    other = {"float32": "defaults_bfloat16", "bfloat16": "defaults_float32"}[load_params().model.precision]
    bfloat16 = {other} if cpu_has_bfloat16() else set()
    assert set(loops) == {"baseline", "same_protocol", "project_defaults", "early_stopping", "warm_start", *bfloat16}
    for loop in loops.values():
        assert set(loop["per_seed"]) == {"0"}
        assert [r["n_labeled"] for r in loop["per_seed"]["0"]["rounds"]] == [20, 30]
    assert len(loops["same_protocol"]["vs_baseline"]["accuracy_diff_points_per_seed"]) == 1
    assert set(results["training"]) == {"1", "2"}
    for training in results["training"].values():
        assert training["project"]["images_per_s"] > 0 and training["matmul_gflops"] > 0
        assert (training["project_bfloat16"] is not None) == cpu_has_bfloat16()
    assert results["scoring"]["project_images_per_s"] > 0 and results["arithmetic"]["flops_per_image"] > 0
    assert list(results["arithmetic"]["matmul_gflops"]) == ["128"]
    memory = results["memory"]
    assert memory["shape"] == [16, 16, 3] and [r["n_labeled"] for r in memory["rounds"]] == [100, 200, 300]
    assert memory["peak_rss_mb"] > 100
    assert len(results["mlflow"]["project_s"]) == 2 and results["mlflow"]["cold_first_call_s"] > 0
    verdicts = {t["text"].split(":")[0]: t["verdict"] for t in results["targets"]}
    assert "per-round time, ours, project defaults" in verdicts
    assert verdicts["memory"] in ("PASS", "FAIL") and "MLflow log_model, project's way" in verdicts
    assert ("bfloat16 default round" if bfloat16 else "bfloat16 vs float32") in verdicts
    assert "SUMMARY" in capsys.readouterr().out


def test_convolution_section_times_each_conv_and_the_first_one_reshaped(capsys):
    from benchmarks.convolutions import bench_convolutions

    result = bench_convolutions(
        ModelParams(filters=[4, 8, 8], batch_size=4),
        (28, 28, 1),
        batches=(8,),
        padded_channels=(16,),
        im2col_inner=(32,),
        min_seconds=0,
    )
    if not cpu_has_bfloat16():
        assert result == {"skipped": "no bfloat16 units"}
        return
    assert [(c["input"], c["filters"]) for c in result["layers"]] == [
        ([28, 28, 1], 4),
        ([14, 14, 4], 8),
        ([7, 7, 8], 8),
    ]
    assert [v["kind"] for v in result["first_conv"]] == ["batch", "padded", "im2col"]
    for row in result["layers"] + result["first_conv"]:
        assert all(row[p]["forward_us"] > 0 and row[p]["step_us"] > 0 for p in ("float32", "bfloat16"))
    assert "im2col, patch length 32" in capsys.readouterr().out


@pytest.mark.skipif(not debian_fashion_mnist_installed(), reason="needs Debian's dataset-fashion-mnist")
def test_label_benchmark_runs_next_twice_and_the_second_decodes_nothing(tmp_path, capsys):
    from benchmarks import bench_label

    out = tmp_path / "label.json"
    bench_label.main(
        [
            "--images",
            "60",
            "--work",
            str(tmp_path / "work"),
            "--labelled",
            "40",
            "--test",
            "40",
            "--batch-size",
            "10",
            "--min-steps",
            "5",
            "--json",
            str(out),
        ]
    )
    figures = json.loads(out.read_text())
    assert figures["images"] == 60 and figures["second_next_decoded_images"] is False
    assert figures["first_next_peak_mb"] > 100 and figures["first_next_seconds"] > 0
    assert len(list((tmp_path / "work/project/data/unlabelled").rglob("*.png"))) == 60
    assert "second next:" in capsys.readouterr().out


def test_backend_benchmark_measures_every_installed_backend_in_its_own_process(tmp_path, capsys):
    from alstudy.learning import backends
    from benchmarks import bench_backends

    out = tmp_path / "backends.json"
    bench_backends.main(["--labeled", "64", "--candidates", "96", "--data-dir", str(tmp_path), "--json", str(out)])
    rows = json.loads(out.read_text())
    assert [r["backend"] for r in rows] == [b for b in backends.names() if backends.installed(b)]
    for row in rows:
        assert row["device"] == "cpu" and row["labeled"] == 64 and row["candidates"] == 96
        assert row["fit_s"] > 0 and row["score_s"] > 0 and row["mc_s"] > 0 and row["mc_passes"] == 20
    assert "fit 64 x 10 epochs" in capsys.readouterr().out


def test_gpu_benchmark_runs_the_study_packed_and_compares_it(tmp_path, capsys, http_server):
    """The GPU check's steps on the CPU cores (this machine has no GPU): a tiny study, 2 cells at once, in a
    clone on its own DVC cache, compared as `--cpu-results` would be (here with itself: the wiring, not the
    numbers; tests/scale/test_grid.py shows cells side by side compute what they compute alone). The data
    is a small Fashion-MNIST in its upstream files, served from 127.0.0.1 (the benchmark's data step is a
    `dvc repro` like any other: tests/pipeline/test_end_to_end.py)."""
    from benchmarks import bench_gpu
    from helpers.repo import copy_repo

    project, work, out = tmp_path / "project", tmp_path / "work", tmp_path / "gpu.json"
    project.mkdir()
    copy_repo(project)
    checksums = make_fashion_mnist_dir(tmp_path / "fashion", n_train=300, n_test=60)
    served = http_server(tmp_path / "fashion")
    tiny = [f'download.sources={{fashion_mnist: ["{served}"]}}', f"download.checksums={json.dumps(checksums)}"]
    tiny += ["data.datasets=[fashion_mnist]", "al.strategies=[margin]", "al.seeds=[0, 1]", "al.rounds=1"]
    tiny += ["al.initial_size=20", "al.query_size=10", "al.pool_subsample=200", "model.epochs=1"]
    bench_gpu.main(
        ["--project", str(project), "--workdir", str(work), "--device", "cpu", "--cells-per-gpu", "2"]
        + ["--skip-single", "--cpu-results", str(work / "n2" / "results"), "--json", str(out)]
        + [arg for item in tiny for arg in ("--set", item)]
    )
    (run,) = json.loads(out.read_text())["runs"]
    assert (run["cells"], run["per_device"]) == (2, 2) and set(run["aubc"]) == {"fashion_mnist/margin"}
    assert 0 < run["aubc"]["fashion_mnist/margin"] < 1
    assert "| fashion_mnist | `margin` | 2 | AUBC accuracy |" in run["compare"][2]
    assert "+0.00 (+0.00 to +0.00)" in run["compare"][2]
    assert "| study, 2 per cpu | 2 |" in capsys.readouterr().out
    with pytest.raises(PipelineError, match="--workdir .* is not empty"):
        bench_gpu.main(["--project", str(project), "--workdir", str(work), "--device", "cpu"])


def test_recipe_benchmark_costs_each_recipe_and_reads_accuracy_after_each_epoch(tmp_path, capsys, monkeypatch):
    """A recipe's cost is bench_backends' round on that recipe's model; the epochs sweep reads test accuracy
    after each epoch of one fit, and picks the fewest epochs within the tolerance of the best."""
    from benchmarks import bench_recipes

    data = tiny_prepared(tmp_path / "data")
    out = tmp_path / "recipes.json"
    bench_recipes.main(
        ["--recipe", "augmented", "--labeled", "40", "--candidates", "64", "--epochs", "1", "3", "--sizes", "40"]
        + ["--seeds", "0", "--data-dir", str(data), "--json", str(out)]
    )
    (row,) = json.loads(out.read_text())
    assert row["recipe"] == "augmented" and row["epochs"] == load_params().recipe("augmented").epochs
    assert row["fit_s"] > 0 and row["score_s"] > 0
    accuracy = row["epochs_test_accuracy"]["40"]
    assert set(accuracy) == {"1", "3"} and all(0 <= a[0] <= 100 for a in accuracy.values())
    assert row["chosen_epochs"] in (1, 3)
    printed = capsys.readouterr().out
    assert "augmented    cnn" in printed and "40 labels, test accuracy % after epochs 1:" in printed
    assert bench_recipes.chosen_epochs({"200": {"10": [80.0], "20": [84.0], "30": [84.3]}}, 0.5) == 20
    both = {"200": {"10": [80.0], "20": [84.0], "30": [84.0]}, "2200": {"10": [88.0], "20": [89.0], "30": [90.0]}}
    assert bench_recipes.chosen_epochs(both, 0.5) == 30  # within the tolerance at every size
    with pytest.raises(PipelineError, match="recipe 'tuned' is not in params.yaml's recipes"):
        bench_recipes.main(["--recipe", "tuned", "--data-dir", str(data)])


@pytest.mark.skipif(not debian_fashion_mnist_installed(), reason="needs Debian's dataset-fashion-mnist")
def test_backend_benchmark_times_predictions_idle_and_while_a_round_trains(tmp_path, monkeypatch):
    from benchmarks import bench_ml_backend

    monkeypatch.chdir(tmp_path)  # the benchmark moves into its project
    # Its rounds at a fair share beside the other test workers (at nice 10: 262 s instead of 46 s with two
    # processes at nice 0 on 2 cores); by hand, the benchmark measures the backend's default niceness.
    monkeypatch.setenv("ALSTUDY_ROUND_NICENESS", "0")
    out = tmp_path / "backend.json"
    bench_ml_backend.main(
        ["--images", "60", "--work", str(tmp_path / "work"), "--labelled", "30", "--min-steps", "5"]
        + ["--retrain-every", "5", "--idle-seconds", "1", "--json", str(out)]
    )
    figures = json.loads(out.read_text())
    assert figures["images"] == 60 and figures["ranked"] == 55  # round 2 ranks what its 5 new labels left
    assert figures["round_2_seconds"] > 0
    for phase in ("predict_idle_ms", "predict_while_training_ms"):
        assert 0 < figures[phase]["p50"] <= figures[phase]["p99"] <= figures[phase]["max"]
