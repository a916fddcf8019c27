"""A cell's result files, written and read here only: results/<dataset>/<strategy>/s<seed>/.

- curve.csv: a row per round (n_labeled, accuracy, balanced accuracy, macro-F1, seconds, the stopping
  criterion's agreement); small, git-tracked, what `alstudy compare-studies` reads;
- queries.csv: every queried pool index with its round and true label;
- rounds.json: each round in full (per-class F1, queried class counts, timings): what the plots read;
- metrics.json: the final round's scores, for `dvc metrics show`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from alstudy.errors import PipelineError
from alstudy.fileio import atomic_path, save_json
from alstudy.paths import DEFAULT_RECIPE, run_dir, study_unit
from alstudy.study.summary import Curves

if TYPE_CHECKING:  # a type only: reading results needs no learning code
    from alstudy.learning.loop import LoopState

CURVE = "curve.csv"
QUERIES = "queries.csv"
ROUNDS = "rounds.json"
METRICS = "metrics.json"
NOT_RECORDED = "setup not recorded (cells from before it was)"
CURVE_COLUMNS = ["round", "n_labeled", "accuracy", "balanced_accuracy", "f1_macro", "seconds", "agreement"]


def write(out: Path, state: LoopState, pool_labels, compute: dict | None = None) -> dict:
    """The cell's four files from its loop state; returns the final scores. `compute`: what the run
    computed with (backend, device, precision, threads), kept in metrics.json so a study can say whether
    all its cells ran alike."""
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / CURVE) as tmp, open(tmp, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(CURVE_COLUMNS)
        for r in state.history:
            agreement = "" if r.agreement is None else f"{r.agreement:.6f}"
            scores = (r.accuracy, r.balanced_accuracy, r.f1_macro)
            writer.writerow([r.round, r.n_labeled, *(f"{s:.6f}" for s in scores), f"{r.seconds:.3f}", agreement])
    with atomic_path(out / QUERIES) as tmp, open(tmp, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["round", "pool_index", "label"])
        start = 0
        for r in state.history:
            for index in state.labeled[start : r.n_labeled]:
                writer.writerow([r.round, index, int(pool_labels[index])])
            start = r.n_labeled
    save_json(out / ROUNDS, state.to_dict()["history"])
    last = state.history[-1]
    metrics = {
        "accuracy": last.accuracy,
        "balanced_accuracy": last.balanced_accuracy,
        "f1_macro": last.f1_macro,
        "n_labeled": last.n_labeled,
        "rounds": last.round,
        "mean_round_seconds": sum(r.seconds for r in state.history) / len(state.history),
    }
    save_json(out / METRICS, {**metrics, **(compute or {})})
    return metrics


def setup_of(metrics: dict) -> str:
    """A cell's compute setup in words, from its metrics.json: "tensorflow, cpu, float32, 1 thread"."""
    if "backend" not in metrics:
        return NOT_RECORDED
    threads = metrics.get("threads", 1)
    return f"{metrics['backend']}, {metrics['device']}, {metrics['precision']}, {threads} thread{'s' * (threads != 1)}"


def setups(cell_dirs) -> dict[str, int]:
    """How many of these cells ran on each compute setup (the cells' metrics.json)."""
    counts: dict[str, int] = {}
    for folder in cell_dirs:
        path = Path(folder) / METRICS
        setup = setup_of(json.loads(path.read_text())) if path.exists() else NOT_RECORDED
        counts[setup] = counts.get(setup, 0) + 1
    return counts


def setups_text(counts: dict[str, int]) -> str:
    """ "every cell on X" or "2 setups: X (40 cells), Y (10 cells)"."""
    if len(counts) == 1:
        only = next(iter(counts))
        return only if only == NOT_RECORDED else f"every cell on {only}"
    parts = ", ".join(f"{setup} ({n} cell{'s' * (n != 1)})" for setup, n in sorted(counts.items()))
    return f"{len(counts)} setups: {parts}"


def load_curves(
    dataset: str, strategies: list[str], seeds: list[int], recipe: str = DEFAULT_RECIPE
) -> dict[str, Curves]:
    """Each strategy's curves over the seeds under one recipe, from the cells' rounds.json; one line for a
    missing cell."""
    curves = {}
    for strategy in strategies:
        runs = {}
        for seed in seeds:
            path = run_dir(dataset, strategy, seed, recipe) / ROUNDS
            if not path.exists():
                stage = "al" if recipe == DEFAULT_RECIPE else "al_recipe"
                raise PipelineError(
                    f"{path}: missing; run `dvc repro {stage}` so every cell in params.yaml has results"
                )
            runs[seed] = json.loads(path.read_text())
        curves[strategy] = Curves.from_runs(runs)
    return curves


def read_curve(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n_labeled, accuracy and macro-F1 per round, from a cell's curve.csv."""
    with open(path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    return tuple(np.array([float(r[key]) for r in rows]) for key in ("n_labeled", "accuracy", "f1_macro"))


def curve_files(results: Path) -> dict[tuple[str, str], dict[int, Path]]:
    """(study unit, strategy) -> seed -> curve.csv, in a results/ folder; a recipe's cells
    (results/<dataset>/recipes/<recipe>/...) under their unit's name, <dataset>~<recipe>."""
    found: dict[tuple[str, str], dict[int, Path]] = {}
    for curve in sorted(results.glob(f"*/*/s*/{CURVE}")):
        seed_dir = curve.parent
        found.setdefault((seed_dir.parent.parent.name, seed_dir.parent.name), {})[int(seed_dir.name[1:])] = curve
    for curve in sorted(results.glob(f"*/recipes/*/*/s*/{CURVE}")):
        seed_dir = curve.parent
        recipe_dir = seed_dir.parent.parent
        unit = study_unit(recipe_dir.parent.parent.name, recipe_dir.name)
        found.setdefault((unit, seed_dir.parent.name), {})[int(seed_dir.name[1:])] = curve
    return found


def write_wide_csv(path: Path, curves: dict[str, Curves], metric: str) -> None:
    """n_labeled plus one column per strategy (mean over seeds): the shape `dvc plots` overlays."""
    first = next(iter(curves.values()))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["n_labeled", *curves])
        for i, n in enumerate(first.n_labeled):
            writer.writerow([int(n), *(f"{getattr(c, metric)[:, i].mean():.6f}" for c in curves.values())])
