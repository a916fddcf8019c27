"""Each strategy picks what its definition says, on small hand-made inputs whose right answer is known."""

import numpy as np
import pytest

from alstudy import strategies
from alstudy.errors import PipelineError
from alstudy.strategies import STRATEGIES, GradientEmbeddings, Need, QueryInputs, min_sq_distances


def _row(*top, n_classes=10):
    rest = (1.0 - sum(top)) / (n_classes - len(top))
    return list(top) + [rest] * (n_classes - len(top))


# Rows built so that every uncertainty measure has a different winner.
PROBA = np.array(
    [
        _row(0.5, 0.5),  # smallest top-2 gap (0.0): margin's pick
        _row(0.4, 0.3, 0.3),  # lowest top probability (0.4): least confidence's pick
        _row(0.46),  # flattest tail, highest entropy (~1.88 nats): entropy's pick
        _row(0.9, 0.1),  # confident
        _row(0.7, 0.2, 0.1),  # fairly confident
    ],
    dtype=np.float64,
)


def select(name: str, n: int, seed: int = 0, options: dict | None = None, **fields) -> list[int]:
    spec = strategies.get(name)
    # One row per candidate in these fields; the labelled set's and the output layer's have other lengths.
    per_candidate = ("proba", "mc_proba", "embeddings", "gradient_embeddings")
    n_candidates = len(next(fields[key] for key in per_candidate if fields.get(key) is not None))
    inputs = QueryInputs(
        n_candidates=n_candidates,
        n_instances=n,
        rng=np.random.default_rng(seed),
        options=spec.options.model_validate(options or {}),
        **fields,
    )
    return spec.select(inputs).tolist()


def random_inputs(
    n: int, seed: int, n_classes: int = 10, hidden: int = 6, passes: int = 5, n_labeled: int = 12
) -> dict:
    """Every input any strategy can ask for, random but well-formed."""
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(n_classes), size=n)
    embeddings = rng.normal(size=(n, hidden))
    return {
        "proba": proba,
        "embeddings": embeddings,
        "mc_proba": rng.dirichlet(np.ones(n_classes), size=(n, passes)).transpose(0, 2, 1),
        "labeled_embeddings": rng.normal(size=(n_labeled, hidden)),
        "gradient_embeddings": GradientEmbeddings.from_outputs(proba, embeddings),
        "labeled_class_counts": rng.integers(0, 20, size=n_classes),
        "last_layer": (rng.normal(size=(hidden, n_classes)), rng.normal(size=n_classes)),
    }


def inputs_for(name: str, everything: dict) -> dict:
    """Only the fields the strategy declared: a strategy that reads more than it asked for fails here."""
    keys = {
        Need.PROBA: "proba",
        Need.MC_PROBA: "mc_proba",
        Need.EMBEDDINGS: "embeddings",
        Need.LABELED_EMBEDDINGS: "labeled_embeddings",
        Need.GRADIENT_EMBEDDINGS: "gradient_embeddings",
        Need.LABELED_CLASS_COUNTS: "labeled_class_counts",
        Need.LAST_LAYER: "last_layer",
    }
    return {keys[need]: everything[keys[need]] for need in strategies.get(name).needs}


# --------------------------------------------------------------------------- uncertainty


@pytest.mark.parametrize("name, expected", [("margin", 0), ("least_confidence", 1), ("uncertainty", 1), ("entropy", 2)])
def test_uncertainty_strategies_pick_their_definition(name, expected):
    assert select(name, 1, proba=PROBA) == [expected]


def _reference(name, proba):
    top2 = np.sort(proba, axis=1)[:, ::-1][:, :2]
    entropy = -(proba * np.log(np.clip(proba, 1e-12, None))).sum(axis=1)
    score = {"least_confidence": -top2[:, 0], "margin": -(top2[:, 0] - top2[:, 1]), "entropy": entropy}[name]
    return set(np.argsort(-score, kind="stable")[:5].tolist())


@pytest.mark.parametrize("name", ["least_confidence", "margin", "entropy"])
def test_top_k_matches_a_reference_on_random_probabilities(name):
    proba = np.random.default_rng(1).dirichlet(np.ones(10) * 0.5, size=200)
    assert set(select(name, 5, proba=proba)) == _reference(name, proba)


def test_uncertainty_is_least_confidence_under_another_name():
    proba = np.random.default_rng(4).dirichlet(np.ones(10), size=300)
    assert select("uncertainty", 20, proba=proba) == select("least_confidence", 20, proba=proba)
    assert strategies.get("uncertainty") is STRATEGIES["least_confidence"]


