"""The study report: its headline verdicts, how they were reached, and the detail, as Markdown.

The headline comes first: whole learning curves compared seed by seed (AUBC),
Holm-corrected over the study (alstudy/study/verdicts.py), with the seeds a
non-significant comparison would need. The per-round tests and the final-round
comparison follow as detail (alstudy/study/report_detail.py), uncorrected and
labelled so. Every verdict claims only what its test supports.
"""

from __future__ import annotations

from alstudy.study.report_detail import cross_dataset_table, dataset_section
from alstudy.study.report_format import METRIC_NAMES, DatasetResults, p_is, p_text, plural, points
from alstudy.study.verdicts import Verdict, pairs
from alstudy.tracking.metric_names import CLASS_KEYS_TAG, F1, QUERIED, STOPPING, SUMMARY, TIME, metric_name


def seeds_text(v: Verdict) -> str:
    if v.seeds_needed is None:
        return f"more than {v.family.max_seeds} seeds would be needed to decide it at this effect"
    return f"about {v.seeds_needed} seeds would be likely to decide it"


def curve_verdict(v: Verdict) -> str:
    """One sentence on one curve-level comparison, claiming only what the corrected test supports."""
    head = f"`{v.a}` vs `{v.b}` ({METRIC_NAMES[v.metric]})"
    if v.decision == "no difference":
        why = "the same AUBC on every seed" if v.p_value is None else "a mean difference of 0"
        return f"{head}: no difference observed ({why})"
    numbers = (
        f"{points(v.mean)} AUBC points (95% CI {points(v.ci_low)} to {points(v.ci_high)}), "
        f"{p_is(v.p_value)}, Holm-adjusted {p_is(v.p_holm)}"
    )
    if v.decision == "not significant":
        return (
            f"{head}: {numbers}: not significant; {seeds_text(v)} "
            f"(power {v.family.power:g}; {plural(v.n_seeds, 'seed')} now)"
        )
    return f"{head}: {numbers}: **`{v.a}` {v.decision} than `{v.b}`**"


def verdict_cell(v: Verdict) -> str:
    if v.decision in ("better", "worse"):
        return f"**{v.decision}**"
    if v.decision == "no difference":
        return "no difference observed"
    needed = f"more than {v.family.max_seeds}" if v.seeds_needed is None else f"about {v.seeds_needed}"
    return f"not significant ({needed} seeds)"


def _ordered(results: list[DatasetResults], baseline: str, against: bool) -> list[Verdict]:
    """The verdicts in the grid's order: per dataset, each pair (baseline pairs first), each metric."""
    out = []
    for r in results:
        by_key = {(v.a, v.b, v.metric): v for v in r.verdicts}
        # statistics keeps the grid's order; the summary file's keys are sorted
        for a, b in pairs(r.statistics.get("strategies", list(r.summary)), baseline):
            if (b == baseline) == against:
                out += [by_key[(a, b, m)] for m in METRIC_NAMES if (a, b, m) in by_key]
    return out


def verdict_table(verdicts: list[Verdict]) -> list[str]:
    lines = [
        "| dataset | comparison | metric | AUBC difference, points (95% CI) | p | Holm p | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        lines.append(
            f"| {v.dataset} | `{v.a}` − `{v.b}` | {METRIC_NAMES[v.metric]} | {points(v.mean)} "
            f"({points(v.ci_low)} to {points(v.ci_high)}) | {p_text(v.p_value)} | {p_text(v.p_holm)} | "
            f"{verdict_cell(v)} |"
        )
    return lines


