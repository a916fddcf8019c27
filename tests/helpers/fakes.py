"""A fake learner with hand-made outputs for the loop and the strategies, and learning curves by hand."""

from __future__ import annotations

import numpy as np

from alstudy.data.preprocess import Split, one_hot
from alstudy.learning.learner import Inference
from alstudy.params import ALParams
from alstudy.study.summary import Curves

N_POOL, N_TEST, N_CLASSES, HIDDEN, PASSES = 60, 10, 3, 4, 5


class FakeLearner:
    """Hand-made outputs per image, no training. Each image's first pixel holds its id."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        n = N_POOL + N_TEST
        self.proba = rng.dirichlet(np.ones(N_CLASSES), size=n).astype(np.float32)
        self.embeddings = rng.normal(size=(n, HIDDEN)).astype(np.float32)
        self.mc_proba = rng.dirichlet(np.ones(N_CLASSES), size=(n, PASSES)).transpose(0, 2, 1).astype(np.float32)
        self.weights, self.bias = rng.normal(size=(HIDDEN, N_CLASSES)), rng.normal(size=N_CLASSES)
        self.calls: list[dict] = []

    def last_layer(self) -> tuple[np.ndarray, np.ndarray]:
        self.calls.append({"call": "last_layer"})
        return self.weights, self.bias

    def reinitialize(self, seed: int) -> None:
        self.calls.append({"call": "reinitialize", "seed": seed})

    def fit(self, x, y, seed: int) -> int:
        self.calls.append({"call": "fit", "n": len(x), "seed": seed})
        return 1

    def infer(self, images, rows=None, *, embeddings=False, mc_passes=0, mc_seed=0) -> Inference:
        batch = images if rows is None else images[rows]
        ids = np.asarray(batch)[:, 0, 0, 0].astype(int)
        self.calls.append(
            {"call": "infer", "ids": ids.tolist(), "embeddings": embeddings, "mc_passes": mc_passes, "mc_seed": mc_seed}
        )
        mc = self.mc_proba[ids][:, :, :mc_passes] if mc_passes else None
        return Inference(self.proba[ids], self.embeddings[ids] if embeddings else None, mc)


def fake_split(first_id: int, n: int) -> Split:
    x = np.zeros((n, 2, 2, 1), np.float32)
    x[:, 0, 0, 0] = np.arange(first_id, first_id + n)
    return Split(x, one_hot(np.arange(n) % N_CLASSES, N_CLASSES))


POOL, TEST = fake_split(0, N_POOL), fake_split(N_POOL, N_TEST)


def al_params(name: str, **overrides) -> ALParams:
    values = {
        "strategies": [name],
        "strategy_options": {name: {}},
        "initial_size": 12,
        "query_size": 6,
        "rounds": 2,
        **overrides,
    }
    return ALParams(**values)


def curves(accuracy, n_labeled=(100, 200, 300, 400), f1=None) -> Curves:
    accuracy = np.asarray(accuracy, dtype=float)
    f1 = accuracy if f1 is None else np.asarray(f1, dtype=float)
    seeds, rounds = accuracy.shape
    return Curves(
        seeds=list(range(seeds)),
        n_labeled=np.asarray(n_labeled),
        accuracy=accuracy,
        balanced_accuracy=accuracy - 0.01,
        f1_macro=f1,
        f1_per_class=np.zeros((seeds, rounds, 3)),
        queried_classes=np.ones((seeds, 3)),
    )