# --------------------------------------------------------------------------- every strategy


@pytest.mark.parametrize("name", strategies.names())
def test_every_strategy_returns_distinct_in_range_indices(name):
    fields = inputs_for(name, random_inputs(50, seed=2))
    picked = select(name, 7, seed=3, **fields) if fields else select(name, 7, seed=3, proba=np.empty((50, 0)))
    assert len(picked) == 7 == len(set(picked))
    assert min(picked) >= 0 and max(picked) < 50


@pytest.mark.parametrize("name", strategies.names())
def test_every_strategy_is_deterministic_given_its_inputs_and_seed(name):
    fields = inputs_for(name, random_inputs(80, seed=5)) or {"proba": np.empty((80, 0))}
    assert select(name, 10, seed=8, **fields) == select(name, 10, seed=8, **fields)


def test_random_is_seeded_and_ignores_scores():
    empty = np.empty((1000, 0))
    a, b, c = (select("random", 20, seed=s, proba=empty) for s in (5, 5, 6))
    assert a == b != c


def test_random_is_uniform_over_the_pool():
    counts = np.zeros(10)
    rng = np.random.default_rng(7)
    for _ in range(5000):
        inputs = QueryInputs(n_candidates=10, n_instances=1, rng=rng)
        counts[STRATEGIES["random"].select(inputs)] += 1
    expected = 500
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 27.9  # p = 0.001 for 9 degrees of freedom


# --------------------------------------------------------------------------- BALD


def test_bald_prefers_disagreeing_passes_over_uniform_uncertainty():
    passes, n_classes = 4, 3
    uniform = np.full((n_classes, passes), 1 / n_classes)  # unsure the same way every pass
    disagree = np.eye(n_classes)[:, [0, 1, 2, 0]] * 0.9 + 0.1 / n_classes  # confident, each pass elsewhere
    agree = np.tile(np.array([[0.9], [0.05], [0.05]]), (1, passes))  # confident and consistent
    mc = np.stack([uniform, agree, disagree, uniform, agree])
    assert select("bald", 1, mc_proba=mc) == [2]
    # The uniform rows have the highest entropy of the mean, yet no mutual information.
    assert select("entropy", 1, proba=mc.mean(axis=2)) == [0]
    assert select("bald", 2, mc_proba=np.stack([uniform, disagree, agree, disagree * 0.5 + uniform * 0.5])) == [1, 3]


def test_bald_mutual_information_matches_a_hand_computed_value():
    # Two passes, each certain of a different class: MI = H([.5, .5]) - 0 = ln 2.
    mc = np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.5, 0.5], [0.5, 0.5]]])
    mean_entropy = -np.sum(mc.mean(axis=2) * np.log(np.clip(mc.mean(axis=2), 1e-12, None)), axis=1)
    assert mean_entropy[0] == pytest.approx(np.log(2))
    assert select("bald", 1, mc_proba=mc) == [0]


# --------------------------------------------------------------------------- core-set


def test_coreset_picks_the_candidate_farthest_from_every_centre():
    labeled = np.array([[0.0, 0.0], [10.0, 0.0]])
    candidates = np.array(
        [
            [1.0, 0.0],  # 1 from a centre
            [5.0, 0.0],  # 5
            [5.0, 6.0],  # sqrt(61): the farthest
            [9.0, 1.0],
        ]
    )  # sqrt(2)
    assert select("coreset", 1, embeddings=candidates, labeled_embeddings=labeled) == [2]
    # After (5, 6) is a centre, (5, 0) is 5 from the nearest centre, (1, 0) 1, (9, 1) sqrt(2): (5, 0) next.
    assert select("coreset", 2, embeddings=candidates, labeled_embeddings=labeled) == [1, 2]


def test_coreset_never_picks_two_copies_of_one_image():
    rng = np.random.default_rng(0)
    distinct = rng.normal(size=(30, 4)) * 10
    pool = np.concatenate([distinct, distinct[:10]])  # rows 30..39 duplicate rows 0..9
    picked = select("coreset", 30, embeddings=pool, labeled_embeddings=rng.normal(size=(5, 4)))
    images = {tuple(pool[i]) for i in picked}
    assert len(images) == 30


# --------------------------------------------------------------------------- BADGE


