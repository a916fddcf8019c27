"""Figures: learning curves per strategy and the class mix each strategy queried."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from alstudy import strategies
from alstudy.fileio import atomic_path
from alstudy.study.statistics import PairedRounds
from alstudy.study.summary import METRICS, Curves

BASELINE_COLOUR = "#7f7f7f"
# Every colour of matplotlib's tab10 palette but its grey, which marks the random baseline.
_CYCLE = [c for c in map(matplotlib.colors.to_hex, matplotlib.colormaps["tab10"].colors) if c != BASELINE_COLOUR]


def colour(strategy: str) -> str:
    """A strategy's colour, the same in every figure: taken from the registry's order, cycling when
    there are more strategies than colours; random is the grey baseline."""
    name = strategies.canonical(strategy)
    if name == "random":
        return BASELINE_COLOUR
    others = [n for n in strategies.STRATEGIES if n != "random"]
    return _CYCLE[others.index(name) % len(_CYCLE)]


METRIC_LABELS = {
    "accuracy": "Test accuracy",
    "balanced_accuracy": "Test balanced accuracy",
    "f1_macro": "Test macro-F1",
}


def learning_curves(curves: dict[str, Curves], metric: str, dataset: str, path: Path) -> None:
    """Mean curve per strategy against labels used, with a band of +-1 std when there are several seeds."""
    fig, ax = _subplots(figsize=(7, 4.5), dpi=120)
    n_seeds = 1
    for name, c in curves.items():
        values = getattr(c, metric)
        mean = values.mean(axis=0)
        n_seeds = max(n_seeds, len(values))
        ax.plot(c.n_labeled, mean, marker="o", markersize=3, color=colour(name), label=name)
        if len(values) > 1:
            std = values.std(axis=0)
            ax.fill_between(c.n_labeled, mean - std, mean + std, color=colour(name), alpha=0.15, linewidth=0)
    seeds = f"mean of {n_seeds} seeds, band = +-1 std" if n_seeds > 1 else "1 seed"
    ax.set_title(f"{dataset}: {METRIC_LABELS[metric]} vs labelled images\n({seeds})", fontsize=11)
    ax.set(xlabel="Labelled images", ylabel=METRIC_LABELS[metric])
    ax.grid(alpha=0.3)
    ax.legend(title="strategy", loc="lower right")
    _save(fig, path)


def queried_classes(
    curves: dict[str, Curves], pool_counts: list[int], class_names: list[str], dataset: str, path: Path
) -> None:
    """Share of each class among the images each strategy queried, next to the pool's own mix."""
    n_classes = len(pool_counts)
    names = list(curves)
    width = 0.8 / (len(names) + 1)
    x = np.arange(n_classes)
    fig, ax = _subplots(figsize=(9, 4.5), dpi=120)
    pool_share = np.asarray(pool_counts) / max(1, sum(pool_counts))
    ax.bar(x - 0.4 + width / 2, pool_share, width, color="white", edgecolor="black", label="pool")
    for i, name in enumerate(names):
        counts = curves[name].queried_classes.sum(axis=0)
        ax.bar(x - 0.4 + width * (i + 1.5), counts / max(1, counts.sum()), width, color=colour(name), label=name)
    ax.set_xticks(x, class_names, rotation=30, ha="right")
    ax.set(title=f"{dataset}: class mix of queried images (after the initial set)", ylabel="Share of queried images")
    ax.grid(axis="y", alpha=0.3)
    ax.set_ylim(top=ax.get_ylim()[1] * 1.15)  # headroom so the legend never covers a bar
    ax.legend(ncol=len(names) + 1, fontsize="small", loc="upper right")
    _save(fig, path)


