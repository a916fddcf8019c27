"""The study report: Markdown tables, figures and verdicts from the plot stages' summaries and statistics.

Verdicts are built only from the paired tests: a difference is called real only
where its test says so, and "within the noise" otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass


ALPHA = 0.05  # until the report reads study.alpha from params.yaml (next commits)
METRIC_NAMES = {"accuracy": "accuracy", "f1_macro": "macro-F1"}
FIGURES = [("accuracy.png", "Accuracy"), ("f1_macro.png", "Macro-F1"), ("balanced_accuracy.png", "Balanced accuracy"),
           ("difference_accuracy.png", "Accuracy minus random, paired by seed"),
           ("difference_f1_macro.png", "Macro-F1 minus random, paired by seed"),
           ("penalty_accuracy.png", "Pairwise penalty matrix (accuracy)"),
           ("penalty_f1_macro.png", "Pairwise penalty matrix (macro-F1)"),
           ("per_class_f1.png", "Per-class F1"), ("queried_classes.png", "Class mix of the queried images")]


@dataclass(frozen=True)
class DatasetResults:
    name: str
    summary: dict      # metrics/summary/<dataset>.json
    statistics: dict   # metrics/statistics/<dataset>.json
    figures: list[str]  # file names present in plots/<dataset>/


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def points(x: float) -> str:
    return f"{100 * x:+.1f}"


def ci_text(mean: float, half: float | None) -> str:
    return f"{mean:.3f}" if half is None else f"{mean:.3f} ± {half:.3f}"


def labels_text(row: dict) -> str:
    if "labels_random_needs" not in row:
        return "–"
    if row["labels_random_needs"] is None:
        return f"more than the budget ({row['n_labeled']:,})"
    return f"{row['labels_random_needs']:,.0f} ({row['labels_saved_ratio']:.2f}x)"


def verdict(strategy: str, versus: dict, n_rounds: int, metric: str) -> str:
    """One sentence on a strategy against random for one metric, claiming only what the tests support."""
    name = METRIC_NAMES[metric]
    low, high = versus["final_ci"]
    final = (f"final {name} {points(versus['final_mean'])} points (95% CI {points(low)} to {points(high)})")
    wins, losses = versus["wins"], versus["losses"]
    p = versus["final_p_value"]
    final_significant = p is not None and p < ALPHA
    if final_significant and versus["final_mean"] > 0:
        head = f"**beats random** at the final budget: {final}"
    elif final_significant:
        head = f"**worse than random** at the final budget: {final}"
    else:
        head = f"no significant difference from random at the final budget: {final}, within the noise"
    rounds = f"significantly better in {wins} and worse in {losses} of {n_rounds} query rounds"
    return f"`{strategy}` ({name}): {head}; {rounds}."


def dataset_section(results: DatasetResults, figure_root: str) -> list[str]:
    stats, summary = results.statistics, results.summary
    n_rounds, seeds = stats["query_rounds"], stats["seeds"]
    lines = [f"## {results.name}", ""]
    lines += ["| strategy | final accuracy (95% CI) | final macro-F1 (95% CI) | final balanced accuracy | "
              "AUBC (accuracy) | labels random needs for this accuracy (ratio) | rounds better / worse than random "
              "(accuracy) | (macro-F1) |",
              "|---|---|---|---|---|---|---|---|"]
    for strategy, row in summary.items():
        versus = {m: stats.get(m, {}).get("versus_random", {}).get(strategy) for m in METRIC_NAMES}
        wins = [f"{v['wins']} / {v['losses']}" if v else "–" for v in versus.values()]
        lines.append(f"| `{strategy}` | {ci_text(row['final_accuracy'], row['final_accuracy_ci95'])} | "
                     f"{ci_text(row['final_f1_macro'], row['final_f1_macro_ci95'])} | "
                     f"{row['final_balanced_accuracy']:.3f} | {row['aubc_accuracy']:.3f} | {labels_text(row)} | "
                     f"{wins[0]} | {wins[1]} |")
    lines += ["", f"{plural(len(seeds), 'seed')} ({', '.join(map(str, seeds))}), "
              f"{plural(n_rounds, 'query round')}, budget "
              f"{next(iter(summary.values()))['n_labeled']:,} labels. ± is the half-width of the 95% t interval "
              "over seeds.", ""]
    lines += ["**Verdict.**", ""]
    if "note" in stats:
        lines += [f"- {stats['note']}. The numbers above are not evidence that any strategy differs from another.", ""]
    elif "accuracy" not in stats or "versus_random" not in stats["accuracy"]:
        lines += ["- `random` is not in the grid, so nothing is compared with it; see the penalty matrices.", ""]
    else:
        for strategy in summary:
            for metric in METRIC_NAMES:
                versus = stats[metric]["versus_random"].get(strategy)
                if versus:
                    lines.append(f"- {verdict(strategy, versus, n_rounds, metric)}")
        lines += ["", _best_line(summary, stats), ""]
    for file, title in FIGURES:
        if file in results.figures:
            lines += [f"![{results.name}: {title}]({figure_root}/{results.name}/{file})", ""]
    return lines


def _best_line(summary: dict, stats: dict) -> str:
    beaters = [s for s, v in stats["accuracy"]["versus_random"].items()
               if v["final_p_value"] is not None and v["final_p_value"] < ALPHA and v["final_mean"] > 0]
    if not beaters:
        return ("No strategy is significantly more accurate than random at the final budget on this dataset; "
                "gaps in the table are within the noise of these seeds.")
    best = max(beaters, key=lambda s: summary[s]["final_accuracy"])
    return (f"Significantly more accurate than random at the final budget: {', '.join(f'`{b}`' for b in beaters)}; "
            f"the highest of them is `{best}` ({summary[best]['final_accuracy']:.3f}).")


def cross_dataset_table(results: list[DatasetResults]) -> list[str]:
    strategies = [s for s in results[0].summary if s != "random"]
    header = "| strategy | " + " | ".join(f"{r.name}: final accuracy − random (95% CI) | labels random needs"
                                          for r in results) + " |"
    lines = [header, "|---|" + "---|---|" * len(results)]
    for strategy in strategies:
        cells = []
        for r in results:
            versus = r.statistics.get("accuracy", {}).get("versus_random", {}).get(strategy)
            if versus:
                low, high = versus["final_ci"]
                significant = versus["final_p_value"] is not None and versus["final_p_value"] < ALPHA
                mark = " *" if significant else ""
                cells.append(f"{points(versus['final_mean'])} ({points(low)} to {points(high)}){mark}")
            else:
                cells.append("–")
            cells.append(labels_text(r.summary.get(strategy, {})))
        lines.append(f"| `{strategy}` | " + " | ".join(cells) + " |")
    lines += ["", "Differences in accuracy points, paired by seed; * = significant at alpha = 0.05 "
              "(paired two-sided t-test at the final round)."]
    return lines


def render(results: list[DatasetResults], configuration: list[str], figure_root: str = "plots") -> str:
    """The whole report; figure links are `figure_root/<dataset>/<file>`."""
    lines = ["# Active-learning study report", "",
             "How much faster does the CNN learn when a query strategy, not chance, picks the images to label? "
             "Every strategy starts from the same random initial set per seed, so runs pair by seed.", "",
             "## Configuration", "", *[f"- {line}" for line in configuration], "",
             "## Statistics used", "",
             f"- Per query round, the difference between two strategies is taken seed by seed; its mean gets a 95% "
             f"t confidence interval and a paired two-sided t-test (scipy.stats.ttest_rel), alpha = {ALPHA}.",
             "- Penalty matrix (Ash et al. 2020): for each ordered pair, the query rounds in which the row strategy "
             "is significantly better than the column strategy.",
             "- Tests are per round and not corrected for the many rounds and pairs: about one test in twenty is "
             "'significant' by chance. Read single significant rounds with care; look for runs of them.",
             "- Labels random needs: where random's mean accuracy curve (interpolated linearly between rounds) "
             "first reaches the strategy's final mean accuracy; the ratio is that over the strategy's budget "
             "(above 1: the strategy saves labels).", ""]
    if results:
        lines += ["## Across datasets", "", *cross_dataset_table(results), ""]
    for r in results:
        lines += dataset_section(r, figure_root)
    return "\n".join(lines).rstrip() + "\n"
