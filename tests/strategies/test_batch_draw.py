"""Stochastic batch acquisition (Kirsch et al. 2023): score-ranking strategies can draw their batch, each
candidate with a chance that grows with its score, seeded; `top` keeps today's picks."""

import numpy as np
import pytest

from alstudy import strategies
from alstudy.errors import PipelineError
from alstudy.params import parse_params
from alstudy.strategies import QueryInputs
from alstudy.strategies._scores import drawn, top, top_two_margin
from helpers.repo import REPO_ROOT, read_params

DRAWING = ["least_confidence", "margin", "entropy", "bald"]
SCORES = np.array([1.0, 2.0, 3.0, 4.0])
DRAWS = 20_000


def frequencies(batch: str, beta: float = 1.0) -> np.ndarray:
    """How often each of SCORES is drawn alone, over many draws from one seeded generator."""
    rng = np.random.default_rng(0)
    picks = [drawn(SCORES, 1, rng, batch, beta)[0] for _ in range(DRAWS)]
    return np.bincount(picks, minlength=len(SCORES)) / DRAWS


@pytest.mark.parametrize(
    "batch, chance",
    [
        ("power", SCORES / SCORES.sum()),
        ("softmax", np.exp(SCORES) / np.exp(SCORES).sum()),
        ("softrank", (1 / np.array([4.0, 3.0, 2.0, 1.0])) / (1 / np.array([4.0, 3.0, 2.0, 1.0])).sum()),
    ],
)
def test_a_candidates_chance_follows_its_score(batch, chance):
    assert frequencies(batch) == pytest.approx(chance, abs=0.012)


def test_beta_sharpens_the_draw_towards_the_top():
    assert frequencies("power", beta=2.0) == pytest.approx(SCORES**2 / (SCORES**2).sum(), abs=0.012)
    rng = np.random.default_rng(1)
    assert list(drawn(SCORES, 2, rng, "softmax", beta=1000.0)) == list(top(SCORES, 2))


def test_a_draw_is_distinct_sorted_and_reproducible():
    scores = np.random.default_rng(2).uniform(size=500)
    first = drawn(scores, 50, np.random.default_rng(7), "power", 1.0)
    assert len(set(first)) == 50 and list(first) == sorted(first) and first.max() < 500
    assert np.array_equal(first, drawn(scores, 50, np.random.default_rng(7), "power", 1.0))
    assert not np.array_equal(first, drawn(scores, 50, np.random.default_rng(8), "power", 1.0))


def test_power_draws_a_zero_score_only_once_the_rest_are_drawn():
    for seed in range(50):
        assert set(drawn(np.array([0.0, 0.0, 0.5, 2.0]), 3, np.random.default_rng(seed), "power", 1.0)) >= {2, 3}
        assert set(drawn(np.array([0.0, 0.3, 0.5, 2.0]), 3, np.random.default_rng(seed), "power", 1.0)) == {1, 2, 3}


def inputs(name: str, options: dict, seed: int = 0, n: int = 10) -> QueryInputs:
    rng = np.random.default_rng(3)
    proba = rng.dirichlet(np.ones(10) * 0.3, size=200)
    mc = np.stack([rng.dirichlet(np.ones(10) * 0.3, size=200) for _ in range(5)], axis=2)
    return QueryInputs(
        n_candidates=200,
        n_instances=n,
        rng=np.random.default_rng(seed),
        options=strategies.get(name).options.model_validate(options),
        proba=proba,
        mc_proba=mc,
    )


@pytest.mark.parametrize("name", DRAWING)
def test_top_keeps_the_picks_and_a_draw_differs_reproducibly(name):
    select = strategies.get(name).select
    default = select(inputs(name, {}))
    assert np.array_equal(select(inputs(name, {"batch": "top", "beta": 1.0})), default)
    for batch in ("power", "softmax", "softrank"):
        picks = select(inputs(name, {"batch": batch}))
        assert len(set(picks.tolist())) == 10 and np.array_equal(picks, select(inputs(name, {"batch": batch})))
        assert not np.array_equal(picks, select(inputs(name, {"batch": batch}, seed=1)))  # the round's seed


def test_margins_draw_favours_a_small_gap():
    """One candidate with a tiny top-2 gap among confident ones: the draw takes it most often."""
    proba = np.tile([0.9, 0.1] + [0.0] * 8, (50, 1))
    proba[17] = [0.5, 0.49, 0.01] + [0.0] * 7
    assert top_two_margin(proba)[17] == pytest.approx(0.01)
    spec, taken = strategies.get("margin"), 0
    for seed in range(300):
        options = spec.options.model_validate({"batch": "softmax", "beta": 10.0})
        query = QueryInputs(
            n_candidates=50, n_instances=1, rng=np.random.default_rng(seed), options=options, proba=proba
        )
        taken += int(spec.select(query)[0] == 17)
    assert taken > 300 * 0.9  # exp(10 x 0.99) against 49 x exp(10 x 0.2): about 98%


def test_an_unknown_draw_is_refused_in_one_line():
    raw = read_params(REPO_ROOT)
    raw["al"]["strategy_options"]["margin"] = {"batch": "gumbel"}
    with pytest.raises(PipelineError) as refused:
        parse_params(raw, "params.yaml")
    message = str(refused.value)
    assert "\n" not in message and "al.strategy_options" in message and "margin.batch" in message
