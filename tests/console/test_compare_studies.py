"""alstudy/console/compare_studies.py on hand-made results trees: paired by seed, B minus A, in points."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from alstudy.console.compare_studies import compare
from alstudy.errors import PipelineError


def write_study(root: Path, gain: float, seeds=(0, 1, 2), n_labeled=(10, 20, 30)) -> Path:
    for seed in seeds:
        folder = root / "results/fashion_mnist/margin" / f"s{seed}"
        folder.mkdir(parents=True)
        with open(folder / "curve.csv", "w", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(["round", "n_labeled", "accuracy", "balanced_accuracy", "f1_macro", "seconds"])
            for r, n in enumerate(n_labeled):
                score = 0.5 + 0.1 * r + 0.01 * seed + gain
                writer.writerow([r, n, score, score, score - 0.02, 1.0])
    return root / "results"


def test_a_constant_gain_of_one_point_and_identical_studies(tmp_path):
    base = write_study(tmp_path / "a", 0.0)
    lines = compare(base, write_study(tmp_path / "b", 0.01), None)
    assert len(lines) == 2 + 3
    assert all("| +1.00 (+1.00 to +1.00) | 0 |" in line for line in lines[2:]), lines
    same = compare(base, write_study(tmp_path / "c", 0.0), None)
    assert all("| +0.00 (+0.00 to +0.00) | 1 |" in line for line in same[2:]), same
    assert compare(base, write_study(tmp_path / "d", 0.01), ["random"]) == lines[:2]


def test_different_protocols_are_refused(tmp_path):
    with pytest.raises(PipelineError, match="label different counts per round"):
        compare(write_study(tmp_path / "a", 0.0), write_study(tmp_path / "b", 0.0, n_labeled=(10, 20, 40)), None)
