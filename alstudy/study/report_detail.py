"""The report's detail: per dataset, final scores, the final-round and per-round tests against the baseline
(uncorrected) and the figures; the final-round comparison across datasets. The headline is elsewhere
(alstudy/study/report.py): these tests are labelled as detail wherever they appear."""

from __future__ import annotations

from alstudy.study.report_format import METRIC_NAMES, DatasetResults, ci_text, labels_text, plural, points

DETAIL = "detail: per-round tests, uncorrected"


def figures(baseline: str) -> list[tuple[str, str]]:
    """The figures a dataset section links, in order, with their titles."""
    return [
        ("accuracy.png", "Accuracy"),
        ("f1_macro.png", "Macro-F1"),
        ("balanced_accuracy.png", "Balanced accuracy"),
        *(
            (f"difference_{m}.png", f"{n[0].upper()}{n[1:]} minus {baseline}, paired by seed")
            for m, n in METRIC_NAMES.items()
        ),
        *((f"penalty_{m}.png", f"Pairwise penalty matrix ({n})") for m, n in METRIC_NAMES.items()),
        ("per_class_f1.png", "Per-class F1"),
        ("rare_classes.png", "The rarest classes: labelled images and F1 per round"),
        ("queried_classes.png", "Class mix of the queried images"),
    ]


def verdict(strategy: str, versus: dict, n_rounds: int, metric: str, alpha: float, baseline: str = "random") -> str:
    """Detail: one sentence on a strategy against the baseline at the final round and per round, uncorrected."""
    name = METRIC_NAMES[metric]
    low, high = versus["final_ci"]
    final = f"final {name} {points(versus['final_mean'])} points (95% CI {points(low)} to {points(high)})"
    wins, losses = versus["wins"], versus["losses"]
    p = versus["final_p_value"]
    final_significant = p is not None and p < alpha
    if final_significant and versus["final_mean"] > 0:
        head = f"beats {baseline} at the final budget: {final}"
    elif final_significant:
        head = f"worse than {baseline} at the final budget: {final}"
    else:
        head = f"no significant difference from {baseline} at the final budget: {final}, within the noise"
    rounds = f"significantly better in {wins} and worse in {losses} of {n_rounds} query rounds"
    return f"`{strategy}` ({name}): {head}; {rounds}."


def _versus(stats: dict, metric: str, baseline: str) -> dict:
    return stats.get(metric, {}).get(f"versus_{baseline}", {})


def lead_metric(stats: dict) -> str:
    """The metric the one-line summaries use: accuracy, unless study.metrics leaves it out."""
    compared = [m for m in METRIC_NAMES if m in stats]
    return "accuracy" if "accuracy" in compared or not compared else compared[0]


def dataset_section(results: DatasetResults, figure_root: str, alpha: float, baseline: str) -> list[str]:
    stats, summary = results.statistics, results.summary
    n_rounds, seeds = stats["query_rounds"], stats["seeds"]
    compared = [m for m in METRIC_NAMES if m in stats]
    lines = [f"## {results.name}", ""]
    lines += [
        "| strategy | final accuracy (95% CI) | final macro-F1 (95% CI) | final balanced accuracy | "
        "AUBC (accuracy) | labels random needs for this accuracy (ratio) | "
        + " | ".join(f"rounds better / worse than {baseline} ({METRIC_NAMES[m]})" for m in compared)
        + " |",
        "|---|---|---|---|---|---|" + "---|" * len(compared),
    ]
    for strategy, row in summary.items():
        versus = [_versus(stats, m, baseline).get(strategy) for m in compared]
        wins = "".join(f" {v['wins']} / {v['losses']} |" if v else " – |" for v in versus)
        lines.append(
            f"| `{strategy}` | {ci_text(row['final_accuracy'], row['final_accuracy_ci95'])} | "
            f"{ci_text(row['final_f1_macro'], row['final_f1_macro_ci95'])} | "
            f"{row['final_balanced_accuracy']:.3f} | {row['aubc_accuracy']:.3f} | {labels_text(row)} |" + wins
        )
    lines += [
        "",
        f"{plural(len(seeds), 'seed')} ({', '.join(map(str, seeds))}), "
        f"{plural(n_rounds, 'query round')}, budget "
        f"{next(iter(summary.values()))['n_labeled']:,} labels. ± is the half-width of the 95% t interval "
        "over seeds.",
        "",
    ]
    lines += [f"**Final round and per round ({DETAIL}).** The curve-level verdicts above are the headline.", ""]
    if "note" in stats:
        lines += [f"- {stats['note']}. The numbers above are not evidence that any strategy differs from another.", ""]
    elif f"versus_{baseline}" not in stats.get(lead_metric(stats), {}):
        lines += [f"- `{baseline}` is not in the grid, so nothing is compared with it; see the penalty matrices.", ""]
    else:
        for strategy in summary:
            for metric in compared:
                versus = _versus(stats, metric, baseline).get(strategy)
                if versus:
                    lines.append(f"- {verdict(strategy, versus, n_rounds, metric, alpha, baseline)}")
        lines += ["", _best_line(summary, stats, alpha, baseline, lead_metric(stats)), ""]
    for file, title in figures(baseline):
        if file in results.figures:
            lines += [f"![{results.name}: {title}]({figure_root}/{results.name}/{file})", ""]
    return lines


def _best_line(summary: dict, stats: dict, alpha: float, baseline: str, metric: str) -> str:
    better = "more accurate" if metric == "accuracy" else f"better in {METRIC_NAMES[metric]}"
    beaters = [
        s
        for s, v in _versus(stats, metric, baseline).items()
        if v["final_p_value"] is not None and v["final_p_value"] < alpha and v["final_mean"] > 0
    ]
    if not beaters:
        return (
            f"No strategy is significantly {better} than {baseline} at the final budget on this dataset "
            "(final-round test, uncorrected); gaps in the table are within the noise of these seeds."
        )
    best = max(beaters, key=lambda s: summary[s][f"final_{metric}"])
    return (
        f"Significantly {better} than {baseline} at the final budget: "
        f"{', '.join(f'`{b}`' for b in beaters)} (final-round test, uncorrected); "
        f"the highest of them is `{best}` ({summary[best][f'final_{metric}']:.3f})."
    )


def cross_dataset_table(results: list[DatasetResults], alpha: float, baseline: str) -> list[str]:
    strategies = [s for s in results[0].summary if s != baseline]
    metric = lead_metric(results[0].statistics)
    name = METRIC_NAMES[metric]
    header = (
        "| strategy | "
        + " | ".join(f"{r.name}: final {name} − {baseline} (95% CI) | labels random needs" for r in results)
        + " |"
    )
    lines = [header, "|---|" + "---|---|" * len(results)]
    for strategy in strategies:
        cells = []
        for r in results:
            versus = _versus(r.statistics, metric, baseline).get(strategy)
            if versus:
                low, high = versus["final_ci"]
                significant = versus["final_p_value"] is not None and versus["final_p_value"] < alpha
                mark = " *" if significant else ""
                cells.append(f"{points(versus['final_mean'])} ({points(low)} to {points(high)}){mark}")
            else:
                cells.append("–")
            cells.append(labels_text(r.summary.get(strategy, {})))
        lines.append(f"| `{strategy}` | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Differences in {name} points, paired by seed; * = significant at alpha = {alpha:g} "
        "(paired two-sided t-test at the final round, uncorrected: detail, not a verdict).",
    ]
    return lines