def test_gradient_embeddings_are_the_last_layer_gradient_for_the_predicted_label():
    proba = np.array([[0.7, 0.2, 0.1]])
    hidden = np.array([[1.0, 2.0]])
    g = GradientEmbeddings.from_outputs(proba, hidden)
    # d(-log p_y)/dW for y = argmax = class 0: (p - onehot(0)) outer h.
    expected = np.outer([-0.3, 0.2, 0.1], [1.0, 2.0]).ravel()
    np.testing.assert_allclose(g.dense()[0], expected)


def test_factored_gradient_distances_equal_the_dense_ones():
    fields = random_inputs(40, seed=9)
    g = fields["gradient_embeddings"]
    dense = g.dense()
    np.testing.assert_allclose(g.sq_norms(), (dense**2).sum(axis=1))
    np.testing.assert_allclose(g.dot_with(7), dense @ dense[7])


def test_badge_starts_from_the_longest_gradient():
    fields = random_inputs(60, seed=10)
    g = fields["gradient_embeddings"]
    assert int(np.argmax(g.sq_norms())) in select("badge", 1, gradient_embeddings=g)


def test_badge_never_picks_two_copies_of_one_image():
    fields = random_inputs(30, seed=11)
    proba = np.concatenate([fields["proba"], fields["proba"][:15]])
    hidden = np.concatenate([fields["embeddings"], fields["embeddings"][:15]])
    g = GradientEmbeddings.from_outputs(proba, hidden)
    for seed in range(5):
        picked = select("badge", 30, seed=seed, gradient_embeddings=g)
        assert len({tuple(g.dense()[i]) for i in picked}) == 30


def test_badge_draws_far_candidates_more_often_than_near_ones():
    # Candidate 0 is the longest gradient (picked first); 1 sits next to it, 2 far away.
    proba = np.array([[0.4, 0.6], [0.35, 0.65], [0.9, 0.1]])
    hidden = np.array([[3.0, 0.0], [3.0, 0.1], [-3.0, 3.0]])
    g = GradientEmbeddings.from_outputs(proba, hidden)
    assert int(np.argmax(g.sq_norms())) == 0
    # Squared distances from candidate 0: 0.04 to candidate 1, 1.8 to candidate 2 (p = 0.978).
    second = [set(select("badge", 2, seed=s, gradient_embeddings=g)) - {0} for s in range(200)]
    assert sum(s == {2} for s in second) > 185


# --------------------------------------------------------------------------- class_balanced


def test_class_balanced_gives_rare_classes_more_of_the_batch_and_ranks_by_margin():
    # Three predicted classes, five candidates each; margins rise with the row number inside a class.
    proba = []
    for c in range(3):
        for k in range(5):
            row = np.full(3, (0.4 - 0.05 * k) / 2)
            row[c] = 0.6 + 0.05 * k
            proba.append(row)
    proba = np.array(proba)
    counts = np.array([29, 4, 9])  # weights 1/30, 1/5, 1/10: D'Hondt gives class 1 the most
    picked = select("class_balanced", 6, proba=proba, labeled_class_counts=counts)
    # Slots: 1 (0.2), 1 (0.1), 2 (0.1), 1 (0.067), 2 (0.05), 1 (0.05) -> class 1: 4, class 2: 2, class 0: 0.
    assert picked == [5, 6, 7, 8, 10, 11]
    # power 0: spread evenly over the predicted classes, smallest margins first.
    assert select("class_balanced", 6, options={"power": 0.0}, proba=proba, labeled_class_counts=counts) == [
        0,
        1,
        5,
        6,
        10,
        11,
    ]


def test_class_balanced_moves_on_when_a_class_runs_out_of_candidates():
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.45, 0.55]])
    # Class 0 is rare in the labelled set but has one candidate: the rest go to class 1.
    assert select("class_balanced", 3, proba=proba, labeled_class_counts=np.array([0, 100])) == [0, 2, 3]


# --------------------------------------------------------------------------- f1_deficit


def test_balanced_f1_estimate_is_exact_when_the_probabilities_are_certain():
    from alstudy.strategies.f1_deficit import balanced_f1_estimate

    # One-hot rows: the estimate is the F1 of the predictions against themselves, 1 for every predicted class.
    assert balanced_f1_estimate(np.eye(3)[[0, 0, 1, 2, 2, 2]]).tolist() == [1.0, 1.0, 1.0]
    # Everything predicted class 0, with class 1's mass (1.0 of 4.0) in it: on a balanced test set that is
    # recall 1 and precision 1/2 for class 0 (F1 2/3), and nothing for class 1.
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    np.testing.assert_allclose(balanced_f1_estimate(proba), [2 / 3, 0.0])


