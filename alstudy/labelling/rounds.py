"""One round of a labelling project's model, for `label next` and the live Label Studio backend alike.

A round is the study's own (alstudy/learning/loop.py): `train` a fresh CNN on every label so far,
with the project's recipe and the round's seed, then let the strategy score the images not
labelled yet (`select`). `label next` turns the picks into a batch for a person
(alstudy/labelling/project.py); the live backend ranks every unlabelled image of the folder
(`rank_all`), so Label Studio's Data Manager sorts by the strategy's priority
(alstudy/labelling/live.py). Every image comes from the decoded-image cache (uint8,
memory-mapped) and the model streams over it a batch at a time, so memory stays flat with the
folder's size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alstudy import strategies
from alstudy.data.image_cache import ImageCache
from alstudy.data.preprocess import Split, one_hot
from alstudy.learning.evaluation import evaluate
from alstudy.learning.learner import Learner
from alstudy.learning.loop import MC_DROPOUT, round_rng, round_seed, select, train
from alstudy.params import LabelProject, ModelParams, Params
from alstudy.strategies import Need
from alstudy.tracking import metric_names


@dataclass
class TrainedRound:
    """The model of round `number` and the pixels of every image it was given, by part."""

    number: int
    cnn: Learner  # alstudy.learning.model.CNN
    pool: Split  # every image of the round; y one-hot for the known ones, zeros elsewhere
    rows: dict[str, np.ndarray]  # part -> rows of `pool`: "known", then the parts asked for
    classes: list[str]

    @property
    def pixels(self) -> np.ndarray:
        return self.pool.x

    def proba(self, part: str) -> np.ndarray:
        return self.cnn.infer(self.pixels, self.rows[part]).proba


def suggestion_model(model: ModelParams, min_steps: int, n_labelled: int) -> ModelParams:
    """The model params for the suggestions: model.epochs, or more epochs where those are fewer than
    `min_steps` gradient steps over `n_labelled` images (a labelled set of 50 trains 250 epochs, not 10)."""
    steps_per_epoch = max(1, math.ceil(n_labelled / model.batch_size))
    return model.model_copy(update={"epochs": max(model.epochs, math.ceil(min_steps / steps_per_epoch))})


def train_round(
    project: LabelProject, params: Params, known: list[tuple[Path, str]], parts: dict[str, list[Path]], number: int
) -> TrainedRound:
    """Train round `number`'s CNN on the `known` (image, class) pairs, with the images of `parts`
    loaded beside them for the caller to score."""
    # Keras (TensorFlow: seconds to load) only where a model is trained.
    from alstudy.learning.model import CNN, configure

    configure(params.model)  # threads; a bfloat16 run on a CPU without bfloat16 units stops here
    classes = list(project.classes)
    every = {"known": [path for path, _ in known], **parts}
    pixels, all_rows = ImageCache(project.image_size, project.color_mode).rows(
        [f for part in every.values() for f in part]
    )
    rows, start = {}, 0
    for part, files in every.items():
        rows[part], start = all_rows[start : start + len(files)], start + len(files)
    y = np.zeros((len(pixels), len(classes)), np.float32)
    y[rows["known"]] = one_hot(np.array([classes.index(c) for _, c in known]), len(classes))
    cnn = CNN(pixels.shape[1:], len(classes), suggestion_model(params.model, project.min_steps, len(known)))
    train(cnn, pixels[rows["known"]], y[rows["known"]], project.seed, number, from_scratch=True)
    return TrainedRound(number, cnn, Split(pixels, y), rows, classes)


def pick(trained: TrainedRound, project: LabelProject, params: Params, part: str, n: int):
    """The strategy's `n` picks among the rows of `part`, as `select` returns them (its inputs with them)."""
    return select(
        project.strategy,
        params.al.options(project.strategy),
        trained.cnn,
        trained.pool,
        trained.rows["known"],
        trained.rows[part],
        n,
        round_rng(project.seed, trained.number),
        round_seed(project.seed, trained.number, MC_DROPOUT),
    )


def round_metrics(trained: TrainedRound, known: list[tuple[Path, str]], test: list[tuple[Path, str]]) -> dict:
    """What a round logs: the labelled count and class mix, and, with a test folder (its images in the
    round's part "test"), test accuracy and macro-F1."""
    classes = trained.classes
    labels_idx = np.array([classes.index(c) for _, c in known])
    metrics = {
        metric_names.N_LABELED: float(len(known)),
        **metric_names.per_class(
            metric_names.LABELLED,
            metric_names.class_keys(classes),
            [np.sum(labels_idx == c) for c in range(len(classes))],
        ),
    }
    if test:
        truth = np.array([classes.index(c) for _, c in test])
        scores = evaluate(truth, trained.proba("test").argmax(axis=1), len(classes))
        metrics.update(test_accuracy=scores["accuracy"], test_f1_macro=scores["f1_macro"])
    return metrics


@dataclass(frozen=True)
class Ranking:
    """Every candidate's suggestion, the model's confidence in it, and the strategy's priority."""

    suggested: list[str]
    confidence: np.ndarray
    priority: np.ndarray  # higher: the strategy wants it labelled sooner; 0: not ranked this round


def rank_all(trained: TrainedRound, project: LabelProject, params: Params, part: str = "candidates") -> Ranking:
    """The strategy's priority for every image of `part`.

    A strategy that ranks images by a measure (least confidence, entropy, BALD, margin) gives every
    image that measure, turned so that higher comes first (margin: 1 - the gap); `random` a seeded
    uniform draw; a strategy that builds a batch (BADGE, Core-set, ...) its `batch_size` picks, in its
    order of picking, from 1 down, and 0 to the rest (they are ranked again at the next round)."""
    spec = strategies.get(project.strategy)
    n = len(trained.rows[part])
    if spec.score is not None:
        proba, mc_proba = None, None
        if Need.MC_PROBA in spec.needs:
            inputs = pick(trained, project, params, part, 1).inputs  # MC passes over every candidate, seeded
            proba, mc_proba = inputs.proba, inputs.mc_proba
        proba = proba if proba is not None else trained.proba(part)
        measure = np.asarray(spec.score(proba, mc_proba), dtype=np.float64)
        priority = 1.0 - measure if spec.low_first else measure  # 1 - margin: in [0, 1], as the others are >= 0
    elif strategies.canonical(project.strategy) == "random":
        proba = trained.proba(part)
        priority = round_rng(project.seed, trained.number).random(n)
    else:
        selection = pick(trained, project, params, part, min(project.batch_size, n))
        proba = selection.inputs.proba if selection.inputs.proba is not None else trained.proba(part)
        priority = np.zeros(n)
        order = np.asarray(selection.picks)
        priority[order] = (len(order) - np.arange(len(order))) / max(len(order), 1)
    classes = trained.classes
    return Ranking([classes[int(c)] for c in proba.argmax(axis=1)], proba.max(axis=1), priority)
