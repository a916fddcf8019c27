"""Shared pieces of the study report: what one dataset brings to it and how numbers are written."""

from __future__ import annotations

from dataclasses import dataclass, field

from alstudy.study.verdicts import Verdict

METRIC_NAMES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "f1_macro": "macro-F1"}


@dataclass(frozen=True)
class DatasetResults:
    name: str
    summary: dict  # metrics/summary/<dataset>.json
    statistics: dict  # metrics/statistics/<dataset>.json
    figures: list[str]  # file names present in plots/<dataset>/
    verdicts: list[Verdict] = field(default_factory=list)  # from metrics/verdicts/<dataset>.json


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def points(x: float) -> str:
    return f"{100 * x:+.1f}"


def p_text(p: float | None) -> str:
    """Two significant digits (0.015, 0.10, 1.0), "< 0.001" below that, "–" where there is no test."""
    if p is None:
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:#.2g}"


def p_is(p: float | None) -> str:
    """For a sentence: "p = 0.015", "p < 0.001"."""
    text = p_text(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def ci_text(mean: float, half: float | None) -> str:
    return f"{mean:.3f}" if half is None else f"{mean:.3f} ± {half:.3f}"


def labels_text(row: dict) -> str:
    if "labels_random_needs" not in row:
        return "–"
    if row["labels_random_needs"] is None:
        return f"more than the budget ({row['n_labeled']:,})"
    return f"{row['labels_random_needs']:,.0f} ({row['labels_saved_ratio']:.2f}x)"