def test_f1_deficit_shares_the_batch_by_deficit_and_takes_each_class_nearest_its_boundary():
    # Class 0 predicted confidently; classes 1 and 2 confused with each other (low estimated F1).
    confident = [[0.96, 0.02, 0.02]] * 6
    confused = [[0.02, 0.5 + 0.04 * k, 0.48 - 0.04 * k] for k in range(4)]  # class 1, margins rising
    confused += [[0.02, 0.46 - 0.04 * k, 0.52 + 0.04 * k] for k in range(4)]  # class 2, margins rising
    proba = np.array(confident + confused)
    picked = select("f1_deficit", 4, proba=proba)
    assert picked == [6, 7, 10, 11]  # no slot to class 0; the smallest margins between 1 and 2
    # power 0: the batch spread evenly, class 0 gets its slot too (its smallest margin: all equal, the first).
    assert 0 in select("f1_deficit", 3, options={"power": 0.0}, proba=proba)


def test_f1_deficit_fills_the_batch_when_a_class_runs_out():
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.45, 0.55]])
    assert sorted(select("f1_deficit", 4, proba=proba)) == [0, 1, 2, 3]


# --------------------------------------------------------------------------- distances and registry


def test_min_sq_distances_match_brute_force_across_chunks():
    rng = np.random.default_rng(12)
    x, centres = rng.normal(size=(37, 5)), rng.normal(size=(23, 5))
    brute = ((x[:, None, :] - centres[None]) ** 2).sum(axis=2).min(axis=1)
    np.testing.assert_allclose(min_sq_distances(x, centres, chunk=8), brute, atol=1e-12)


def test_every_strategy_has_a_summary_and_valid_default_options():
    for name, spec in STRATEGIES.items():
        assert spec.summary and spec.select.__doc__, name
        spec.options()  # defaults validate


def test_params_accept_exactly_the_registered_strategies():
    from pathlib import Path

    import yaml

    from alstudy.params import parse_params

    raw = yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text())
    assert set(raw["al"]["strategy_options"]) == set(STRATEGIES)
    raw["al"]["strategies"] = list(STRATEGIES)
    assert parse_params(raw).al.strategies == list(STRATEGIES)
    raw["al"]["strategies"] = ["uncertainty"]  # the grid takes each strategy by its module's name
    with pytest.raises(PipelineError, match="another name for least_confidence"):
        parse_params(raw)


# --------------------------------------------------------------------------- BASE

# Three classes in a 2-D feature space: classes 0 and 1 meet at x = 0, class 2 takes over above y = 5.
BASE_WEIGHTS = np.array([[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]])
BASE_BIAS = np.array([0.0, 0.0, -5.0])
BASE_CANDIDATES = np.array(
    [
        [0.05, 0.0],  # A: on the 0|1 boundary (0.05 from it)
        [-0.08, 0.0],  # B: on the 0|1 boundary, class 1's side
        [0.12, 0.0],  # C: a little further
        [0.5, 5.6],  # D: near class 2's boundary (0.07 from it), far from the 0|1 one
        [3.0, 0.0],  # E: far from every boundary
    ]
)


def test_base_measures_each_candidates_distance_to_each_class_boundary():
    from alstudy.strategies.base import boundary_distances

    weights, bias = np.array([[1.0, -1.0, 0.0], [0.0, 0.0, 3.0]]), np.zeros(3)
    # h = (2, 1): logits (2, -2, 3), predicted class 2
    (d,) = boundary_distances(np.array([[2.0, 1.0]]), weights, bias)
    assert d[0] == pytest.approx(1 / np.sqrt(10))  # (3 - 2) / ||w2 - w0||
    assert d[1] == pytest.approx(5 / np.sqrt(10))  # (3 + 2) / ||w2 - w1||
    assert d[2] == pytest.approx(1 / np.sqrt(10))  # its own class: the nearest of its boundaries


@pytest.mark.parametrize("n, expected", [(2, [0, 1]), (3, [0, 1, 3]), (4, [0, 1, 2, 3])])
def test_base_gives_each_class_its_share_nearest_its_boundary(n, expected):
    # Class 0 takes A, class 1 (A taken) B, class 2 D, the one near its own boundary; then class 0 again:
    # A, D and B are taken, so C.
    picks = select("base", n, embeddings=BASE_CANDIDATES, last_layer=(BASE_WEIGHTS, BASE_BIAS))
    assert picks == expected
