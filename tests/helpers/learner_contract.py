"""The learner contract, measured on one Keras backend in a process of its own (Keras picks its backend once
per process): `python -m helpers.learner_contract <backend> <out.json>` with tests/ on the path. Writes what
tests/learning/test_backends.py asserts, so that every backend is held to the same checks."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np


def main(backend: str, out: Path) -> None:
    os.environ["KERAS_BACKEND"] = backend  # before alstudy.learning imports Keras
    import keras

    from alstudy.learning import backends
    from alstudy.learning.model import CNN, configure
    from alstudy.params import ModelParams
    from helpers.runs import learnable_split

    params = ModelParams(
        filters=[8, 8, 8],
        dense_units=32,
        epochs=6,
        batch_size=16,
        precision="float32",
        backend=backend,
        predict_batch_size=64,
    )
    from alstudy.errors import PipelineError

    try:  # this machine has no GPU: asking for one must stop in one line
        configure(params.model_copy(update={"device": "gpu"}))
        gpu_refused = ""
    except PipelineError as error:
        gpu_refused = str(error)
    device = configure(params)
    train, test = learnable_split(200, 0), learnable_split(150, 1)

    def trained(seed: int) -> CNN:
        cnn = CNN((28, 28, 1), 10, params)
        cnn.reinitialize(seed)
        cnn.fit(train.x, train.y, seed=seed)
        return cnn

    first, again, other = trained(0), trained(0), trained(1)
    full = first.infer(test.x, embeddings=True, mc_passes=5, mc_seed=3)
    rows = np.array([149, 3, 77, 0, 42])
    some = first.infer(test.x, rows, embeddings=True, mc_passes=5, mc_seed=3)
    weights, bias = first.last_layer()
    logits = full.embeddings.astype(np.float64) @ weights + bias
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    # Reused between rounds: reinitialize() gives what a fresh model would.
    first.reinitialize(0)
    first.fit(train.x, train.y, seed=0)
    with tempfile.TemporaryDirectory() as folder:  # a checkpoint: saved and loaded back, the same outputs
        path = Path(folder) / "model.keras"
        first.model.save(path)
        loaded = CNN((28, 28, 1), 10, params, keras.models.load_model(path))
        reloaded = loaded.infer(test.x).proba
    result = {
        "backend": backends.running(),
        "device": device,
        "gpu_refused": gpu_refused,
        "proba_shape": list(full.proba.shape),
        "embeddings_shape": list(full.embeddings.shape),
        "mc_shape": list(full.mc_proba.shape),
        "dtypes": sorted({str(a.dtype) for a in (full.proba, full.embeddings, full.mc_proba)}),
        "proba_sums_to_1": float(np.abs(full.proba.sum(axis=1) - 1).max()),
        "same_seed_identical": bool(np.array_equal(full.proba, again.infer(test.x).proba)),
        "other_seed_differs": bool(not np.allclose(full.proba, other.infer(test.x).proba)),
        "reused_identical": bool(np.array_equal(full.proba, first.infer(test.x).proba)),
        "rows_match_full": float(
            max(np.abs(some.proba - full.proba[rows]).max(), np.abs(some.mc_proba - full.mc_proba[rows]).max())
        ),
        "mc_same_seed_identical": bool(
            np.array_equal(full.mc_proba, first.infer(test.x, mc_passes=5, mc_seed=3).mc_proba)
        ),
        "mc_passes_differ": bool(not np.allclose(full.mc_proba[..., 0], full.mc_proba[..., 1])),
        "last_layer_matches": float(np.abs(softmax - full.proba).max()),
        "checkpoint_identical": bool(np.array_equal(reloaded, full.proba)),
        "accuracy": float((full.proba.argmax(axis=1) == test.y.argmax(axis=1)).mean()),
    }
    out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
