"""Query strategies: one registry from name to a selection rule, what it needs, and its options.

A strategy is a pure function of a ``QueryInputs``: the outputs of the model it
declared it needs (class probabilities, MC-dropout passes, embeddings, ...), the
number of instances to query, a seeded generator and its validated options. It
returns indices into the candidates and keeps no state. The loop computes exactly
what the strategy declared, in one batched pass over the candidates, so no
strategy ever scores the pool itself.

Adding a strategy: write its function and add one ``Strategy`` entry to
``STRATEGIES``. Params validation, the stage's choices, plot colours, the
benchmark and the README table all read this registry.

No strategy builds an N x N matrix: the distance-based ones keep one vector of
N distances and update it per pick, and BADGE's gradient embeddings stay
factored (probabilities x penultimate activations) instead of being expanded.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable

import numpy as np
from modAL.uncertainty import entropy_sampling, margin_sampling, uncertainty_sampling
from pydantic import BaseModel, ConfigDict, Field


class Need(enum.Enum):
    """What a strategy can ask the loop to compute for the candidates (and the labelled set)."""
    PROBA = "class probabilities of the candidates (N x C)"
    MC_PROBA = "class probabilities from T MC-dropout passes (N x C x T, Baal's order)"
    EMBEDDINGS = "penultimate-layer activations of the candidates (N x H)"
    LABELED_EMBEDDINGS = "penultimate-layer activations of the labelled set (L x H)"
    GRADIENT_EMBEDDINGS = "last-layer gradient embeddings for the predicted label (N x CH, factored)"
    LABELED_CLASS_COUNTS = "how many labelled images each class has (C)"


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class BaldOptions(NoOptions):
    # Stochastic forward passes per candidate; Gal et al. (2017) used 20 on MNIST.
    mc_passes: int = Field(20, ge=2)


class ClassBalancedOptions(NoOptions):
    # Class c's share of a batch is proportional to (labelled images of c + 1) ** -power:
    # 0 spreads the batch evenly over the predicted classes, 1 in inverse proportion to their counts.
    power: float = Field(1.0, ge=0)


@dataclass(frozen=True)
class GradientEmbeddings:
    """g_i = (p_i - onehot(argmax p_i)) (x) h_i, the gradient of the cross-entropy loss for the predicted
    label with respect to the last layer's weights (Ash et al. 2020), kept as its two factors.

    <g_i, g_j> = <s_i, s_j> <h_i, h_j>, so distances cost O(C + H) per pair instead of O(C x H),
    and the N x (C x H) matrix is never built.
    """
    scale: np.ndarray   # N x C: p - onehot(predicted label)
    hidden: np.ndarray  # N x H: penultimate activations

    @classmethod
    def from_outputs(cls, proba: np.ndarray, hidden: np.ndarray) -> "GradientEmbeddings":
        scale = np.array(proba, dtype=np.float64)
        scale[np.arange(len(scale)), scale.argmax(axis=1)] -= 1.0
        return cls(scale, np.asarray(hidden, dtype=np.float64))

    def __len__(self) -> int:
        return len(self.scale)

    def sq_norms(self) -> np.ndarray:
        return np.einsum("ij,ij->i", self.scale, self.scale) * np.einsum("ij,ij->i", self.hidden, self.hidden)

    def dot_with(self, i: int) -> np.ndarray:
        return (self.scale @ self.scale[i]) * (self.hidden @ self.hidden[i])

    def dense(self) -> np.ndarray:
        """The N x (C x H) embeddings written out: for tests and small pools only."""
        return np.einsum("ic,ih->ich", self.scale, self.hidden).reshape(len(self), -1)


@dataclass(frozen=True)
class QueryInputs:
    n_candidates: int
    n_instances: int
    rng: np.random.Generator
    options: BaseModel = NoOptions()
    proba: np.ndarray | None = None
    mc_proba: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    labeled_embeddings: np.ndarray | None = None
    gradient_embeddings: GradientEmbeddings | None = None
    labeled_class_counts: np.ndarray | None = None


@dataclass(frozen=True)
class Strategy:
    select: Callable[[QueryInputs], np.ndarray]
    needs: frozenset[Need]
    options: type[BaseModel]
    summary: str


# --------------------------------------------------------------------------- uncertainty (modAL)

class _PrecomputedProba:
    """Stands in for a classifier in modAL: X is a vector of row numbers into the probabilities."""

    def __init__(self, proba: np.ndarray):
        self.proba = proba

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        return self.proba[rows]


def _from_modal(sampling_function) -> Callable[[QueryInputs], np.ndarray]:
    def select(inputs: QueryInputs) -> np.ndarray:
        rows = np.arange(len(inputs.proba))
        # random_tie_break=False keeps modAL off numpy's global generator: picks depend only on proba.
        query_idx, _ = sampling_function(_PrecomputedProba(inputs.proba), rows, n_instances=inputs.n_instances)
        return np.sort(np.asarray(query_idx))

    select.__name__ = sampling_function.__name__
    select.__doc__ = (f"modAL's {sampling_function.__name__} on the probabilities the loop computed "
                      "(uncertainty sampling as surveyed by Settles 2009).")
    return select


def random_sampling(inputs: QueryInputs) -> np.ndarray:
    """Uniform without replacement over the candidates: the baseline every other strategy is measured
    against. It needs nothing from the model, so the loop scores nothing for it."""
    return np.sort(inputs.rng.choice(inputs.n_candidates, size=inputs.n_instances, replace=False))


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n highest scores; ties go to the lower index."""
    return np.sort(np.argsort(-scores, kind="stable")[:n])


