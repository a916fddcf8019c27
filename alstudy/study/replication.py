"""Do two studies of one protocol reach the same verdicts? (Two machines, two seed sets, two versions.)

Reads each study's metrics/verdicts/<dataset>.json (the verdicts stage) and sets the verdicts of the
comparisons both made side by side: how many agree, and every one that changed with both studies'
numbers, so that a headline that does not replicate is seen as such.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from alstudy.errors import PipelineError
from alstudy.paths import VERDICTS_DIR
from alstudy.study.verdicts import Verdict, from_metrics


@dataclass(frozen=True)
class Change:
    """One comparison both studies made, with each study's verdict on it."""

    first: Verdict
    second: Verdict

    @property
    def key(self) -> tuple[str, str, str, str]:
        return self.first.dataset, self.first.metric, self.first.a, self.first.b


def verdicts_folder(root: Path) -> Path:
    """metrics/verdicts/ of the study whose project folder is `root` (its results/ folder also works)."""
    return (root.parent if root.name == "results" else root) / VERDICTS_DIR


def study_verdicts(root: Path) -> list[Verdict]:
    """Every verdict of the study at `root`."""
    folder = verdicts_folder(root)
    files = sorted(folder.glob("*.json"))
    if not files:
        raise PipelineError(f"{folder}: no verdicts; run `dvc repro verdicts` there first")
    return [v for file in files for v in from_metrics(json.loads(file.read_text()), file.stem)]


def side_by_side(first: list[Verdict], second: list[Verdict]) -> list[Change]:
    """The comparisons both studies made, in the first study's order."""
    by_key = {(v.dataset, v.metric, v.a, v.b): v for v in second}
    return [Change(v, by_key[key]) for v in first if (key := (v.dataset, v.metric, v.a, v.b)) in by_key]


def verdict_lines(first: list[Verdict], second: list[Verdict]) -> list[str]:
    """Markdown: how many verdicts agree, then a table of every one that changed."""
    pairs = side_by_side(first, second)
    changed = [c for c in pairs if c.first.decision != c.second.decision]
    lines = [f"Verdicts: {len(pairs) - len(changed)} of {len(pairs)} agree; {len(changed)} changed.", ""]
    if not changed:
        return lines
    lines += [
        "| dataset | comparison | metric | A: verdict (Holm p, equivalence Holm p; rerun agrees) | B: verdict (same) |",
        "|---|---|---|---|---|",
    ]
    for c in changed:
        lines.append(
            f"| {c.first.dataset} | `{c.first.a}` − `{c.first.b}` | {c.first.metric} | {_cell(c.first)} | "
            f"{_cell(c.second)} |"
        )
    return lines


def _cell(v: Verdict) -> str:
    mark = ", fragile" if v.fragile else ""
    return (
        f"{v.decision}{mark} ({v.p_holm:.2g}, {v.p_equivalence_holm:.2g}; {100 * v.replication:.0f}%), "
        f"{100 * v.mean:+.1f} points, {v.n_seeds} seeds"
    )
