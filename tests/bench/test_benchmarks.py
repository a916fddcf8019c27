"""A smoke run of the strategy benchmark on a tiny pool: a change to the loop's interface must not break it."""

from __future__ import annotations

import json

import pytest

from alstudy.data.preprocess import write_splits
from alstudy.learning.model import cpu_has_bfloat16
from alstudy.params import ModelParams, load_params
from helpers import debian_fashion_mnist_installed, learnable_split

pytestmark = pytest.mark.slow


def tiny_prepared(folder):
    write_splits(folder, learnable_split(300, 0), learnable_split(60, 1), {"dataset": "tiny"})
    return folder


def test_strategy_benchmark_times_every_registered_strategy(tmp_path, capsys):
    from alstudy.bench import bench_strategies
    from alstudy.strategies import STRATEGIES

    data = tiny_prepared(tmp_path / "data")
    out = tmp_path / "strategies.json"
    bench_strategies.main(
        ["--data-dir", str(data), "--labeled", "40", "--query-size", "10", "--skip-memory", "--json", str(out)]
    )
    timing = json.loads(out.read_text())["timing"]
    assert set(timing["strategies"]) == set(STRATEGIES)
    assert timing["n_candidates"] == 260 and timing["proba_pass_s"] > 0
    assert timing["strategies"]["bald"]["mc_passes"] == 20
    assert "coreset:" in capsys.readouterr().out


def test_loop_benchmark_runs_baseline_and_every_variant_over_seeds(tmp_path, capsys):
    from alstudy.bench import bench_al

    data = tiny_prepared(tmp_path / "data")
    out = tmp_path / "bench.json"
    bench_al.main(
        [
            "--data-dir",
            str(data),
            "--rounds",
            "1",
            "--initial-size",
            "20",
            "--query-size",
            "10",
            "--epochs",
            "1",
            "--seeds",
            "0",
            "1",
            "--skip-training",
            "--skip-scoring",
            "--skip-memory",
            "--skip-convolutions",
            "--json",
            str(out),
        ]
    )
    results = json.loads(out.read_text())
    loops = results["loops"]
    other = {"float32": "defaults_bfloat16", "bfloat16": "defaults_float32"}[load_params().model.precision]
    bfloat16 = {other} if cpu_has_bfloat16() else set()
    assert set(loops) == {"baseline", "same_protocol", "project_defaults", "early_stopping", "warm_start", *bfloat16}
    for loop in loops.values():
        assert set(loop["per_seed"]) == {"0", "1"}
        assert [r["n_labeled"] for r in loop["per_seed"]["0"]["rounds"]] == [20, 30]
    assert len(loops["same_protocol"]["vs_baseline"]["accuracy_diff_points_per_seed"]) == 2
    verdicts = {t["text"].split(":")[0]: t["verdict"] for t in results["targets"]}
    assert "per-round time, ours, project defaults" in verdicts
    assert ("bfloat16 default round" if bfloat16 else "bfloat16 vs float32") in verdicts
    assert "SUMMARY" in capsys.readouterr().out


def test_training_benchmark_measures_keras_fit_and_the_project_against_matmul(tmp_path):
    from alstudy.bench.training import measure

    data = tiny_prepared(tmp_path / "data")
    result = measure(threads=1, data_dir=data, n_images=64, epochs=1)
    names = ("keras_fit", "project", "project_bfloat16") if cpu_has_bfloat16() else ("keras_fit", "project")
    for name in names:
        assert result[name]["images_per_s"] > 0 and 0 < result[name]["share_of_matmul"]
    assert result["matmul_gflops"] > 0 and result["train_mflop_per_image"] > 0
    assert (result["matmul_bfloat16_gflops"] or 0) > 0 or not cpu_has_bfloat16()


def test_convolution_section_times_each_conv_and_the_first_one_reshaped(capsys):
    from alstudy.bench.convolutions import bench_convolutions

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
    from alstudy.bench import bench_label

    out = tmp_path / "label.json"
    bench_label.main(
        [
            "--images",
            "60",
            "--work",
            str(tmp_path / "work"),
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
