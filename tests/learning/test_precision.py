"""model.precision: bfloat16 compute (Keras' mixed_bfloat16) beside float32, and the stop on a CPU
without bfloat16 units."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from alstudy import hardware
from alstudy.errors import PipelineError
from alstudy.learning import checkpoint
from alstudy.learning import model as model_module
from alstudy.learning.model import CNN
from alstudy.params import ModelParams, parse_params
from alstudy.tracking import runs as tracking
from helpers.repo import REPO
from helpers.runs import TINY, learnable_split, make_project

TINY_MODEL = ModelParams(filters=[4, 8, 8], dense_units=16, epochs=1, batch_size=16, predict_batch_size=32)
MC_PASSES = 4


def repo_params(**model):
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["model"].update(model)
    return parse_params(raw)


def trained(precision: str, seed: int = 0):
    """A tiny CNN trained one epoch on 64 images, and its outputs on them (MC passes included)."""
    split = learnable_split(64, 0)
    cnn = CNN((28, 28, 1), 10, TINY_MODEL.model_copy(update={"precision": precision}))
    cnn.reinitialize(seed)
    cnn.fit(split.x, split.y, seed)
    return cnn, cnn.infer(split.x, embeddings=True, mc_passes=MC_PASSES, mc_seed=seed)


@pytest.fixture(scope="module")
def runs():
    return {"float32": trained("float32"), "bfloat16": trained("bfloat16"), "bfloat16 again": trained("bfloat16")}


def outputs(inference) -> list[np.ndarray]:
    return [inference.proba, inference.embeddings, inference.mc_proba]


@pytest.mark.parametrize("units, resolved", [(True, "bfloat16"), (False, "float32")])
def test_the_default_auto_takes_bfloat16_where_the_cpu_has_the_units(monkeypatch, units, resolved):
    monkeypatch.setattr(hardware, "cpu_has_bfloat16", lambda: units)
    assert repo_params().model.precision == resolved  # params.yaml says auto; the run holds what it used
    assert repo_params(precision="auto").model.precision == resolved
    assert repo_params(precision="float32").model.precision == "float32"
    assert repo_params(precision="bfloat16").model.precision == "bfloat16"  # asked for: configure() judges it


def test_float16_is_refused_in_one_line():
    with pytest.raises(PipelineError) as error:
        repo_params(precision="float16")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("params.yaml: model.precision:")
    assert "'auto', 'float32' or 'bfloat16'" in message and "'float16'" in message


def test_bfloat16_computes_in_bfloat16_with_float32_weights_and_a_float32_output(runs):
    cnn, inference = runs["bfloat16"]
    layers = cnn.model.layers
    assert [layer.compute_dtype for layer in layers[:-1]] == ["bfloat16"] * (len(layers) - 1)
    assert layers[-1].name == "output" and layers[-1].compute_dtype == "float32"
    assert {w.dtype for w in cnn.model.get_weights()} == {np.dtype("float32")}
    assert [out.dtype for out in outputs(inference)] == [np.dtype("float32")] * 3
    assert np.allclose(inference.proba.sum(axis=1), 1, atol=1e-5)
    assert np.allclose(inference.mc_proba.sum(axis=1), 1, atol=1e-5)
    float32_cnn, _ = runs["float32"]
    assert [layer.compute_dtype for layer in float32_cnn.model.layers] == ["float32"] * len(layers)


def test_bfloat16_twice_gives_identical_numbers(runs):
    (first_cnn, first), (second_cnn, second) = runs["bfloat16"], runs["bfloat16 again"]
    for a, b in zip(outputs(first), outputs(second)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(first_cnn.model.get_weights(), second_cnn.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_bfloat16_numbers_differ_from_float32(runs):
    (float32_cnn, float32), (bfloat16_cnn, bfloat16) = runs["float32"], runs["bfloat16"]
    for a, b in zip(outputs(float32), outputs(bfloat16)):
        assert not np.array_equal(a, b)
    assert not all(
        np.array_equal(a, b) for a, b in zip(float32_cnn.model.get_weights(), bfloat16_cnn.model.get_weights())
    )


def test_bfloat16_mc_passes_match_the_float32_head_with_the_same_masks(runs):
    """Each pass against the dense head computed by hand in float64 from the same weights and masks:
    they differ by rounding only, far less than passes differ from one another (a mask cast, scaled
    or broadcast wrongly would not)."""
    cnn, bfloat16 = runs["bfloat16"]
    x = learnable_split(64, 0).x
    features = x
    for layer in cnn.model.layers[: [layer.name for layer in cnn.model.layers].index("flatten") + 1]:
        features = layer(features)
    features = np.asarray(features, np.float64)
    (w1, b1), (w2, b2) = (cnn.model.get_layer(name).get_weights() for name in ("hidden", "output"))
    feature_masks, hidden_masks = cnn._predictor._masks(MC_PASSES, 0)
    passes = []
    for m1, m2 in zip(feature_masks, hidden_masks):
        logits = np.maximum((features * m1) @ w1 + b1, 0) * m2 @ w2 + b2
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        passes.append(e / e.sum(axis=1, keepdims=True))
    by_hand = np.stack(passes, axis=2)
    between_passes = np.abs(by_hand - by_hand[:, :, :1]).max()
    assert np.abs(bfloat16.mc_proba - by_hand).max() < between_passes / 5


def test_the_run_fingerprint_and_mlflow_config_change_with_precision():
    from alstudy.scale.cell import run_config

    configs = [run_config(repo_params(precision=p), "fashion_mnist", "margin", 0) for p in ("float32", "bfloat16")]
    assert configs[0]["model"]["precision"] == "float32" and configs[1]["model"]["precision"] == "bfloat16"
    assert checkpoint.fingerprint(configs[0], [], []) != checkpoint.fingerprint(configs[1], [], [])
    assert tracking.config_key(configs[0]) != tracking.config_key(configs[1])


@pytest.mark.parametrize(
    "flags, expected",
    [
        ("fpu avx512f avx512_bf16 avx512vl", True),
        ("avx2 amx_bf16 amx_tile", True),
        ("fpu avx2 avx512f avx512_fp16 amx_int8", False),
    ],
)
def test_the_cpu_check_reads_the_kernels_bfloat16_flags(tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("".join(f"processor\t: {i}\nmodel name\t: a CPU\nflags\t\t: {flags}\n\n" for i in range(2)))
    assert model_module.cpu_has_bfloat16(cpuinfo) is expected
    assert model_module.cpu_has_bfloat16(tmp_path / "missing") is False


def test_a_bfloat16_run_on_a_cpu_without_bfloat16_stops_at_start_in_one_line(tmp_path, monkeypatch, capsys):
    from alstudy.runner import run_stage
    from stages import al

    project = make_project(tmp_path / "p", {"model": {**TINY["model"], "precision": "bfloat16"}})
    monkeypatch.setattr(model_module, "cpu_has_bfloat16", lambda: False)
    monkeypatch.chdir(project)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlflow.db'}")
    with pytest.raises(SystemExit) as stopped:
        run_stage(al.main, ["--dataset", "fashion_mnist", "--strategy", "margin", "--seed", "0"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: model.precision: bfloat16 needs a CPU with AVX512-BF16 or AMX-BF16 (this one has neither); "
        "set model.precision: float32 (or auto: the best this machine has)"
    ]
    assert not any((project / name).exists() for name in ("mlflow.db", "checkpoints", "results"))