def rare_classes(
    curves: dict[str, Curves], pool_counts: list[int], class_names: list[str], dataset: str, path: Path, k: int = 3
) -> None:
    """The `k` classes with the fewest pool images: per strategy, how many of each it has labelled after
    each round (top row) beside that class's test F1 (bottom row), means over seeds. Where a strategy
    gains on an imbalanced set, it is by finding these."""
    rare = [int(c) for c in np.argsort(pool_counts, kind="stable")[:k]]
    fig, axes = _subplots(2, len(rare), figsize=(3.6 * len(rare), 6.2), dpi=110, sharex=True, squeeze=False)
    for column, c in enumerate(rare):
        top, bottom = axes[0, column], axes[1, column]
        for name, curve in curves.items():
            if curve.labelled_classes is not None:
                top.plot(curve.n_labeled, curve.labelled_classes[:, :, c].mean(axis=0), color=colour(name), label=name)
            bottom.plot(curve.n_labeled, curve.f1_per_class[:, :, c].mean(axis=0), color=colour(name), label=name)
        top.set_title(f"{class_names[c]} ({pool_counts[c]} in the pool)", fontsize=9)
        bottom.set_xlabel("Labelled images", fontsize=8)
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("Labelled images of the class", fontsize=8)
    axes[1, 0].set_ylabel("Test F1 of the class", fontsize=8)
    handles, labels = axes[1, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 8), fontsize="small")
    fig.suptitle(f"{dataset}: the {len(rare)} rarest classes, labelled and learnt (mean over seeds)", fontsize=11)
    _save(fig, path, rect=(0, 0.06, 1, 1))


def per_class_f1(curves: dict[str, Curves], class_names: list[str], dataset: str, path: Path) -> None:
    """One panel per class: its test F1 against labelled images, a mean curve per strategy."""
    n_classes = len(class_names)
    columns = min(5, n_classes)
    rows = -(-n_classes // columns)
    fig, axes = _subplots(
        rows, columns, figsize=(3.2 * columns, 2.6 * rows + 0.8), dpi=110, sharex=True, sharey=True, squeeze=False
    )
    for c, ax in enumerate(axes.flat):
        if c >= n_classes:
            ax.axis("off")
            continue
        for name, curve in curves.items():
            ax.plot(
                curve.n_labeled, curve.f1_per_class[:, :, c].mean(axis=0), color=colour(name), label=name, linewidth=1.2
            )
        ax.set_title(f"{c}: {class_names[c]}", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("Labelled images", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("Test F1", fontsize=8)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 8), fontsize="small")
    fig.suptitle(f"{dataset}: per-class F1 vs labelled images (mean over seeds)", fontsize=11)
    _save(fig, path, rect=(0, 0.06, 1, 1))  # room for the legend below the panels


def difference_to_baseline(
    differences: dict[str, PairedRounds], metric: str, dataset: str, path: Path, baseline: str = "random"
) -> None:
    """Per strategy, the paired difference to the baseline per round with its 95% confidence band."""
    fig, ax = _subplots(figsize=(8.5, 4.5), dpi=120)
    for name, d in differences.items():
        ax.plot(d.n_labeled, d.mean, marker="o", markersize=3, color=colour(name), label=name)
        ax.fill_between(d.n_labeled, d.ci_low, d.ci_high, color=colour(name), alpha=0.12, linewidth=0)
    ax.axhline(0, color=BASELINE_COLOUR, linewidth=1)
    ax.set_title(
        f"{dataset}: {METRIC_LABELS[metric].lower()} minus {baseline}, paired by seed\n"
        "(band = 95% CI of the mean difference; a band across 0 is within the noise)",
        fontsize=10,
    )
    ax.set(xlabel="Labelled images", ylabel=f"Difference in {METRIC_LABELS[metric].lower()}")
    ax.grid(alpha=0.3)
    ax.legend(title="strategy", fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))  # off the bands
    _save(fig, path)


def penalty_heatmap(
    matrix: np.ndarray, names: list[str], n_rounds: int, metric: str, dataset: str, path: Path, alpha: float
) -> None:
    """Rows beat columns: cell (i, j) counts the query rounds where i is significantly better than j."""
    size = max(4.0, 1.0 + 0.7 * len(names))
    fig, ax = _subplots(figsize=(size + 2.0, size), dpi=120)
    image = ax.imshow(matrix, cmap="Reds", vmin=0, vmax=max(1, n_rounds))
    for i in range(len(names)):
        for j in range(len(names)):
            if i != j:
                ax.text(
                    j,
                    i,
                    str(matrix[i, j]),
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if matrix[i, j] > 0.6 * n_rounds else "black",
                )
    ax.set_xticks(range(len(names)), names, rotation=40, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="... is beaten by the row strategy", ylabel="strategy")
    ax.set_title(
        f"{dataset}: query rounds (of {n_rounds}) where\nthe row is significantly better "
        f"than the column\n({METRIC_LABELS[metric].lower()}, paired t-test per round, uncorrected, "
        f"alpha {alpha:g})",
        fontsize=10,
    )
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    _save(fig, path)


