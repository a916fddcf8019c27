"""The pool-based active-learning loop, kept apart from the heuristics (strategies) and from tracking.

Round 0 trains on a seeded random initial set; each later round computes what
the strategy declared it needs for the unlabelled pool (or a seeded subsample
of it) with the previous round's model, queries `query_size` images, retrains
and evaluates. The model is reached only through the ``Learner`` interface.
Every random choice (initial set, subsample, random picks, MC-dropout masks,
weight init, shuffling) is drawn from a seed derived from (seed, round), so a
run resumed from round k makes the same choices as one that never stopped.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
from pydantic import BaseModel

from alstudy import strategies
from alstudy.data.preprocess import Split
from alstudy.errors import PipelineError
from alstudy.learning import stopping
from alstudy.learning.evaluation import class_histogram, evaluate
from alstudy.learning.learner import Learner
from alstudy.params import ALParams
from alstudy.strategies import GradientEmbeddings, Need, QueryInputs


@dataclass
class RoundResult:
    round: int
    n_labeled: int
    accuracy: float
    balanced_accuracy: float
    f1_macro: float
    f1_per_class: list[float]
    # Class histogram of the images labelled this round (round 0: the initial set).
    query_class_counts: list[int]
    epochs: int
    train_seconds: float
    score_seconds: float
    eval_seconds: float
    # Cohen's kappa of this round's and the previous round's predictions on the stop set
    # (alstudy/learning/stopping.py); None in round 0 or without a stop set.
    agreement: float | None = None

    @property
    def seconds(self) -> float:
        return self.train_seconds + self.score_seconds + self.eval_seconds


@dataclass
class LoopState:
    # Pool indices in the order they were labelled.
    labeled: list[int] = field(default_factory=list)
    history: list[RoundResult] = field(default_factory=list)
    # The last round's predicted classes on the stop set, for the next round's agreement.
    stop_predictions: list[int] = field(default_factory=list)

    @property
    def next_round(self) -> int:
        return len(self.history)

    def to_dict(self) -> dict:
        return {
            "labeled": self.labeled,
            "history": [asdict(r) for r in self.history],
            "stop_predictions": self.stop_predictions,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "LoopState":
        return cls(
            list(data["labeled"]),
            [RoundResult(**r) for r in data["history"]],
            list(data.get("stop_predictions", [])),
        )


OnRound = Callable[[LoopState, RoundResult, Learner], None]
# Further independent streams from one (seed, round). Purpose 0 (the default) is the seed material of
# the round's query generator and, through round_seed, of weight init and shuffling.
MC_DROPOUT = 1


def round_rng(seed: int, round_: int, purpose: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, round_, purpose]))


def initial_draw(n_pool: int, initial_size: int, seed: int) -> np.ndarray:
    """The round-0 labelled set: `initial_size` pool indices drawn at random, sorted."""
    return np.sort(round_rng(seed, 0).choice(n_pool, size=initial_size, replace=False))


def round_seed(seed: int, round_: int, *purpose: int) -> int:
    return int(np.random.SeedSequence([seed, round_, *purpose]).generate_state(1)[0])


def check_budget(al: ALParams, pool_size: int, dataset: str) -> None:
    if al.budget > pool_size:
        raise PipelineError(
            f"al: initial_size + rounds x query_size = {al.budget} labels, more than the {pool_size}-image "
            f"pool of {dataset}; lower al.rounds, al.query_size or al.initial_size"
        )


def strategy_inputs(
    strategy: strategies.Strategy,
    options: BaseModel,
    learner: Learner,
    pool: Split,
    labeled: list[int],
    candidates: np.ndarray,
    n_instances: int,
    rng: np.random.Generator,
    mc_seed: int,
) -> QueryInputs:
    """Exactly what the strategy declared it needs: one pass over the candidates gives every
    model output (probabilities, embeddings, MC passes); the labelled set is read only when asked."""
    needs = strategy.needs
    fields: dict = {}
    wants_embeddings = bool(needs & {Need.EMBEDDINGS, Need.GRADIENT_EMBEDDINGS})
    mc_passes = options.mc_passes if Need.MC_PROBA in needs else 0
    if needs & {Need.PROBA, Need.MC_PROBA, Need.EMBEDDINGS, Need.GRADIENT_EMBEDDINGS}:
        out = learner.infer(pool.x, candidates, embeddings=wants_embeddings, mc_passes=mc_passes, mc_seed=mc_seed)
        if Need.PROBA in needs:
            fields["proba"] = out.proba
        if Need.MC_PROBA in needs:
            fields["mc_proba"] = out.mc_proba
        if Need.EMBEDDINGS in needs:
            fields["embeddings"] = out.embeddings
        if Need.GRADIENT_EMBEDDINGS in needs:
            fields["gradient_embeddings"] = GradientEmbeddings.from_outputs(out.proba, out.embeddings)
    labeled_rows = np.sort(np.asarray(labeled))
    if Need.LABELED_EMBEDDINGS in needs:
        fields["labeled_embeddings"] = learner.infer(pool.x, labeled_rows, embeddings=True).embeddings
    if Need.LAST_LAYER in needs:
        fields["last_layer"] = learner.last_layer()
    if Need.LABELED_CLASS_COUNTS in needs:
        fields["labeled_class_counts"] = np.bincount(pool.labels[labeled_rows], minlength=pool.y.shape[1])
    return QueryInputs(n_candidates=len(candidates), n_instances=n_instances, rng=rng, options=options, **fields)


@dataclass(frozen=True)
class Selection:
    """What a strategy picked from the candidates, and what it was given to pick with."""

    picks: np.ndarray  # positions in the candidates, in the strategy's order
    inputs: QueryInputs
    score_seconds: float  # computing the strategy's inputs (the model's passes over the candidates)


def select(
    strategy: str,
    options: BaseModel,
    learner: Learner,
    pool: Split,
    labeled: list[int] | np.ndarray,
    candidates: np.ndarray,
    n_instances: int,
    rng: np.random.Generator,
    mc_seed: int,
) -> Selection:
    """The second half of a round, for the study and for a labelling project alike: score the
    candidate rows of the pool with the learner, and let the strategy pick `n_instances` of them."""
    spec = strategies.get(strategy)
    start = time.perf_counter()
    inputs = strategy_inputs(spec, options, learner, pool, list(labeled), candidates, n_instances, rng, mc_seed)
    score_seconds = time.perf_counter() - start
    return Selection(np.asarray(spec.select(inputs)), inputs, score_seconds)


def train(learner: Learner, x: np.ndarray, y: np.ndarray, seed: int, round_: int, from_scratch: bool) -> int:
    """The first half of a round: fit the labelled images (fresh weights when `from_scratch`), with
    the round's seed for weights, shuffling and dropout; return the epochs run."""
    if from_scratch:
        learner.reinitialize(round_seed(seed, round_))
    return learner.fit(x, y, round_seed(seed, round_))


