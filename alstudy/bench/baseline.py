"""Section 1: the naive baseline, the way a modAL tutorial writes the loop.

A scikit-learn wrapper around the project's CNN in modAL's ActiveLearner, `teach()`
each round, Keras' default `predict` over the whole pool held in RAM. Its random
draws are the project's own (alstudy.learning.loop.initial_draw, the `random` strategy), so
both loops can label the same images.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import keras
import numpy as np
from modAL.models import ActiveLearner
from modAL.uncertainty import entropy_sampling, margin_sampling, uncertainty_sampling
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import accuracy_score, f1_score

from alstudy import strategies
from alstudy.bench.common import LoopStats, heading
from alstudy.learning.loop import initial_draw, round_rng, round_seed
from alstudy.learning.model import build_cnn
from alstudy.params import ALParams, ModelParams

# modAL 0.4.2.1 passes check_X_y(force_all_finite=...), which scikit-learn 1.6+ warns about on every teach().
warnings.filterwarnings("ignore", message=".*force_all_finite.*", category=FutureWarning)


class KerasCNNClassifier(BaseEstimator, ClassifierMixin):
    """The scikit-learn-style wrapper a modAL tutorial writes around a Keras model.

    fit() builds a brand-new model and trains it; predict_proba() is Keras' default
    model.predict (batch size 32). Fit number k is seeded like round k of the
    project's loop, so both loops start every round from the same weights.
    """

    def __init__(self, input_shape=(28, 28, 1), n_classes=10, model_params: ModelParams | None = None, seed=0):
        self.input_shape = input_shape
        self.n_classes = n_classes
        self.model_params = model_params
        self.seed = seed

    def fit(self, X, y):
        params = self.model_params or ModelParams()
        self.n_fits_ = getattr(self, "n_fits_", 0) + 1
        seed = round_seed(self.seed, self.n_fits_ - 1)
        keras.utils.set_random_seed(seed)  # weight init, as CNN.reinitialize does
        self.model_ = build_cnn(tuple(self.input_shape), self.n_classes, params)
        keras.utils.set_random_seed(seed)  # fit's shuffling
        self.model_.fit(X, y, epochs=params.epochs, batch_size=params.batch_size, verbose=0)
        self.classes_ = np.arange(self.n_classes)
        return self

    def predict_proba(self, X):
        return self.model_.predict(X, verbose=0)

    def predict(self, X):
        return self.predict_proba(X).argmax(axis=1)


def random_query(classifier, X, n_instances=1, rng=None):
    """modAL has no random sampling: the project's own `random` strategy, called modAL's way.

    Returns (indices, metrics) like modAL's own strategies: ActiveLearner.query
    calls a strategy a second time when unpacking its result fails.
    """
    inputs = strategies.QueryInputs(n_candidates=len(X), n_instances=n_instances, rng=rng)
    return strategies.get("random").select(inputs), None


MODAL_STRATEGIES = {
    "random": random_query,
    "least_confidence": uncertainty_sampling,
    "uncertainty": uncertainty_sampling,
    "margin": margin_sampling,
    "entropy": entropy_sampling,
}


def sklearn_scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> tuple[float, float]:
    f1 = f1_score(y_true, y_pred, labels=np.arange(n_classes), average="macro", zero_division=0)
    return float(accuracy_score(y_true, y_pred)), float(f1)


def run_baseline(
    data_dir: Path, pool_size: int | None, al: ALParams, model_params: ModelParams, strategy: str, seed: int
) -> LoopStats:
    heading("1. NAIVE BASELINE: modAL ActiveLearner + sklearn wrapper + Keras model.predict")
    # A tutorial loads the arrays whole, no memory mapping.
    x_pool, y_pool = np.load(data_dir / "x_train.npy"), np.load(data_dir / "y_train.npy")
    if pool_size:
        x_pool, y_pool = x_pool[:pool_size], y_pool[:pool_size]
    x_test, y_test = np.load(data_dir / "x_test.npy"), np.load(data_dir / "y_test.npy")
    n_classes, test_labels = y_pool.shape[1], y_test.argmax(axis=1)
    print(f"pool {x_pool.shape}, test {x_test.shape}, in RAM; Keras predict batch size 32", flush=True)

    stats = LoopStats("baseline")
    wrapper = KerasCNNClassifier(x_pool.shape[1:], n_classes, model_params, seed)
    pool_index = np.arange(len(x_pool))  # original pool index of each row left in x_pool

    def evaluate() -> tuple[float, float, float]:
        start = time.perf_counter()
        accuracy, f1 = sklearn_scores(test_labels, wrapper.predict(x_test), n_classes)
        return accuracy, f1, time.perf_counter() - start

    # Round 0: the same initial set as the project's loop.
    initial = initial_draw(len(x_pool), al.initial_size, seed)
    start = time.perf_counter()
    learner = ActiveLearner(
        estimator=wrapper,
        query_strategy=MODAL_STRATEGIES[strategy],
        X_training=x_pool[initial],
        y_training=y_pool[initial],
    )
    train_s = time.perf_counter() - start
    stats.labeled.extend(int(i) for i in pool_index[initial])
    x_pool, y_pool = np.delete(x_pool, initial, axis=0), np.delete(y_pool, initial, axis=0)
    pool_index = np.delete(pool_index, initial)
    accuracy, f1, eval_s = evaluate()
    stats.add(0, len(stats.labeled), train_s, 0.0, eval_s, time.perf_counter() - start, accuracy, f1, al.rounds)

    for round_ in range(1, al.rounds + 1):
        round_start = time.perf_counter()
        # The project's random strategy draws from round_rng(seed, round); same draw here.
        extra = {"rng": round_rng(seed, round_)} if strategy == "random" else {}
        idx, _ = learner.query(x_pool, n_instances=al.query_size, **extra)
        # Sorted like the project's strategies return them, so both loops train on the
        # same images in the same order (one tutorial-invisible line; no effect on cost).
        idx = np.sort(idx)
        score_s = time.perf_counter() - round_start

        start = time.perf_counter()
        learner.teach(x_pool[idx], y_pool[idx])
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
