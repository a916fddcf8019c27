"""The study report: its headline verdicts, how they were reached, and the detail, as Markdown.

The headline comes first: whole learning curves compared seed by seed (AUBC),
Holm-corrected over the study (alstudy/study/verdicts.py), with the seeds a
non-significant comparison would need. The per-round tests and the final-round
comparison follow as detail (alstudy/study/report_detail.py), uncorrected and
labelled so. Every verdict claims only what its test supports.
"""

from __future__ import annotations

from pathlib import Path

from alstudy.paths import DEFAULT_RECIPE, unit_parts
from alstudy.study.report_detail import cross_dataset_table, dataset_section
from alstudy.study.report_format import METRIC_NAMES, DatasetResults, p_is, p_text, plural, points
from alstudy.study.report_recipes import recipes_section
from alstudy.study.results import setups_text
from alstudy.study.verdicts import DECISIONS, FRAGILE, Family, Verdict, pairs, under_default
from alstudy.tracking.metric_names import CLASS_KEYS_TAG, F1, QUERIED, STOPPING, SUMMARY, TIME, metric_name


def seeds_text(v: Verdict) -> str:
    if v.seeds_needed is None:
        return f"more than {v.family.max_seeds} seeds would be needed to decide it at this effect"
    return f"about {v.seeds_needed} seeds would likely decide it ({v.likely}, if the effect is the observed one)"


def replication_text(v: Verdict) -> str:
    """How likely a rerun with new seeds is to give the same verdict; fragile ones say so."""
    chance = f"a rerun with {plural(v.n_seeds, 'new seed')} would give it {100 * v.replication:.0f}% of the time"
    return f"**fragile**: {chance}" if v.fragile else chance


def curve_verdict(v: Verdict) -> str:
    """One sentence on one curve-level comparison, claiming only what the corrected tests support."""
    head = f"`{v.a}` vs `{v.b}` ({METRIC_NAMES[v.metric]})"
    margin = points(v.family.margin).lstrip("+")
    numbers = (
        f"{points(v.mean)} AUBC points (95% CI {points(v.ci_low)} to {points(v.ci_high)}), "
        f"difference Holm-adjusted {p_is(v.p_holm)}, equivalence (within ±{margin}) Holm-adjusted "
        f"{p_is(v.p_equivalence_holm)}"
    )
    if v.decision == "undecided":
        return (
            f"{head}: {numbers}: **undecided**, neither a difference nor equivalence shown; {seeds_text(v)} "
            f"(power {v.family.power:g}; {plural(v.n_seeds, 'seed')} now)"
            + (f"; {replication_text(v)}" if v.fragile else "")
        )
    if v.decision == "equivalent":
        return f"{head}: {numbers}: **equivalent** (within ±{margin} points); {replication_text(v)}"
    smaller = f", by less than the ±{margin}-point margin" if v.p_equivalence_holm < v.family.alpha else ""
    return f"{head}: {numbers}: **`{v.a}` {v.decision} than `{v.b}`**{smaller}; {replication_text(v)}"