def headline(results: list[DatasetResults], baseline: str) -> list[str]:
    """The report's first section: the curve-level verdicts of the whole study."""
    lines = ["## Verdicts: whole learning curves, Holm-corrected", ""]
    against, between = _ordered(results, baseline, True), _ordered(results, baseline, False)
    if not against and not between:
        return lines + [
            "No curve-level test is possible: the study needs at least 2 seeds (al.seeds); Werner et al. 2024 use 50.",
            "",
        ]
    family = (against or between)[0].family
    lines += [
        f"Each run's learning curve is summarised by its AUBC (area under the budget curve: the mean score "
        f"over the label budget) and two strategies are compared on the per-seed differences, a − b in "
        f"points, with a paired two-sided t-test. The p-values are Holm-corrected over all "
        f"{family.size} comparisons in the tables below (every dataset, metric and pair of strategies), "
        f"alpha = {family.alpha:g}: a verdict says better or worse only where the adjusted p is below alpha. "
        f"Where it is not, the seeds that would likely decide it (power {family.power:g} at the corrected "
        f"level alpha / {family.size} = {family.power_alpha:.2g}; see Statistics used).",
        "",
    ]
    if against:
        lines += [f"### Against `{baseline}`", "", *verdict_table(against), ""]
        lines += [f"- {v.dataset}, {curve_verdict(v)}." for v in against] + [""]
    if between:
        lines += ["### Between strategies", "", *verdict_table(between), ""]
    return lines


def statistics_used(results: list[DatasetResults], alpha: float, baseline: str) -> list[str]:
    verdicts = [v for r in results for v in r.verdicts]
    family = verdicts[0].family if verdicts else None
    size = f"m = {family.size} in this study" if family else "none in this study"
    metrics = sorted({v.metric for v in verdicts}, key=list(METRIC_NAMES).index)
    return [
        "## Statistics used",
        "",
        "- Headline (Verdicts): each run's learning curve is summarised by its AUBC, the trapezoid area under "
        "the score-vs-labels curve divided by the label span (Werner et al. 2024 compare strategies this way, "
        "over seeds). Per pair of strategies, the per-seed differences of AUBC get a mean with a 95% t "
        "confidence interval and a paired two-sided t-test (scipy.stats.ttest_rel).",
        f"- The family, corrected with Holm's (1979) step-down method: every comparison in the Verdicts tables, "
        f"i.e. on every dataset with at least 2 seeds, for each metric "
        f"({', '.join(METRIC_NAMES[m] for m in metrics) or 'study.metrics'}), each strategy against `{baseline}` "
        f"and each pair of the other strategies ({size}). The chance of any false 'better' or 'worse' in the "
        f"whole study is at most alpha = {alpha:g}. A pair whose per-seed differences are all 0 has no test "
        "and counts with p = 1.",
        "- Seeds needed (for a comparison that is not significant): the smallest number of seeds at which a "
        "paired two-sided t-test would reach the stated power if the true effect were the observed one "
        "(d = mean / SD of the per-seed differences), from the noncentral t distribution (scipy.stats.nct). "
        "It uses the corrected level alpha / m (Bonferroni, Holm's strictest step: a comparison that reaches it "
        "is significant whatever the others do), so it leans high; with few seeds the observed SD is itself "
        "rough, so read it as an order of magnitude.",
        "- Detail, per-round tests, uncorrected: per query round, the difference between two strategies is taken "
        "seed by seed; "
        f"its mean gets a 95% t confidence interval and a paired two-sided t-test, alpha = {alpha:g}. "
        "The penalty matrix (Ash et al. 2020) counts, for each ordered pair, the query rounds in which the row "
        "strategy is significantly better than the column strategy. These tests are not corrected for the many "
        "rounds and pairs: about one in twenty is 'significant' by chance. The final-round comparisons "
        "(Across datasets, and each dataset's list) are the same test at the last round.",
        "- Labels random needs: where random's mean accuracy curve (interpolated linearly between rounds) "
        "first reaches the strategy's final mean accuracy; the ratio is that over the strategy's budget "
        "(above 1: the strategy saves labels).",
        "",
    ]


