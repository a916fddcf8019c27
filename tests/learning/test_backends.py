"""Every installed Keras backend holds to the learner contract (shapes, determinism, reuse, rows, MC passes,
the output layer, checkpoints, learning), each in a process of its own; and a wrong backend stops in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from alstudy.errors import PipelineError
from alstudy.learning import backends
from alstudy.learning.model import configure
from alstudy.params import ModelParams

TESTS = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("backend", backends.names())
def test_the_learner_contract_holds_on_every_installed_backend(backend, tmp_path):
    if not backends.installed(backend):
        pytest.skip(f"{backend} is not installed: {backends.BACKENDS[backend].install}")
    out = tmp_path / "contract.json"
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "XLA_FLAGS")}
    done = subprocess.run(
        [sys.executable, "-m", "helpers.learner_contract", backend, str(out)],
        cwd=TESTS,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(out.read_text())
    assert found["backend"] == backend and found["device"] == "cpu"
    assert "model.device: gpu" in found["gpu_refused"] and "\n" not in found["gpu_refused"]
    assert found["proba_shape"] == [150, 10] and found["embeddings_shape"] == [150, 32]
    assert found["mc_shape"] == [150, 10, 5] and found["dtypes"] == ["float32"]
    assert found["proba_sums_to_1"] < 1e-5
    assert found["same_seed_identical"] and found["other_seed_differs"] and found["reused_identical"]
    assert found["rows_match_full"] < 1e-6  # a subset of rows (other batches, padding) gives the same outputs
    assert found["mc_same_seed_identical"] and found["mc_passes_differ"]
    assert found["last_layer_matches"] < 1e-5  # softmax(embeddings @ W + b): what BADGE's gradients assume
    assert found["checkpoint_identical"]
    assert found["accuracy"] > 0.3  # ten classes: chance is 0.1


def test_a_backend_that_is_not_installed_stops_in_one_line(monkeypatch):
    monkeypatch.setattr(backends, "installed", lambda name: False)
    with pytest.raises(PipelineError, match=r"^model.backend: jax is not installed; pip install -e '.\[jax\]'"):
        configure(ModelParams(backend="jax", precision="float32"))


def test_params_naming_another_backend_than_keras_runs_stop_in_one_line():
    if not backends.installed("jax"):
        pytest.skip("jax is not installed")
    with pytest.raises(PipelineError, match="model.backend: jax, but Keras already runs on tensorflow"):
        configure(ModelParams(backend="jax", precision="float32"))


def test_the_backend_comes_from_params_yaml_unless_the_environment_says(tmp_path, monkeypatch):
    code = (
        "import os, sys; sys.modules.pop('keras', None); "
        "from alstudy.learning.backends import activate_from_params; activate_from_params(); "
        "print(os.environ['KERAS_BACKEND'], os.environ.get('XLA_FLAGS', ''))"
    )
    (tmp_path / "params.yaml").write_text("model:\n  backend: jax\n  threads: 1\n")
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "XLA_FLAGS")}
    read = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert read.stdout.split()[0] == "jax" and "--xla_cpu_multi_thread_eigen=false" in read.stdout
    told = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**env, "KERAS_BACKEND": "tensorflow"},
        capture_output=True,
        text=True,
    )
    assert told.stdout.split()[0] == "tensorflow"