def entropy(proba: np.ndarray, axis: int = 1) -> np.ndarray:
    return -np.sum(proba * np.log(np.clip(proba, 1e-12, None)), axis=axis)


# --------------------------------------------------------------------------- beyond uncertainty

def bald(inputs: QueryInputs) -> np.ndarray:
    """BALD: mutual information between the prediction and the weights, estimated from T MC-dropout
    passes (Houlsby et al. 2011; Gal et al. 2017): H[mean_t p_t] - mean_t H[p_t]. High where the
    passes disagree; zero where every pass is equally unsure in the same way."""
    mc = np.asarray(inputs.mc_proba, dtype=np.float64)  # N x C x T
    mutual_information = entropy(mc.mean(axis=2)) - entropy(mc, axis=1).mean(axis=1)
    return _top(mutual_information, inputs.n_instances)


def badge(inputs: QueryInputs) -> np.ndarray:
    """BADGE (Ash et al. 2020): k-means++ seeding on last-layer gradient embeddings, so the batch is
    both uncertain (long gradients) and diverse (far apart). The first pick is the longest gradient,
    as in the authors' code; each next one is drawn with probability proportional to its squared
    distance from the nearest pick, so an exact duplicate of a pick is never drawn."""
    g = inputs.gradient_embeddings
    norms = g.sq_norms()
    first = int(np.argmax(norms))
    picks = [first]
    nearest = _sq_distances(norms, norms[first], g.dot_with(first))
    while len(picks) < inputs.n_instances:
        total = nearest.sum()
        if total > 0:
            nxt = int(inputs.rng.choice(len(g), p=nearest / total))
        else:  # every candidate left duplicates a pick: fall back to uniform over the rest
            rest = np.setdiff1d(np.arange(len(g)), picks)
            nxt = int(inputs.rng.choice(rest))
        picks.append(nxt)
        nearest = np.minimum(nearest, _sq_distances(norms, norms[nxt], g.dot_with(nxt)))
        nearest[picks] = 0.0
    return np.sort(np.asarray(picks))


def coreset(inputs: QueryInputs) -> np.ndarray:
    """Core-set (Sener and Savarese 2018), k-center greedy on penultimate embeddings: the labelled set
    is the first set of centres, and each pick is the candidate farthest from every centre so far."""
    x = np.asarray(inputs.embeddings, dtype=np.float64)
    norms = np.einsum("ij,ij->i", x, x)
    nearest = min_sq_distances(x, np.asarray(inputs.labeled_embeddings, dtype=np.float64))
    picks = []
    for _ in range(inputs.n_instances):
        nxt = int(np.argmax(nearest))
        picks.append(nxt)
        nearest = np.minimum(nearest, _sq_distances(norms, norms[nxt], x @ x[nxt]))
        nearest[nxt] = -1.0  # never again, even when every distance left is 0
    return np.sort(np.asarray(picks))


