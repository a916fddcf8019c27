"""The loop on a fake learner: it computes exactly what each strategy declared and hands on its picks."""

from __future__ import annotations

import numpy as np
import pytest

from alstudy import strategies
from alstudy.learning.loop import MC_DROPOUT, round_rng, round_seed, run_loop
from alstudy.strategies import GradientEmbeddings, QueryInputs
from alstudy.strategies.bald import BaldOptions
from helpers.fakes import N_CLASSES, N_POOL, PASSES, POOL, TEST, FakeLearner, al_params


def options(name: str):
    spec = strategies.get(name)
    return spec.options.model_validate({"mc_passes": PASSES} if spec.options is BaldOptions else {})


def expected_round_one(name: str, fake: FakeLearner, seed: int) -> list[int]:
    """What round 1 must label: the strategy applied to the fake's outputs for the unlabelled pool."""
    initial = np.sort(round_rng(seed, 0).choice(N_POOL, size=12, replace=False))
    candidates = np.setdiff1d(np.arange(N_POOL), initial)
    fields = {
        "proba": fake.proba[candidates],
        "mc_proba": fake.mc_proba[candidates],
        "embeddings": fake.embeddings[candidates],
        "labeled_embeddings": fake.embeddings[initial],
        "gradient_embeddings": GradientEmbeddings.from_outputs(fake.proba[candidates], fake.embeddings[candidates]),
        "labeled_class_counts": np.bincount(POOL.labels[initial], minlength=N_CLASSES),
        "last_layer": (fake.weights, fake.bias),
    }
    inputs = QueryInputs(
        n_candidates=len(candidates), n_instances=6, rng=round_rng(seed, 1), options=options(name), **fields
    )
    return candidates[strategies.get(name).select(inputs)].tolist()


@pytest.mark.parametrize("name", list(strategies.STRATEGIES))
def test_the_loop_hands_on_each_strategys_picks(name):
    fake = FakeLearner()
    state = run_loop(POOL, TEST, name, al_params(name), fake, seed=3, options=options(name))
    round_one = sorted(state.labeled[12:18])
    assert round_one == sorted(expected_round_one(name, fake, 3))
    if strategies.canonical(name) != "random":
        assert round_one != sorted(expected_round_one("random", fake, 3)), "the loop ran random instead"
    assert len(set(state.labeled)) == len(state.labeled) == 24


@pytest.mark.parametrize("name", list(strategies.STRATEGIES))
def test_the_loop_computes_exactly_what_the_strategy_declared_in_one_pass(name):
    fake = FakeLearner()
    run_loop(POOL, TEST, name, al_params(name), fake, seed=0, options=options(name))
    needs = strategies.get(name).needs
    pool_passes = [c for c in fake.calls if c["call"] == "infer" and max(c["ids"]) < N_POOL]
    test_passes = [c for c in fake.calls if c["call"] == "infer" and min(c["ids"]) >= N_POOL]
    assert len(test_passes) == 3  # one evaluation per round
    wants_labeled = strategies.Need.LABELED_EMBEDDINGS in needs
    model_needs = needs - {strategies.Need.LABELED_EMBEDDINGS, strategies.Need.LABELED_CLASS_COUNTS}
    # Per query round: one pass over the candidates if the strategy needs any model output, plus one
    # over the labelled set if it asked for its embeddings. Random asks for nothing.
    assert len(pool_passes) == 2 * (bool(model_needs) + wants_labeled)
    for call in pool_passes:
        candidates_pass = len(call["ids"]) > 24  # the labelled set never exceeds 24 images here
        if candidates_pass:
            assert call["embeddings"] == bool(needs & {strategies.Need.EMBEDDINGS, strategies.Need.GRADIENT_EMBEDDINGS})
            assert call["mc_passes"] == (PASSES if strategies.Need.MC_PROBA in needs else 0)
        else:
            assert wants_labeled and call["embeddings"] and call["mc_passes"] == 0


def test_rounds_draw_different_candidates_and_mc_masks():
    # Random picks positions in the candidate list from the round's generator: if the generator
    # ignored the round, rounds 1 and 2 would take the same positions.
    fake = FakeLearner()
    al = al_params("random")
    state = run_loop(POOL, TEST, "random", al, fake, seed=1)
    initial = sorted(state.labeled[:12])
    round_one, round_two = sorted(state.labeled[12:18]), sorted(state.labeled[18:24])
    first = np.setdiff1d(np.arange(N_POOL), initial)
    second = np.setdiff1d(first, round_one)
    assert np.searchsorted(first, round_one).tolist() != np.searchsorted(second, round_two).tolist()

    # With a pool subsample, each round scores a different seeded subset; BALD's masks change per round.
    fake = FakeLearner()
    run_loop(POOL, TEST, "bald", al_params("bald", pool_subsample=20), fake, seed=1, options=options("bald"))
    scored = [c for c in fake.calls if c["call"] == "infer" and c["mc_passes"]]
    assert len(scored) == 2 and all(len(c["ids"]) == 20 for c in scored)
    assert scored[0]["ids"] != scored[1]["ids"]
    assert [c["mc_seed"] for c in scored] == [round_seed(1, 1, MC_DROPOUT), round_seed(1, 2, MC_DROPOUT)]
    assert scored[0]["mc_seed"] != scored[1]["mc_seed"]


def test_same_seed_same_picks_other_seed_other_picks():
    runs = [run_loop(POOL, TEST, "badge", al_params("badge"), FakeLearner(), seed=s).labeled for s in (4, 4, 5)]
    assert runs[0] == runs[1] != runs[2]


def test_every_round_reinitialises_and_fits_on_the_labelled_set():
    fake = FakeLearner()
    run_loop(POOL, TEST, "margin", al_params("margin"), fake, seed=2)
    fits = [c for c in fake.calls if c["call"] == "fit"]
    assert [c["n"] for c in fits] == [12, 18, 24]
    assert len({c["seed"] for c in fits}) == 3
    assert sum(c["call"] == "reinitialize" for c in fake.calls) == 3
    warm = FakeLearner()
    run_loop(POOL, TEST, "margin", al_params("margin"), warm, seed=2, retrain_from_scratch=False)
    assert sum(c["call"] == "reinitialize" for c in warm.calls) == 1


def test_each_round_and_purpose_has_its_own_random_stream():
    draws = {(r, p): round_rng(7, r, p).random(4).tolist() for r in (0, 1, 2) for p in (0, MC_DROPOUT)}
    assert len({tuple(v) for v in draws.values()}) == len(draws)
    assert round_rng(7, 2).random(4).tolist() == draws[(2, 0)]  # and the same stream every time
    assert len({round_seed(7, r) for r in range(5)}) == 5


def test_each_round_draws_its_candidates_from_its_own_generator_and_never_a_labelled_image():
    fake = FakeLearner()
    al = al_params("margin", pool_subsample=20, rounds=3)
    state = run_loop(POOL, TEST, "margin", al, fake, seed=3)
    scored = [c["ids"] for c in fake.calls if c["call"] == "infer" and c["ids"] and max(c["ids"]) < N_POOL]
    assert len(scored) == al.rounds
    for round_, ids in enumerate(scored, start=1):
        labelled = state.labeled[: al.initial_size + (round_ - 1) * al.query_size]
        unlabelled = np.setdiff1d(np.arange(N_POOL), labelled)
        assert not set(ids) & set(labelled), f"round {round_} scored labelled images"
        # round r's own generator, drawn over what is unlabelled in round r (not round 1's, not the whole pool)
        assert ids == np.sort(round_rng(3, round_).choice(unlabelled, size=20, replace=False)).tolist(), round_