def verdict_cell(v: Verdict) -> str:
    if v.decision == "undecided":
        needed = f"more than {v.family.max_seeds}" if v.seeds_needed is None else f"about {v.seeds_needed}"
        return f"undecided ({needed} seeds)" + (", fragile" if v.fragile else "")
    return f"**{v.decision}**" + (" (fragile)" if v.fragile else "")


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
        "| dataset | comparison | metric | AUBC difference, points (95% CI) | p | Holm p | "
        "equivalence Holm p | verdict | same verdict on a rerun |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        lines.append(
            f"| {v.dataset} | `{v.a}` − `{v.b}` | {METRIC_NAMES[v.metric]} | {points(v.mean)} "
            f"({points(v.ci_low)} to {points(v.ci_high)}) | {p_text(v.p_value)} | {p_text(v.p_holm)} | "
            f"{p_text(v.p_equivalence_holm)} | {verdict_cell(v)} | {100 * v.replication:.0f}% |"
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
    margin = points(family.margin).lstrip("+")
    lines += [
        f"Each run's learning curve is summarised by its AUBC (area under the budget curve: the mean score "
        f"over the label budget) and two strategies are compared on the per-seed differences, a − b in "
        f"points. Each comparison has four possible answers: **better** or **worse** (a paired two-sided "
        f"t-test rejects no difference), **equivalent** (two one-sided tests show the difference within "
        f"±{margin} points, `study.equivalence_margin`) or **undecided** (neither). The {family.hypotheses} "
        f"p-values ({family.size} comparisons x 2: every dataset, metric and pair of strategies"
        + (", under every recipe, and what each recipe buys" if _has_recipes(results) else "")
        + ") are "
        f"Holm-corrected together (Shaffer's refinement: at most {family.size} of them can be true), "
        f"alpha = {family.alpha:g}. An undecided comparison names the seeds that would likely decide it "
        f"(power {family.power:g} at alpha / {family.size} = {family.power_alpha:.2g}); each verdict says how "
        f"often a rerun with new seeds would repeat it, and "
        f"one that would repeat less than {FRAGILE:.0%} of the time is marked fragile (see Statistics used).",
        "",
    ]
    counts = {d: sum(v.decision == d for v in against + between) for d in DECISIONS}
    fragile = sum(v.fragile for v in against + between)
    tally = ", ".join(f"{n} {d}" for d, n in counts.items()) + f"; {fragile} of them fragile."
    in_all = f"In all: {tally}"
    # The recipes' own comparisons share the family but not these tables: count them apart, so the
    # numbers add up to the family's size.
    recipe_effects = [v for r in results for v in r.verdicts if v.b == under_default(baseline)]
    if recipe_effects:
        effects = ", ".join(f"{sum(v.decision == d for v in recipe_effects)} {d}" for d in DECISIONS)
        in_all = (
            f"In all, of the {len(against + between)} comparisons between strategies: {tally} "
            f"Of the {len(recipe_effects)} of what each recipe buys (Recipes, below): {effects}."
        )
    lines += [
        in_all,
        "",
        *design_lines(family, counts["undecided"]),
    ]
    if against:
        lines += [f"### Against `{baseline}`", "", *verdict_table(against), ""]
        lines += [f"- {v.dataset}, {curve_verdict(v)}." for v in against] + [""]
    if between:
        lines += ["### Between strategies", "", *verdict_table(between), ""]
    return lines


def _has_recipes(results: list[DatasetResults]) -> bool:
    return any(unit_parts(r.name)[1] != DEFAULT_RECIPE for r in results)


def design_lines(family: Family, undecided: int) -> list[str]:
    """How many seeds the study ran and why: a fixed number, or looks until decided (study.sequential)."""
    if not family.looks:
        return []
    n, planned, looks = family.looks[-1], family.planned, len(family.looks)
    if undecided == 0:
        state = f"every comparison is decided, so the study stopped at {n} of at most {planned} seeds"
    elif n >= planned:
        state = f"the seed cap ({planned}) is reached with {plural(undecided, 'comparison')} still undecided"
    else:
        state = (
            f"{plural(undecided, 'comparison')} still undecided at {n} of at most {planned} seeds: "
            "`alstudy grid` adds the next seeds"
        )
    return [
        f"Seeds: the study added them in steps and looked after {', '.join(map(str, family.looks))} seeds "
        f"({plural(looks, 'look')}); each p is its group-sequential p (O'Brien-Fleming alpha spending over "
        f"{planned} planned seeds), so looking again did not raise the error rate. Now {state}.",
        "",
    ]


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
        f"and each pair of the other strategies ({size}), each with two hypotheses: no difference (the t-test) "
        "and a difference of at least the equivalence margin (two one-sided t-tests, TOST, Schuirmann 1987: "
        "the larger one-sided p), Holm-corrected with Shaffer's (1986) refinement: a comparison's two hypotheses "
        "cannot both be true, so Holm's multipliers count at most one per comparison still open. "
        "The chance of any false 'better', 'worse' or 'equivalent' in the whole study "
        f"is at most alpha = {alpha:g}. A pair whose per-seed differences are all 0 has no difference test "
        "(it counts with p = 1) and is equivalent.",
        "- Seeds added in steps (`study.sequential`): after each step the tests are repeated on every seed in "
        "hand, and each hypothesis's p is replaced by its group-sequential p, the smallest level at which a test "
        "with Lan and DeMets' (1983) O'Brien-Fleming-type alpha spending over the planned seeds would have "
        "stopped by this look (boundaries applied as nominal levels to the t-tests' p, Jennison and Turnbull "
        "2000); Holm over those keeps the study's error rate under the repeated looks (Maurer and Bretz 2013). "
        "Early looks need overwhelming evidence; the last one nearly the full level.",
        "- Seeds needed (for an undecided comparison): the smallest number of seeds at which the t-test, or "
        "TOST where the observed difference is inside the margin, would reach the stated power if the true "
        "effect were the observed one (d = mean / SD of the per-seed differences), from the noncentral t "
        "distribution (scipy.stats.nct). It uses the corrected level alpha / m (the correction's strictest "
        "step), so it leans high; with few seeds the observed SD is itself rough, so read it as an order of "
        "magnitude.",
        "- Same verdict on a rerun: the share of 4,000 simulated reruns with as many new seeds (per-seed "
        "differences drawn normal with the observed mean and SD) that reach the same verdict at the level the "
        "comparison met in this study's Holm procedure (the estimated-power approach to reproducibility, "
        f"Goodman 1992, Shao and Chow 2002). Below {FRAGILE:.0%}: fragile. A verdict at a p just under its "
        "level repeats about half the time, however small that p.",
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


