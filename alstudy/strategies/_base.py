"""What every strategy shares: what it can ask for, what it is given, and the registry it joins.

A strategy is a pure function of a ``QueryInputs``: the outputs of the model it declared it
needs (class probabilities, MC-dropout passes, embeddings, ...), the number of instances to
query, a seeded generator and its validated options. It returns indices into the candidates
and keeps no state. The loop computes exactly what the strategy declared, in one batched pass
over the candidates, so no strategy ever scores the pool itself.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class Need(enum.Enum):
    """What a strategy can ask the loop to compute for the candidates (and the labelled set)."""

    PROBA = "class probabilities of the candidates (N x C)"
    MC_PROBA = "class probabilities from T MC-dropout passes (N x C x T, Baal's order)"
    EMBEDDINGS = "penultimate-layer activations of the candidates (N x H)"
    LABELED_EMBEDDINGS = "penultimate-layer activations of the labelled set (L x H)"
    GRADIENT_EMBEDDINGS = "last-layer gradient embeddings for the predicted label (N x CH, factored)"
    LABELED_CLASS_COUNTS = "how many labelled images each class has (C)"
    LAST_LAYER = "the output layer's weights and bias (H x C, C), the class boundaries in embedding space"


class NoOptions(BaseModel):
    """A strategy's options, validated from al.strategy_options.<name>; this one takes none."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class BatchOptions(NoOptions):
    """How a strategy that ranks candidates by a score draws its batch (Kirsch et al. 2023, "Stochastic batch
    acquisition"): the top scores, or a draw without replacement in which a candidate's chance grows with its
    score, so that a batch does not spend itself on near-duplicates of the single most uncertain image."""

    batch: Literal["top", "power", "softmax", "softrank"] = Field(
        "top",
        description=(
            "`top`: the highest scores; `power`: drawn with chance proportional to score^beta; `softmax`: to "
            "exp(beta x score); `softrank`: to rank^-beta (rank 1 the highest score). Seeded by the round"
        ),
    )
    beta: float = Field(1.0, gt=0, description="the draw's sharpness (Kirsch et al. 2023 use 1); large: towards `top`")


@dataclass(frozen=True)
class GradientEmbeddings:
    """g_i = (p_i - onehot(argmax p_i)) (x) h_i, the gradient of the cross-entropy loss for the predicted
    label with respect to the last layer's weights (Ash et al. 2020), kept as its two factors.

    <g_i, g_j> = <s_i, s_j> <h_i, h_j>, so distances cost O(C + H) per pair instead of O(C x H),
    and the N x (C x H) matrix is never built.
    """

    scale: np.ndarray  # N x C: p - onehot(predicted label)
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
    last_layer: tuple[np.ndarray, np.ndarray] | None = None  # (weights H x C, bias C)


# A per-image score from the model's outputs: (probabilities N x C, MC-dropout passes N x C x T or None).
Score = Callable[[np.ndarray, "np.ndarray | None"], np.ndarray]


@dataclass(frozen=True)
class Strategy:
    select: Callable[[QueryInputs], np.ndarray]
    needs: frozenset[Need]
    options: type[BaseModel]
    summary: str
    # What the labelling page shows beside each picked image: the strategy's own uncertainty measure, for
    # strategies that rank images by one; None for those that build a batch (their order of picking is shown).
    score: Score | None = None
    # Whether the measure's lowest values are the images the strategy wants first (margin: the smallest gap).
    low_first: bool = False


# The registry: name -> Strategy, filled by @register as the package imports each strategy's module.
STRATEGIES: dict[str, Strategy] = {}
# Other accepted names: same function, same numbers.
ALIASES = {"uncertainty": "least_confidence"}


def register(
    name: str,
    *,
    needs: frozenset[Need] | set[Need] = frozenset(),
    options: type[BaseModel] = NoOptions,
    summary: str,
    score: Score | None = None,
    low_first: bool = False,
) -> Callable[[Callable[[QueryInputs], np.ndarray]], Callable[[QueryInputs], np.ndarray]]:
    """Register a selection function under `name`, with what it needs, its options model, a one-line rule
    and, for a strategy that ranks images by an uncertainty measure, that measure per image (`low_first`:
    its lowest values first)."""

    def decorator(select: Callable[[QueryInputs], np.ndarray]) -> Callable[[QueryInputs], np.ndarray]:
        if name in STRATEGIES or name in ALIASES:
            raise ValueError(f"strategy {name!r} is registered twice")
        STRATEGIES[name] = Strategy(select, frozenset(needs), options, summary, score, low_first)
        return select

    return decorator


def names() -> tuple[str, ...]:
    """Every accepted name: the registry's, then the aliases."""
    return (*STRATEGIES, *ALIASES)


def get(name: str) -> Strategy:
    return STRATEGIES[ALIASES.get(name, name)]


def canonical(name: str) -> str:
    return ALIASES.get(name, name)
