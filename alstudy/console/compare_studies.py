"""Compare two studies of the same protocol: what one setting (precision, threads, a code change)
does to the results, and whether the verdicts replicate (two machines, two seed sets).

    alstudy compare-studies A/results B/results [--strategies random margin]

For every dataset (and dataset~recipe) x strategy both studies ran with the same seeds, the cells pair by seed: per
seed, B minus A of the area under the accuracy and macro-F1 curves (AUBC) and of the final accuracy,
in points; their mean, a 95% t interval and a paired two-sided t-test, its p also Holm-corrected over
every row (each tests "the setting changed nothing"), as a Markdown table (from
each cell's curve.csv, the file the al stage writes and git tracks). Then, where both studies have
verdicts (metrics/verdicts/ beside results/), how many agree and every one that changed, with both
studies' p-values (alstudy/study/replication.py): seed sets need not overlap for that part.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from scipy import stats

from alstudy.errors import PipelineError
from alstudy.runner import run_stage
from alstudy.study import replication, results
from alstudy.study.summary import aubc, mean_ci
from alstudy.study.verdicts import holm

log = logging.getLogger("compare")
MEASURES = {
    "AUBC accuracy": lambda n, acc, f1: aubc(n, acc),
    "AUBC macro-F1": lambda n, acc, f1: aubc(n, f1),
    "final accuracy": lambda n, acc, f1: acc[-1],
}


def compare(a: Path, b: Path, strategies: list[str] | None) -> list[str]:
    left, right = results.curve_files(a), results.curve_files(b)
    lines = [
        "| dataset | strategy | seeds | measure | A | B − A, points (95% CI) | p | p, Holm |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows: list[tuple[str, float]] = []  # each row's text up to its p, and the p
    for key in sorted(set(left) & set(right)):
        if strategies and key[1] not in strategies:
            continue
        seeds = sorted(set(left[key]) & set(right[key]))
        if len(seeds) < 2:
            continue
        curves_a = [results.read_curve(left[key][s]) for s in seeds]
        curves_b = [results.read_curve(right[key][s]) for s in seeds]
        for (n_a, *_), (n_b, *_) in zip(curves_a, curves_b):
            if not np.array_equal(n_a, n_b):
                raise PipelineError(
                    f"{key[0]}/{key[1]}: the studies label different counts per round; "
                    "compare runs of the same protocol"
                )
        for name, measure in MEASURES.items():
            values_a = np.array([measure(*c) for c in curves_a]) * 100
            values_b = np.array([measure(*c) for c in curves_b]) * 100
            diff = np.round(values_b - values_a, 9)  # float noise is no spread: a constant gap tests as one
            mean, half = mean_ci(diff)
            p = float(stats.ttest_rel(values_b, values_a).pvalue) if np.ptp(diff) > 0 else (1.0 if mean == 0 else 0.0)
            rows.append(
                (
                    f"| {key[0]} | `{key[1]}` | {len(seeds)} | {name} | {values_a.mean():.1f} | "
                    f"{mean:+.2f} ({mean - half:+.2f} to {mean + half:+.2f}) | {p:.2g} |",
                    p,
                )
            )
    # Every row is a test of "the setting changed nothing": Holm over all of them.
    adjusted = holm([p for _, p in rows]) if rows else []
    return lines + [f"{text} {p_holm:.2g} |" for (text, _), p_holm in zip(rows, adjusted)]


def setups_line(label: str, folder: Path) -> str:
    """What a study's cells computed with (backend, device, precision, threads), from their metrics.json."""
    cells = sorted({path.parent for paths in results.curve_files(folder).values() for path in paths.values()})
    return f"{label} ({folder}): {results.setups_text(results.setups(cells))}." if cells else ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path, help="the first study's results/ folder")
    parser.add_argument("b", type=Path, help="the second study's results/ folder")
    parser.add_argument("--strategies", nargs="*", help="only these strategies (default: all both ran)")
    args = parser.parse_args(argv)
    for folder in (args.a, args.b):
        if not folder.is_dir():
            raise PipelineError(f"{folder}: no such folder; give two studies' results/ folders")
    lines = compare(args.a, args.b, args.strategies)
    verdicts = []
    if all(replication.verdicts_folder(folder).is_dir() for folder in (args.a, args.b)):
        first, second = (replication.study_verdicts(folder) for folder in (args.a, args.b))
        if args.strategies:
            first = [v for v in first if v.a in args.strategies and v.b in args.strategies]
        verdicts = replication.verdict_lines(first, second)
    if len(lines) == 2 and not verdicts:
        raise PipelineError(f"{args.a} and {args.b}: no dataset x strategy with two or more seeds in both")
    setups = [line for line in (setups_line("A", args.a), setups_line("B", args.b)) if line]
    table = lines if len(lines) > 2 else ["No cells with the same seeds in both studies."]
    print("\n".join([*setups, "", *table, "", *verdicts]))


if __name__ == "__main__":
    run_stage(main)
