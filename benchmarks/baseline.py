"""Section 1: the naive baseline, the loop the way a modAL tutorial writes it, in plain Keras.

A new model built and trained with Keras `fit` on every labelled image each round, the whole pool
held in RAM and scored with Keras' default `predict`, modAL's sampling functions picking the
queries, `np.delete` on the arrays. This is what modAL's ActiveLearner does (`teach()` appends the
new images and refits); the ActiveLearner itself is not used, as it fails on scikit-learn 1.8.
Its random draws are the project's own (alstudy.learning.loop.initial_draw, the `random` strategy),
so both loops can label the same images.
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np
from modAL.uncertainty import entropy_sampling, margin_sampling, uncertainty_sampling
from sklearn.metrics import accuracy_score, f1_score

from alstudy import strategies
from alstudy.learning.loop import initial_draw, round_rng, round_seed
from alstudy.learning.model import build_cnn
from alstudy.params import ALParams, ModelParams
from benchmarks.common import LoopStats, heading


class NaiveLearner:
    """The tutorial's learner: fit() builds a brand-new model and trains it with Keras `fit`;
    predict_proba() is Keras' default model.predict (batch size 32). Fit number k is seeded like
    round k of the project's loop, so both loops start every round from the same weights."""

    def __init__(self, input_shape: tuple[int, ...], n_classes: int, model_params: ModelParams, seed: int):
        self.input_shape, self.n_classes, self.params, self.seed = input_shape, n_classes, model_params, seed
        self.n_fits = 0

    def fit(self, x: np.ndarray, y: np.ndarray) -> None:
        seed = round_seed(self.seed, self.n_fits)
        self.n_fits += 1
        keras.utils.set_random_seed(seed)  # weight init, as CNN.reinitialize does
        self.model = build_cnn(tuple(self.input_shape), self.n_classes, self.params)
        keras.utils.set_random_seed(seed)  # fit's shuffling
        self.model.fit(x, y, epochs=self.params.epochs, batch_size=self.params.batch_size, verbose=0)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(x, verbose=0)


def random_query(learner: NaiveLearner, x_pool: np.ndarray, n_instances: int, rng: np.random.Generator) -> np.ndarray:
    """modAL has no random sampling: the project's own `random` strategy, on the loop's round_rng."""
    inputs = strategies.QueryInputs(n_candidates=len(x_pool), n_instances=n_instances, rng=rng)
    return strategies.get("random").select(inputs)


def modal_query(sampling_function):
    """One of modAL's sampling functions, called as a tutorial calls it: on the learner and the pool."""

    def query(learner: NaiveLearner, x_pool: np.ndarray, n_instances: int, rng: np.random.Generator) -> np.ndarray:
        return sampling_function(learner, x_pool, n_instances=n_instances)[0]

    return query


QUERIES = {
    "random": random_query,
    "least_confidence": modal_query(uncertainty_sampling),
    "uncertainty": modal_query(uncertainty_sampling),
    "margin": modal_query(margin_sampling),
    "entropy": modal_query(entropy_sampling),
}


def sklearn_scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> tuple[float, float]:
    f1 = f1_score(y_true, y_pred, labels=np.arange(n_classes), average="macro", zero_division=0)
    return float(accuracy_score(y_true, y_pred)), float(f1)


def run_baseline(
    data_dir: Path, pool_size: int | None, al: ALParams, model_params: ModelParams, strategy: str, seed: int
) -> LoopStats:
    heading("1. NAIVE BASELINE: Keras fit on every labelled image, Keras model.predict, modAL's samplers")
    # A tutorial loads the arrays whole, no memory mapping.
    x_pool, y_pool = np.load(data_dir / "x_train.npy"), np.load(data_dir / "y_train.npy")
    if pool_size:
        x_pool, y_pool = x_pool[:pool_size], y_pool[:pool_size]
    x_test, y_test = np.load(data_dir / "x_test.npy"), np.load(data_dir / "y_test.npy")
    n_classes, test_labels = y_pool.shape[1], y_test.argmax(axis=1)
    print(f"pool {x_pool.shape}, test {x_test.shape}, in RAM; Keras predict batch size 32", flush=True)

    stats = LoopStats("baseline")
    learner = NaiveLearner(x_pool.shape[1:], n_classes, model_params, seed)
    pool_index = np.arange(len(x_pool))  # original pool index of each row left in x_pool

    def evaluate() -> tuple[float, float, float]:
        start = time.perf_counter()
        accuracy, f1 = sklearn_scores(test_labels, learner.predict_proba(x_test).argmax(axis=1), n_classes)
        return accuracy, f1, time.perf_counter() - start

    # Round 0: the same initial set as the project's loop.
    initial = initial_draw(len(x_pool), al.initial_size, seed)
    start = time.perf_counter()
    x_labeled, y_labeled = x_pool[initial], y_pool[initial]
    learner.fit(x_labeled, y_labeled)
    train_s = time.perf_counter() - start
    stats.labeled.extend(int(i) for i in pool_index[initial])
    x_pool, y_pool = np.delete(x_pool, initial, axis=0), np.delete(y_pool, initial, axis=0)
    pool_index = np.delete(pool_index, initial)
    accuracy, f1, eval_s = evaluate()
    stats.add(0, len(stats.labeled), train_s, 0.0, eval_s, time.perf_counter() - start, accuracy, f1, al.rounds)

    for round_ in range(1, al.rounds + 1):
        round_start = time.perf_counter()
        # Sorted like the project's strategies return them, so both loops train on the same images
        # in the same order (no effect on cost).
        idx = np.sort(QUERIES[strategy](learner, x_pool, al.query_size, round_rng(seed, round_)))
        score_s = time.perf_counter() - round_start

        start = time.perf_counter()
        x_labeled = np.concatenate([x_labeled, x_pool[idx]])
        y_labeled = np.concatenate([y_labeled, y_pool[idx]])
        learner.fit(x_labeled, y_labeled)
        train_s = time.perf_counter() - start

        stats.labeled.extend(int(i) for i in pool_index[idx])
        x_pool, y_pool = np.delete(x_pool, idx, axis=0), np.delete(y_pool, idx, axis=0)
        pool_index = np.delete(pool_index, idx)
        accuracy, f1, eval_s = evaluate()
        stats.add(
            round_,
            len(stats.labeled),
            train_s,
            score_s,
            eval_s,
            time.perf_counter() - round_start,
            accuracy,
            f1,
            al.rounds,
        )
    return stats
