"""Every registered network trains under the shared head with the learner's contract (seeded, checkpointed,
one-pass embeddings and MC passes); the pretrained one keeps its features frozen, loads its weights the way
Keras does, and stops in one line when it cannot get them; the seed's CNN is what it always was."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from alstudy.errors import PipelineError
from alstudy.learning.model import CNN
from alstudy.params import ModelParams
from alstudy.recipes import networks
from alstudy.recipes.networks.pretrained import PretrainedOptions, keras_cache
from helpers.runs import learnable_split

TINY = dict(filters=[4, 4, 4], dense_units=16, epochs=2, batch_size=16, precision="float32", predict_batch_size=64)
OPTIONS = {"cnn": {}, "resnet": {"widths": [4, 8]}, "pretrained": {"weights": "random"}}


def test_every_registered_network_is_tested():
    assert set(networks.names()) == set(OPTIONS)


@pytest.mark.parametrize("network", list(OPTIONS))
def test_every_network_trains_under_the_shared_head_seeded_and_checkpointed(network, tmp_path):
    params = ModelParams(network=network, network_options=OPTIONS[network], **TINY)
    train, test = learnable_split(64, 0), learnable_split(40, 1)

    def trained(seed: int) -> CNN:
        cnn = CNN((28, 28, 1), 10, params)
        cnn.reinitialize(seed)
        cnn.fit(train.x, train.y, seed=seed)
        return cnn

    first = trained(0)
    full = first.infer(test.x, embeddings=True, mc_passes=3, mc_seed=1)
    assert full.proba.shape == (40, 10) and full.embeddings.shape == (40, 16) and full.mc_proba.shape == (40, 10, 3)
    assert np.array_equal(full.proba, trained(0).infer(test.x).proba)
    assert not np.allclose(full.proba, trained(1).infer(test.x).proba)
    first.model.save(tmp_path / "model.keras")
    loaded = CNN((28, 28, 1), 10, params, keras.models.load_model(tmp_path / "model.keras"))
    assert np.array_equal(loaded.infer(test.x).proba, full.proba)
    names = [layer.name for layer in first.model.layers]
    assert names[-3:] == ["hidden", "dropout_hidden", "output"] and "flatten" in names


def test_the_resnet_has_residual_stages_and_updates_its_batch_norm_statistics():
    params = ModelParams(network="resnet", network_options={"widths": [4, 8, 16], "blocks_per_stage": 3}, **TINY)
    cnn = CNN((32, 32, 3), 10, params)
    trunk = cnn.model.layers[0]
    assert trunk.name == "resnet20"  # 2 + 2 x 3 blocks x 3 stages
    assert trunk.output.shape[-1] == 16
    assert sum(isinstance(layer, keras.layers.Add) for layer in trunk.layers) == 9
    moving = [v for v in cnn.model.non_trainable_variables if "moving_mean" in v.path]
    before = [np.array(v) for v in moving]
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(32, 32, 32, 3)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 32)]
    cnn.fit(x, y, seed=0)
    assert all(not np.array_equal(b, np.array(v)) for b, v in zip(before, moving))


def test_the_pretrained_features_stay_frozen_and_only_the_head_trains():
    params = ModelParams(network="pretrained", network_options={"weights": "random"}, **TINY)
    cnn = CNN((28, 28, 1), 10, params)
    trunk = cnn.model.layers[0]
    before = [np.array(w) for w in trunk.get_weights()]
    head = [np.array(w) for w in cnn.model.get_layer("hidden").get_weights()]
    train = learnable_split(32, 0)
    cnn.fit(train.x, train.y, seed=0)
    assert all(np.array_equal(b, a) for b, a in zip(before, trunk.get_weights()))
    assert not np.array_equal(head[0], cnn.model.get_layer("hidden").get_weights()[0])
    head_variables = cnn.model.get_layer("hidden").trainable_weights + cnn.model.get_layer("output").trainable_weights
    assert {id(v) for v in cnn.model.trainable_variables} == {id(v) for v in head_variables}


def test_pretrained_weights_load_from_a_file_given_by_path(tmp_path):
    # What Keras' own download is: the application's weights without its top, in the (Keras 2) HDF5 layout.
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    options = PretrainedOptions(weights="random")
    source = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(96, 96, 3), pooling="avg")
    path = tmp_path / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5"
    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, source)
    params = ModelParams(network="pretrained", network_options={"weights": str(path)}, **TINY)
    application = CNN((28, 28, 1), 10, params).model.layers[0].get_layer(source.name)
    assert all(np.array_equal(a, b) for a, b in zip(application.get_weights(), source.get_weights()))
    assert options.input_size == 96


def test_a_missing_weights_file_stops_in_one_line(tmp_path):
    params = ModelParams(network="pretrained", network_options={"weights": str(tmp_path / "none.h5")}, **TINY)
    with pytest.raises(PipelineError, match=r"^network_options.weights: .*none.h5 is not a file; give the path"):
        CNN((28, 28, 1), 10, params)


def test_offline_imagenet_weights_stop_in_one_line_naming_the_file_and_where_it_goes(tmp_path):
    # A process of its own, its downloads sent to a dead proxy: offline, whatever this machine can reach.
    code = (
        "from alstudy.learning.model import CNN\n"
        "from alstudy.params import ModelParams\n"
        "from alstudy.runner import run_stage\n"
        "run_stage(lambda argv: CNN((28, 28, 1), 10, ModelParams(network='pretrained', precision='float32')))\n"
    )
    dead = "http://127.0.0.1:9"
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras"), "HTTPS_PROXY": dead, "HTTP_PROXY": dead}
    env.pop("NO_PROXY", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    line = done.stderr.strip().splitlines()[-1]
    expected = tmp_path / "keras" / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5"
    assert line.startswith("error: network_options.weights: imagenet: MobileNetV2's weights could not be downloaded")
    assert "https://storage.googleapis.com/" in line and f"download that file to {expected}" in line, line
    assert "Traceback" not in done.stderr


def test_keras_cache_follows_keras_home(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert keras_cache() == tmp_path / "models"
    monkeypatch.delenv("KERAS_HOME")
    assert keras_cache() == Path.home() / ".keras" / "models"
