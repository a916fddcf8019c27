"""Each strategy picks what its definition says, on hand-made probabilities."""
import numpy as np
import pytest

from pipeline.strategies import STRATEGIES


def _row(*top, n_classes=10):
    rest = (1.0 - sum(top)) / (n_classes - len(top))
    return list(top) + [rest] * (n_classes - len(top))


# Rows built so that every uncertainty measure has a different winner.
PROBA = np.array([
    _row(0.5, 0.5),          # smallest top-2 gap (0.0): margin's pick
    _row(0.4, 0.3, 0.3),     # lowest top probability (0.4): least confidence's pick
    _row(0.46),              # flattest tail, highest entropy (~1.88 nats): entropy's pick
    _row(0.9, 0.1),          # confident
    _row(0.7, 0.2, 0.1),     # fairly confident
], dtype=np.float64)


@pytest.mark.parametrize("name, expected", [("margin", 0), ("uncertainty", 1), ("entropy", 2)])
def test_uncertainty_strategies_pick_their_definition(name, expected):
    picked = STRATEGIES[name](PROBA, 1, np.random.default_rng(0))
    assert picked.tolist() == [expected]


def _reference(name, proba):
    top2 = np.sort(proba, axis=1)[:, ::-1][:, :2]
    entropy = -(proba * np.log(np.clip(proba, 1e-12, None))).sum(axis=1)
    score = {"uncertainty": -top2[:, 0], "margin": -(top2[:, 0] - top2[:, 1]), "entropy": entropy}[name]
    return set(np.argsort(-score, kind="stable")[:5].tolist())


@pytest.mark.parametrize("name", ["uncertainty", "margin", "entropy"])
def test_top_k_matches_a_reference_on_random_probabilities(name):
    rng = np.random.default_rng(1)
    proba = rng.dirichlet(np.ones(10) * 0.5, size=200)
    picked = STRATEGIES[name](proba, 5, rng)
    assert set(picked.tolist()) == _reference(name, proba)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_returns_distinct_in_range_indices(name):
    proba = np.random.default_rng(2).dirichlet(np.ones(10), size=50)
    picked = STRATEGIES[name](proba, 7, np.random.default_rng(3))
    assert len(picked) == 7 == len(set(picked.tolist()))
    assert picked.min() >= 0 and picked.max() < 50


def test_random_is_seeded_and_ignores_scores():
    empty = np.empty((1000, 0))
    a = STRATEGIES["random"](empty, 20, np.random.default_rng(5))
    b = STRATEGIES["random"](empty, 20, np.random.default_rng(5))
    c = STRATEGIES["random"](empty, 20, np.random.default_rng(6))
    assert a.tolist() == b.tolist() != c.tolist()


def test_random_is_uniform_over_the_pool():
    counts = np.zeros(10)
    rng = np.random.default_rng(7)
    for _ in range(5000):
        counts[STRATEGIES["random"](np.empty((10, 0)), 1, rng)] += 1
    expected = 500
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 27.9  # p = 0.001 for 9 degrees of freedom


def test_params_accept_exactly_the_registered_strategies():
    # params.py names them without importing modAL/TensorFlow; the two lists must not drift apart.
    from pipeline.params import STRATEGY_NAMES

    assert list(STRATEGIES) == list(STRATEGY_NAMES)
