"""The pool-based active-learning loop, kept apart from the heuristics (strategies) and from tracking.

Round 0 trains on a seeded random initial set; each later round scores the
unlabelled pool with the previous round's model, queries `query_size` images
with the strategy, retrains and evaluates. Every random choice is drawn from a
generator seeded by (seed, round), so a run resumed from round k makes the same
choices as one that never stopped.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import keras
import numpy as np

from pipeline.errors import PipelineError
from pipeline.evaluation import class_histogram, evaluate
from pipeline.model import CNN
from pipeline.params import ALParams, ModelParams
from pipeline.preprocess import Split
from pipeline.strategies import NEEDS_SCORES, STRATEGIES


@dataclass
class RoundResult:
    round: int
    n_labeled: int
    accuracy: float
    f1_macro: float
    f1_per_class: list[float]
    # Class histogram of the images labelled this round (round 0: the initial set).
    query_class_counts: list[int]
    epochs: int
    train_seconds: float
    score_seconds: float
    eval_seconds: float

    @property
    def seconds(self) -> float:
        return self.train_seconds + self.score_seconds + self.eval_seconds


@dataclass
class LoopState:
    # Pool indices in the order they were labelled.
    labeled: list[int] = field(default_factory=list)
    history: list[RoundResult] = field(default_factory=list)

    @property
    def next_round(self) -> int:
        return len(self.history)

    def to_dict(self) -> dict:
        return {"labeled": self.labeled, "history": [asdict(r) for r in self.history]}

    @classmethod
    def from_dict(cls, data: dict) -> "LoopState":
        return cls(list(data["labeled"]), [RoundResult(**r) for r in data["history"]])


OnRound = Callable[[LoopState, RoundResult, CNN], None]


def round_rng(seed: int, round_: int, purpose: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, round_, purpose]))


def round_seed(seed: int, round_: int) -> int:
    return int(np.random.SeedSequence([seed, round_]).generate_state(1)[0])


def check_budget(al: ALParams, pool_size: int, dataset: str) -> None:
    if al.budget > pool_size:
        raise PipelineError(
            f"al: initial_size + rounds x query_size = {al.budget} labels, more than the {pool_size}-image "
            f"pool of {dataset}; lower al.rounds, al.query_size or al.initial_size")


def query(strategy: str, cnn: CNN, pool: Split, labeled: list[int], al: ALParams,
          seed: int, round_: int) -> tuple[np.ndarray, float]:
    """Pool indices to label this round, and the seconds spent scoring the pool."""
    unlabeled = np.setdiff1d(np.arange(len(pool.x)), np.asarray(labeled), assume_unique=True)
    rng = round_rng(seed, round_)
    if al.pool_subsample and al.pool_subsample < len(unlabeled):
        unlabeled = np.sort(rng.choice(unlabeled, size=al.pool_subsample, replace=False))
    start = time.perf_counter()
    if strategy in NEEDS_SCORES:
        proba = cnn.predict_proba(pool.x, unlabeled)
    else:
        proba = np.empty((len(unlabeled), 0), dtype=np.float32)
    score_seconds = time.perf_counter() - start
    picks = STRATEGIES[strategy](proba, al.query_size, rng)
    return unlabeled[picks], score_seconds


def run_loop(pool: Split, test: Split, strategy: str, al: ALParams, model_params: ModelParams, seed: int,
             state: LoopState | None = None, model: keras.Model | None = None,
             on_round: OnRound | None = None) -> LoopState:
    """Run rounds 0..al.rounds, continuing from `state` (with its last round's `model`) when given."""
    state = state or LoopState()
    pool_labels = pool.labels
    test_labels = test.labels
    n_classes = pool.y.shape[1]
    cnn = CNN(pool.x.shape[1:], n_classes, model_params, model)

    for round_ in range(state.next_round, al.rounds + 1):
        if round_ == 0:
            new = np.sort(round_rng(seed, 0).choice(len(pool.x), size=al.initial_size, replace=False))
            score_seconds = 0.0
        else:
            new, score_seconds = query(strategy, cnn, pool, state.labeled, al, seed, round_)
        state.labeled.extend(int(i) for i in new)

        start = time.perf_counter()
        if round_ == 0 or model_params.retrain_from_scratch:
            cnn.reinitialize(round_seed(seed, round_))
        labeled = np.asarray(state.labeled)
        epochs = cnn.fit(np.asarray(pool.x[labeled]), np.asarray(pool.y[labeled]), round_seed(seed, round_))
        train_seconds = time.perf_counter() - start

        start = time.perf_counter()
        predicted = cnn.predict_proba(test.x).argmax(axis=1)
        scores = evaluate(test_labels, predicted, n_classes)
        eval_seconds = time.perf_counter() - start

        result = RoundResult(
            round=round_, n_labeled=len(state.labeled), accuracy=scores["accuracy"],
            f1_macro=scores["f1_macro"], f1_per_class=scores["f1_per_class"],
            query_class_counts=class_histogram(pool_labels[new], n_classes), epochs=epochs,
            train_seconds=train_seconds, score_seconds=score_seconds, eval_seconds=eval_seconds)
        state.history.append(result)
        if on_round:
            on_round(state, result, cnn)
    return state
