"""Figures: learning curves per strategy and the class mix each strategy queried."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.fileio import atomic_path  # noqa: E402
from pipeline import strategies  # noqa: E402
from pipeline.summary import Curves  # noqa: E402

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

METRIC_LABELS = {"accuracy": "Test accuracy", "f1_macro": "Test macro-F1"}


def learning_curves(curves: dict[str, Curves], metric: str, dataset: str, path: Path) -> None:
    """Mean curve per strategy against labels used, with a band of +-1 std when there are several seeds."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
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


def queried_classes(curves: dict[str, Curves], pool_counts: list[int], class_names: list[str],
                    dataset: str, path: Path) -> None:
    """Share of each class among the images each strategy queried, next to the pool's own mix."""
    n_classes = len(pool_counts)
    names = list(curves)
    width = 0.8 / (len(names) + 1)
    x = np.arange(n_classes)
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=120)
    pool_share = np.asarray(pool_counts) / max(1, sum(pool_counts))
    ax.bar(x - 0.4 + width / 2, pool_share, width, color="white", edgecolor="black", label="pool")
    for i, name in enumerate(names):
        counts = curves[name].queried_classes.sum(axis=0)
        ax.bar(x - 0.4 + width * (i + 1.5), counts / max(1, counts.sum()), width, color=colour(name), label=name)
    ax.set_xticks(x, class_names, rotation=30, ha="right")
    ax.set(title=f"{dataset}: class mix of queried images (after the initial set)",
           ylabel="Share of queried images")
    ax.grid(axis="y", alpha=0.3)
    ax.set_ylim(top=ax.get_ylim()[1] * 1.15)  # headroom so the legend never covers a bar
    ax.legend(ncol=len(names) + 1, fontsize="small", loc="upper right")
    _save(fig, path)


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path, suffix=path.suffix) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
