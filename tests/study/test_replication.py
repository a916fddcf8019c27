"""Verdicts that replicate: two studies of one protocol with disjoint seed sets, on synthetic per-seed AUBCs
whose true differences are known (one strategy clearly better than random, one equivalent to it, one on
the edge): the first two verdicts agree and repeat on a rerun, the third is marked fragile in both and
`alstudy compare-studies` lists it as changed, with both studies' p-values."""

from __future__ import annotations

import numpy as np
import pytest

from alstudy.console import compare_studies
from alstudy.errors import PipelineError
from alstudy.fileio import save_json
from alstudy.paths import VERDICTS_DIR
from alstudy.study import replication
from alstudy.study.verdicts import FRAGILE, dataset_metrics, pairs, study_verdicts

STRATEGIES = ["random", "clear", "same", "edge"]
TRUE_GAP = {"clear": 0.03, "same": 0.0, "edge": 0.008}  # AUBC, fraction; the margin is 0.005
NOISE = {"clear": 0.003, "same": 0.0008, "edge": 0.006}  # per-seed sd of the difference


def aubcs(seeds: range) -> dict:
    """Per seed: random's AUBC (a seed effect every strategy shares) and each strategy's true gap plus noise."""
    by_strategy = {name: [] for name in STRATEGIES}
    for seed in seeds:
        rng = np.random.default_rng(1000 + seed)
        random = 0.80 + rng.normal(0, 0.01)
        by_strategy["random"].append(random)
        for name in STRATEGIES[1:]:
            by_strategy[name].append(random + TRUE_GAP[name] + rng.normal(0, NOISE[name]))
    return {"fashion_mnist": {"accuracy": by_strategy}}


def run_study(root, seeds: range):
    verdicts = study_verdicts(aubcs(seeds), pairs(STRATEGIES, "random"), alpha=0.05)
    save_json(
        root / VERDICTS_DIR / "fashion_mnist.json", dataset_metrics(verdicts, "fashion_mnist", verdicts[0].family)
    )
    (root / "results").mkdir(parents=True, exist_ok=True)
    return {v.a: v for v in verdicts if v.b == "random"}


def test_clear_and_equivalent_verdicts_replicate_and_the_edge_is_fragile(tmp_path, capsys):
    first, second = run_study(tmp_path / "a", range(0, 5)), run_study(tmp_path / "b", range(5, 10))

    for study in (first, second):
        assert study["clear"].decision == "better" and study["clear"].replication > 0.95
        assert study["same"].decision == "equivalent" and study["same"].replication > 0.9
        assert not study["clear"].fragile and not study["same"].fragile
        assert study["edge"].fragile and study["edge"].replication < FRAGILE
    # The edge's true effect is real but small for 5 seeds: one seed set decides it, the other does not.
    assert {first["edge"].decision, second["edge"].decision} == {"better", "undecided"}

    compare_studies.main([str(tmp_path / "a/results"), str(tmp_path / "b/results")])
    out = capsys.readouterr().out
    changed = [line for line in out.splitlines() if line.startswith("| fashion_mnist |")]
    assert any("`edge` − `random`" in line for line in changed), out
    assert not any("`clear` − `random`" in line or "`same` − `random`" in line for line in changed), out
    edge = next(line for line in changed if "`edge` − `random`" in line)
    for study in (first, second):  # both studies' numbers, each verdict marked fragile
        v = study["edge"]
        assert f"{v.decision}, fragile ({v.p_holm:.2g}, {v.p_equivalence_holm:.2g}; {100 * v.replication:.0f}%)" in edge
    total = len(
        replication.side_by_side(replication.study_verdicts(tmp_path / "a"), replication.study_verdicts(tmp_path / "b"))
    )
    assert f"Verdicts: {total - len(changed)} of {total} agree; {len(changed)} changed." in out


def test_the_replication_estimate_matches_reruns_of_the_true_effect():
    """The plug-in estimate is about the observed effect: for a study whose observed effect equals the true
    one, it should match how often fresh studies from the truth give the same verdict."""
    gap, sd, n = 0.01, 0.006, 5
    differences = gap + sd * np.array([-1.2, -0.4, 0.0, 0.4, 1.2]) / np.std([-1.2, -0.4, 0.0, 0.4, 1.2], ddof=1)
    random = [0.8] * n
    [v] = [
        v
        for v in study_verdicts(
            {"d": {"accuracy": {"random": random, "s": list(0.8 + differences)}}}, [("s", "random")], 0.05
        )
    ]
    assert v.mean == pytest.approx(gap) and v.sd == pytest.approx(sd)
    rng = np.random.default_rng(11)
    same = 0
    for _ in range(400):
        fresh = list(0.8 + rng.normal(gap, sd, size=n))
        [w] = study_verdicts({"d": {"accuracy": {"random": random, "s": fresh}}}, [("s", "random")], 0.05)
        same += w.decision == v.decision
    assert v.replication == pytest.approx(same / 400, abs=0.06)


def test_studies_without_verdicts_are_named(tmp_path):
    (tmp_path / "a/results").mkdir(parents=True)
    with pytest.raises(PipelineError, match="metrics/verdicts: no verdicts"):
        replication.study_verdicts(tmp_path / "a")