def in_mlflow(experiment: str, baseline: str, recipes: bool = False) -> list[str]:
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
        "`_p_equivalence`, `_p_equivalence_holm`, `_significant`, `_equivalent`, `_replication` and `_seeds_needed`.",
        *(
            [
                "- Each recipe of `al.recipes` has a study run of its own, `<dataset>-<recipe>-summary`, with its "
                "cells `<dataset>-<recipe>-<strategy>-s<seed>` nested under it; what the recipe buys is "
                f"{name(SUMMARY, f'{baseline}.aubc_<metric>_vs_{baseline}_under_default')} there."
            ]
            if recipes
            else []
        ),
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


def compute_setups(results: list[DatasetResults]) -> dict[str, int]:
    """How many of the study's cells ran on each compute setup (backend, device, precision, threads)."""
    counts: dict[str, int] = {}
    for r in results:
        for setup, n in r.statistics.get("compute", {}).items():
            counts[setup] = counts.get(setup, 0) + n
    return counts


def render(
    results: list[DatasetResults],
    configuration: list[str],
    figure_root: str = "plots",
    *,
    alpha: float,
    baseline: str = "random",
    experiment: str | None = None,
    stopping: tuple[float, int] | None = None,
    recipe_figures: Path | None = None,
) -> str:
    """The whole report; figure links are `figure_root/<dataset>/<file>`. alpha: study.alpha, the level of the
    per-round detail (the headline's family carries its own, from the verdicts stage). experiment: the MLflow
    experiment, for a section on where the numbers are there. stopping: (threshold, window) of the stopping
    criterion, for a section on where it would have stopped the runs. A study with recipes (units named
    `<dataset>~<recipe>`) gets a section on whether each verdict survives them, its figures written to
    `recipe_figures` (linked relative to the report, as `<its folder name>/<file>`; None: no figures)."""
    lines = [
        "# Active-learning study report",
        "",
        "How much faster does the CNN learn when a query strategy, not chance, picks the images to label? "
        "Every strategy starts from the same random initial set per seed, so runs pair by seed.",
        "",
    ]
    lines += headline(results, baseline)
    link = recipe_figures.name if recipe_figures is not None else ""
    lines += recipes_section(results, baseline, recipe_figures, link)
    setups = compute_setups(results)
    if len(setups) > 1:
        lines += [
            f"**Mixed setups**: the cells ran on {setups_text(setups)}. The comparisons pair seeds across "
            "them as they are, so a difference may partly be the setup's (a backend, device or precision "
            "changes the numbers within seed noise, not bit for bit); rerun the odd cells on one setup "
            "(`dvc repro -f al@<cell>` there) for a clean comparison.",
            "",
        ]
    if setups:
        configuration = [*configuration, f"compute: {setups_text(setups)}"]
    lines += ["## Configuration", "", *[f"- {line}" for line in configuration], ""]
    lines += statistics_used(results, alpha, baseline)
    if experiment is not None:
        lines += in_mlflow(experiment, baseline, _has_recipes(results))
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