def query(
    strategy: str,
    options: BaseModel,
    learner: Learner,
    pool: Split,
    labeled: list[int],
    al: ALParams,
    seed: int,
    round_: int,
) -> tuple[np.ndarray, float]:
    """Pool indices to label this round, and the seconds spent computing the strategy's inputs."""
    unlabeled = np.setdiff1d(np.arange(len(pool.x)), np.asarray(labeled), assume_unique=True)
    rng = round_rng(seed, round_)
    if al.pool_subsample and al.pool_subsample < len(unlabeled):
        unlabeled = np.sort(rng.choice(unlabeled, size=al.pool_subsample, replace=False))
    selection = select(
        strategy, options, learner, pool, labeled, unlabeled, al.query_size, rng, round_seed(seed, round_, MC_DROPOUT)
    )
    return unlabeled[selection.picks], selection.score_seconds


def run_loop(
    pool: Split,
    test: Split,
    strategy: str,
    al: ALParams,
    learner: Learner,
    seed: int,
    *,
    options: BaseModel | None = None,
    retrain_from_scratch: bool = True,
    state: LoopState | None = None,
    on_round: OnRound | None = None,
    stop_set_size: int = 0,
) -> LoopState:
    """Run rounds 0..al.rounds, continuing from `state` (with its last round's model in `learner`) when given.

    With `stop_set_size`, each round's model also predicts a fixed sample of the pool, and the round
    records how far those predictions agree with the previous round's (stopping.py)."""
    state = state or LoopState()
    watched = stopping.stop_set(len(pool.x), stop_set_size, seed) if stop_set_size else None
    options = options if options is not None else strategies.get(strategy).options()
    pool_labels = pool.labels
    test_labels = test.labels
    n_classes = pool.y.shape[1]

    for round_ in range(state.next_round, al.rounds + 1):
        if round_ == 0:
            new = initial_draw(len(pool.x), al.initial_size, seed)
            score_seconds = 0.0
        else:
            new, score_seconds = query(strategy, options, learner, pool, state.labeled, al, seed, round_)
        state.labeled.extend(int(i) for i in new)

        start = time.perf_counter()
        labeled = np.asarray(state.labeled)
        epochs = train(
            learner,
            np.asarray(pool.x[labeled]),
            np.asarray(pool.y[labeled]),
            seed,
            round_,
            from_scratch=round_ == 0 or retrain_from_scratch,
        )
        train_seconds = time.perf_counter() - start

        start = time.perf_counter()
        predicted = learner.infer(test.x).proba.argmax(axis=1)
        scores = evaluate(test_labels, predicted, n_classes)
        agreement = None
        if watched is not None:
            stop_predictions = learner.infer(pool.x, watched).proba.argmax(axis=1).tolist()
            if state.stop_predictions:
                agreement = stopping.cohen_kappa(state.stop_predictions, stop_predictions)
            state.stop_predictions = stop_predictions
        eval_seconds = time.perf_counter() - start

        result = RoundResult(
            round=round_,
            n_labeled=len(state.labeled),
            accuracy=scores["accuracy"],
            balanced_accuracy=scores["balanced_accuracy"],
            f1_macro=scores["f1_macro"],
            f1_per_class=scores["f1_per_class"],
            query_class_counts=class_histogram(pool_labels[new], n_classes),
            epochs=epochs,
            train_seconds=train_seconds,
            score_seconds=score_seconds,
            eval_seconds=eval_seconds,
            agreement=agreement,
        )
        state.history.append(result)
        if on_round:
            on_round(state, result, learner)
    return state