def in_mlflow(experiment: str, baseline: str) -> list[str]:
    """Where the report's numbers are in MLflow, under the names the runs use (alstudy/tracking/metric_names.py)."""

    def name(group: str, key: str) -> str:
        return f"`{metric_name(group, key)}`"

    return [
        "## In MLflow",
        "",
        f"- Experiment `{experiment}`: per dataset one study run, `<dataset>-summary`, with this report "
        "(`study.md`), the figures (`plots/`) and the summary numbers as "
        f"{name(SUMMARY, '<strategy>.<metric>')} (e.g. {name(SUMMARY, 'margin.aubc_accuracy')}), the verdicts as "
        f"{name(SUMMARY, f'<strategy>.aubc_<metric>_vs_{baseline}')} with `_ci_low`, `_ci_high`, `_p`, `_p_holm`, "
        "`_significant` and `_seeds_needed`.",
        "- Its cells, `<dataset>-<strategy>-s<seed>`, are nested under it. Each logs per round (step = round) "
        f"`accuracy`, `balanced_accuracy`, `f1_macro` and `n_labeled` (and `epochs` trained); "
        f"per class {name(F1, '<class>')} and "
        f"{name(QUERIED, '<class>')}, `<class>` being the class name in lower case with `_` for anything but "
        f"letters and digits (the run's tag `{CLASS_KEYS_TAG}` maps it back); timings "
        f"{name(TIME, 'train_seconds')}, {name(TIME, 'score_seconds')}, {name(TIME, 'eval_seconds')}, "
        f"{name(TIME, 'round_seconds')}; the stopping criterion's agreement with the round before, "
        f"{name(STOPPING, 'kappa')}.",
        "",
    ]


def stopping_section(results: list[DatasetResults], threshold: float, window: int) -> list[str]:
    """Where the stopping criterion would have stopped the runs, against where they ended."""
    lines = [
        "## When to stop labelling",
        "",
        "Stabilising predictions (Bloodgood and Vijay-Shanker 2009): a run could stop once its model's "
        "predictions on a fixed sample of unlabelled pool images agree with the previous round's model at "
        f"Cohen's kappa >= {threshold:g} for {plural(window, 'round')} in a row (`stopping` in params.yaml). "
        "It needs no labels. Where it would have stopped each run, against the same runs' final round:",
        "",
        "| Dataset | Strategy | Runs it stopped | Labels at the stop | Accuracy at the stop | Final accuracy |",
        "|---|---|---|---|---|---|",
    ]
    rows = 0
    for r in results:
        for strategy, row in r.summary.items():
            if "stop_runs" not in row:
                continue
            rows += 1
            runs = f"{row['stop_runs']} of {row['n_seeds']}"
            if not row["stop_runs"]:
                lines.append(f"| {r.name} | {strategy} | {runs} | not within {row['n_labeled']:,} labels | | |")
                continue
            lines.append(
                f"| {r.name} | {strategy} | {runs} | {row['stop_n_labeled']:,.0f} | {row['stop_accuracy']:.4f} "
                f"| {row['stop_final_accuracy']:.4f} at {row['n_labeled']:,} |"
            )
    if not rows:
        return []
    return lines + [""]


def render(
    results: list[DatasetResults],
    configuration: list[str],
    figure_root: str = "plots",
    *,
    alpha: float,
    baseline: str = "random",
    experiment: str | None = None,
    stopping: tuple[float, int] | None = None,
) -> str:
    """The whole report; figure links are `figure_root/<dataset>/<file>`. alpha: study.alpha, the level of the
    per-round detail (the headline's family carries its own, from the verdicts stage). experiment: the MLflow
    experiment, for a section on where the numbers are there. stopping: (threshold, window) of the stopping
    criterion, for a section on where it would have stopped the runs."""
    lines = [
        "# Active-learning study report",
        "",
        "How much faster does the CNN learn when a query strategy, not chance, picks the images to label? "
        "Every strategy starts from the same random initial set per seed, so runs pair by seed.",
        "",
    ]
    lines += headline(results, baseline)
    lines += ["## Configuration", "", *[f"- {line}" for line in configuration], ""]
    lines += statistics_used(results, alpha, baseline)
    if experiment is not None:
        lines += in_mlflow(experiment, baseline)
    if results:
        lines += [
            "## Across datasets (detail: final round, uncorrected)",
            "",
            *cross_dataset_table(results, alpha, baseline),
            "",
        ]
    if stopping is not None:
        lines += stopping_section(results, *stopping)
    for r in results:
        lines += dataset_section(r, figure_root, alpha, baseline)
    return "\n".join(lines).rstrip() + "\n"