def class_balanced(inputs: QueryInputs) -> np.ndarray:
    """This project's imbalance-aware strategy. The batch is shared out over the classes the model
    predicts for the candidates, in proportion to (labelled count + 1) ** -power, so classes that are
    rare in the labelled set get more of it (D'Hondt apportionment: each slot goes to the class with
    the highest weight / (slots taken + 1); a class with no candidates left drops out). Within a class,
    candidates are taken by margin, smallest first."""
    proba = np.asarray(inputs.proba)
    counts = np.asarray(inputs.labeled_class_counts, dtype=np.float64)
    weights = (counts + 1.0) ** -inputs.options.power
    predicted = proba.argmax(axis=1)
    top2 = np.sort(proba, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    queues = [np.flatnonzero(predicted == c) for c in range(proba.shape[1])]
    queues = [q[np.argsort(margin[q], kind="stable")] for q in queues]
    taken = np.zeros(len(queues), dtype=np.int64)
    picks = []
    while len(picks) < inputs.n_instances:
        open_ = np.array([taken[c] < len(q) for c, q in enumerate(queues)])
        priority = np.where(open_, weights / (taken + 1), -np.inf)
        c = int(np.argmax(priority))
        picks.append(int(queues[c][taken[c]]))
        taken[c] += 1
    return np.sort(np.asarray(picks))


# --------------------------------------------------------------------------- distances

def _sq_distances(norms: np.ndarray, norm_j: float, dots_j: np.ndarray) -> np.ndarray:
    """||x_i - x_j||^2 for every i from norms and dot products; rounding below zero is clipped."""
    return np.maximum(norms + norm_j - 2.0 * dots_j, 0.0)


def min_sq_distances(x: np.ndarray, centres: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """For each row of x, the squared distance to its nearest centre, in chunks of both, so memory
    stays at chunk x chunk however large the pool and the labelled set are."""
    x_norms = np.einsum("ij,ij->i", x, x)
    c_norms = np.einsum("ij,ij->i", centres, centres)
    nearest = np.full(len(x), np.inf)
    for i in range(0, len(x), chunk):
        block = x[i:i + chunk]
        for j in range(0, len(centres), chunk):
            d = x_norms[i:i + chunk, None] + c_norms[None, j:j + chunk] - 2.0 * block @ centres[j:j + chunk].T
            nearest[i:i + chunk] = np.minimum(nearest[i:i + chunk], d.min(axis=1))
    return np.maximum(nearest, 0.0)


# --------------------------------------------------------------------------- the registry

_P = frozenset({Need.PROBA})
STRATEGIES: dict[str, Strategy] = {
    "random": Strategy(random_sampling, frozenset(), NoOptions,
                       "uniform over the candidates: the baseline"),
    "least_confidence": Strategy(_from_modal(uncertainty_sampling), _P, NoOptions,
                                 "lowest top-class probability (modAL's uncertainty_sampling)"),
    "margin": Strategy(_from_modal(margin_sampling), _P, NoOptions,
                       "smallest gap between the two most likely classes (modAL)"),
    "entropy": Strategy(_from_modal(entropy_sampling), _P, NoOptions,
                        "highest entropy of the class probabilities (modAL)"),
    "bald": Strategy(bald, frozenset({Need.MC_PROBA}), BaldOptions,
                     "mutual information from MC-dropout passes (Houlsby et al. 2011; Gal et al. 2017)"),
    "badge": Strategy(badge, frozenset({Need.GRADIENT_EMBEDDINGS}), NoOptions,
                      "k-means++ seeding on last-layer gradient embeddings (Ash et al. 2020)"),
    "coreset": Strategy(coreset, frozenset({Need.EMBEDDINGS, Need.LABELED_EMBEDDINGS}), NoOptions,
                        "k-center greedy on penultimate embeddings (Sener and Savarese 2018)"),
    "class_balanced": Strategy(class_balanced, frozenset({Need.PROBA, Need.LABELED_CLASS_COUNTS}),
                               ClassBalancedOptions,
                               "batch shared over predicted classes, rare-in-labelled first; margin within"),
}
# Other accepted names: same function, same numbers.
ALIASES = {"uncertainty": "least_confidence"}


def names() -> tuple[str, ...]:
    """Every accepted name: the registry's, then the aliases."""
    return (*STRATEGIES, *ALIASES)


def get(name: str) -> Strategy:
    return STRATEGIES[ALIASES.get(name, name)]


def canonical(name: str) -> str:
    return ALIASES.get(name, name)