def _subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], dpi: int, **options):
    """A figure of its own, drawn to files only: no pyplot, so no backend or global state is touched."""
    fig = Figure(figsize=figsize, dpi=dpi)
    return fig, fig.subplots(nrows, ncols, **options)


def _save(fig, path: Path, rect: tuple[float, float, float, float] = (0, 0, 1, 1)) -> None:
    fig.tight_layout(rect=rect)
    with atomic_path(path, suffix=path.suffix) as tmp:
        fig.savefig(tmp)


def dataset_figures(curves: dict, meta: dict, dataset: str, out: Path) -> None:
    """Every figure of one dataset's study: learning curves per metric, per-class F1, the queried class mix
    and the rarest classes."""
    for metric in METRICS:
        learning_curves(curves, metric, dataset, out / f"{metric}.png")
    counts, names = meta["train_class_counts"], meta["class_names"]
    queried_classes(curves, counts, names, dataset, out / "queried_classes.png")
    per_class_f1(curves, names, dataset, out / "per_class_f1.png")
    rare_classes(curves, counts, names, dataset, out / "rare_classes.png")


RECIPE_BAR = "recipe"  # recipe_gains' bar for what the recipe itself buys; the others are strategies


def recipe_gains(
    gains: dict[str, dict[str, tuple[float, float, float]]], metric: str, dataset: str, path: Path
) -> None:
    """What each recipe buys beside what each strategy buys on top of it, in AUBC points with 95% CIs.

    gains: recipe -> bar -> (mean, ci_low, ci_high) as fractions; a bar is `recipe` (the baseline under
    the recipe minus under the default recipe) or a strategy (minus the baseline under the same recipe)."""
    recipes = list(gains)
    found = list(dict.fromkeys(bar for by_bar in gains.values() for bar in by_bar))  # the grid's order
    bars = [RECIPE_BAR] * (RECIPE_BAR in found) + [bar for bar in found if bar != RECIPE_BAR]
    width = 0.8 / max(1, len(bars))
    fig, ax = _subplots(figsize=(max(7.0, 2.0 + 0.6 * len(recipes) * len(bars)), 5.0), dpi=120)
    for i, bar in enumerate(bars):
        x = [r for r, recipe in enumerate(recipes) if bar in gains[recipe]]
        values = [gains[recipes[r]][bar] for r in x]
        mean = np.array([100 * v[0] for v in values])
        errors = np.array([[100 * (v[0] - v[1]) for v in values], [100 * (v[2] - v[0]) for v in values]])
        label = "the recipe itself" if bar == RECIPE_BAR else f"{bar}, on top of the recipe"
        ax.bar(
            np.asarray(x) - 0.4 + width * (i + 0.5),
            mean,
            width,
            yerr=errors,
            capsize=3,
            color="white" if bar == RECIPE_BAR else colour(bar),
            edgecolor="black",
            hatch="//" if bar == RECIPE_BAR else None,
            label=label,
        )
    ax.axhline(0, color=BASELINE_COLOUR, linewidth=1)
    ax.set_xticks(range(len(recipes)), recipes)
    ax.set(xlabel="Training recipe", ylabel=f"AUBC gain, points ({METRIC_LABELS[metric].lower()})")
    ax.set_title(
        f"{dataset}: what each recipe buys, and each strategy on top of it\n"
        "(paired by seed; bars = 95% CI; a bar across 0 is within the noise)",
        fontsize=10,
    )
    ax.grid(axis="y", alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=min(len(bars), 4), fontsize="small")
    _save(fig, path, rect=(0, 0.08, 1, 1))  # room for the legend below the axes
