"""alstudy/console/compare_studies.py on hand-made results trees: paired by seed, B minus A, in points."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from alstudy.console.compare_studies import compare
from alstudy.errors import PipelineError


def write_study(root: Path, gain: float, seeds=(0, 1, 2), n_labeled=(10, 20, 30), cells="fashion_mnist/margin") -> Path:
    for seed in seeds:
        folder = root / "results" / cells / f"s{seed}"
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


def test_a_recipes_cells_pair_under_their_unit_beside_the_default_recipes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root, gain in ((a, 0.0), (b, 0.01)):
        write_study(root, 0.0)
        write_study(root, gain, cells="fashion_mnist/recipes/augmented/margin")
    lines = compare(a / "results", b / "results", None)
    default = [line for line in lines[2:] if line.startswith("| fashion_mnist | ")]
    recipe = [line for line in lines[2:] if line.startswith("| fashion_mnist~augmented | `margin` | 3 | ")]
    assert len(default) == 3 and all("| +0.00 (+0.00 to +0.00) | 1 |" in line for line in default), lines
    assert len(recipe) == 3 and all("| +1.00 (+1.00 to +1.00) | 0 |" in line for line in recipe), lines


def test_different_protocols_are_refused(tmp_path):
    with pytest.raises(PipelineError, match="label different counts per round"):
        compare(write_study(tmp_path / "a", 0.0), write_study(tmp_path / "b", 0.0, n_labeled=(10, 20, 40)), None)


def test_every_row_is_also_holm_corrected_and_each_studys_setup_is_said(tmp_path, capsys):
    import json

    from scipy.stats import ttest_rel

    from alstudy.console.compare_studies import main

    base = write_study(tmp_path / "a", 0.0, seeds=(0, 1, 2, 3))
    other = tmp_path / "b" / "results/fashion_mnist/margin"
    for seed, gain in zip((0, 1, 2, 3), (0.004, 0.012, -0.002, 0.009)):  # a noisy gain: p between 0 and 1
        write_study(tmp_path / f"b{seed}", gain, seeds=(seed,))
        (other / f"s{seed}").parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f"b{seed}/results/fashion_mnist/margin/s{seed}").rename(other / f"s{seed}")
    rows = compare(base, tmp_path / "b" / "results", None)[2:]
    p = [float(row.split("|")[-3]) for row in rows]
    plain = ttest_rel([0.004, 0.012, -0.002, 0.009], [0, 0, 0, 0]).pvalue
    assert p[0] == pytest.approx(plain, rel=0.05)  # printed to two figures
    smallest = min(p)
    assert float(rows[p.index(smallest)].split("|")[-2]) == pytest.approx(min(1, 3 * smallest), rel=0.05)
    for seed in (0, 1, 2, 3):
        setup = {"backend": "jax" if seed == 3 else "tensorflow", "device": "cpu", "precision": "float32", "threads": 1}
        (other / f"s{seed}" / "metrics.json").write_text(json.dumps({"accuracy": 0.5, **setup}))
    main([str(base), str(tmp_path / "b" / "results")])
    printed = capsys.readouterr().out
    assert f"A ({base}): setup not recorded" in printed
    assert (
        "B (" in printed
        and "2 setups: jax, cpu, float32, 1 thread (1 cell), tensorflow, cpu, float32, 1 thread (3 cells)" in printed
    )


PUBLISHED = Path(__file__).resolve().parents[2] / "docs/results"


def test_the_published_replicates_agree_as_the_results_page_says(capsys):
    from alstudy.console.compare_studies import main

    main([str(PUBLISHED / "study-seeds-0-9/results"), str(PUBLISHED / "study-seeds-10-19/results")])
    printed = capsys.readouterr().out
    assert "Verdicts: 34 of 40 agree; 6 changed." in printed
    page = " ".join((PUBLISHED.parent / "results.md").read_text().split())
    assert "34 of the 40 comparisons" in page and "16 of 16 against random" in page


def test_a_reader_that_leaves_early_gets_no_traceback():
    import subprocess
    import sys

    published = [str(PUBLISHED / "study-seeds-0-9/results"), str(PUBLISHED / "study-seeds-10-19/results")]
    command = [sys.executable, "-m", "alstudy.console.compare_studies", *published]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # as `| head -1` does once it has its line: every write after this one fails
    _, stderr = process.communicate()
    assert process.returncode == 141 and b"Traceback" not in stderr, stderr.decode()
