"""The report's recipe section: does each strategy's verdict survive a better training recipe?

A study that lists recipes (`al.recipes`) has one unit per dataset and recipe. For
each dataset and verdict metric it tabulates, per recipe, what the recipe itself
buys (the baseline under it minus the baseline under the default recipe, seed by
seed) and what each strategy buys on top (the strategy minus the baseline under
the same recipe), with the verdicts of the study's one Holm family, then says per
strategy whether its default-recipe verdict holds under every recipe; a figure
draws the same gains side by side.
"""

from __future__ import annotations

from pathlib import Path

from alstudy.paths import DEFAULT_RECIPE, unit_parts
from alstudy.study import plotting
from alstudy.study.report_format import METRIC_NAMES, DatasetResults, points
from alstudy.study.verdicts import Verdict, under_default


def figure_name(dataset: str, metric: str) -> str:
    """The file of one dataset's recipe-gains figure for one metric, in the report's figure folder."""
    return f"{figure_prefix(dataset)}{metric}.png"


def figure_prefix(dataset: str) -> str:
    return f"{dataset}-recipes-"


def is_gains_figure(filename: str) -> bool:
    """Whether a report figure is one of the recipe-gains figures `figure_name` names."""
    return "-recipes-" in filename and filename.endswith(".png")


def by_dataset(results: list[DatasetResults]) -> dict[str, dict[str, DatasetResults]]:
    """dataset -> recipe -> its unit's results, in the study's order."""
    out: dict[str, dict[str, DatasetResults]] = {}
    for r in results:
        dataset, recipe = unit_parts(r.name)
        out.setdefault(dataset, {})[recipe] = r
    return out


def _verdicts(r: DatasetResults, metric: str) -> dict[tuple[str, str], Verdict]:
    return {(v.a, v.b): v for v in r.verdicts if v.metric == metric}


def cell(v: Verdict | None) -> str:
    if v is None:
        return "–"
    return f"{points(v.mean)} ({points(v.ci_low)} to {points(v.ci_high)}), **{v.decision}**"


def survival(strategy: str, baseline: str, decisions: dict[str, str]) -> str:
    """One sentence: the default recipe's verdict for `strategy` and what became of it under each recipe.

    Only another decided verdict (worse for better, or equivalent: the gain shown gone) says the verdict does
    not survive a recipe; undecided there leaves it unconfirmed, which is not evidence either way."""
    first = decisions[DEFAULT_RECIPE]
    others = {recipe: d for recipe, d in decisions.items() if recipe != DEFAULT_RECIPE}
    head = f"`{strategy}` against `{baseline}`: {first} under the default recipe"
    if first == "undecided":
        each = ", ".join(f"{d} under `{recipe}`" for recipe, d in others.items())
        return f"{head}, so no verdict to carry over; {each}"
    kept = [recipe for recipe, d in others.items() if d == first]
    if len(kept) == len(others):
        return f"{head}; the verdict **survives** every recipe ({_names(kept)})"
    lost = [f"`{recipe}` ({d} there)" for recipe, d in others.items() if d not in (first, "undecided")]
    unconfirmed = [recipe for recipe, d in others.items() if d == "undecided"]
    parts = []
    if lost:
        parts.append(f"it **does not survive** {', '.join(lost)}")
    if unconfirmed:
        parts.append(
            f"it is **not confirmed** under {_names(unconfirmed)} (undecided there: not shown, and not shown gone)"
        )
    if kept:
        parts.append(f"it holds under {_names(kept)}")
    return f"{head}; " + "; ".join(parts)


def _names(recipes: list[str]) -> str:
    return ", ".join(f"`{r}`" for r in recipes)


def recipes_section(
    results: list[DatasetResults], baseline: str, figure_dir: Path | None, figure_link: str
) -> list[str]:
    """The section (empty for a study of the default recipe alone); figures go to `figure_dir` (None: no
    figures), linked as `figure_link/<file>`."""
    datasets = {d: units for d, units in by_dataset(results).items() if len(units) > 1}
    if not datasets:
        return []
    lines = [
        "## Recipes: does each verdict survive a better training recipe?",
        "",
        f"Per dataset and recipe: what the recipe itself buys (`{baseline}` under it minus `{baseline}` under "
        f"the default recipe, paired by seed: the same seed draws the same initial labels under every recipe) "
        f"and what each strategy buys on top of it (the strategy minus `{baseline}` under the same recipe). AUBC "
        "points with 95% CIs; the verdicts are the study's, Holm-corrected in the one family of the Verdicts "
        "section. A verdict survives a recipe when the recipe gives the strategy the same verdict as the default, "
        "and does not survive it when the recipe gives another decided one (worse, or equivalent: the gain shown "
        "gone); undecided under a recipe leaves the verdict unconfirmed there, which says nothing either way.",
        "",
    ]
    for dataset, units in datasets.items():
        recipes = list(units)
        for metric in _metrics(units):
            per_recipe = {recipe: _verdicts(units[recipe], metric) for recipe in recipes}
            strategies = [a for a, b in per_recipe[DEFAULT_RECIPE] if b == baseline]
            lines += [
                f"### {dataset}, {METRIC_NAMES[metric]}",
                "",
                "| | " + " | ".join(f"`{r}`" for r in recipes) + " |",
                "|---|" + "---|" * len(recipes),
                f"| the recipe itself (`{baseline}`) | "
                + " | ".join(
                    "reference" if r == DEFAULT_RECIPE else cell(per_recipe[r].get((baseline, under_default(baseline))))
                    for r in recipes
                )
                + " |",
            ]
            for strategy in strategies:
                row = [cell(per_recipe[r].get((strategy, baseline))) for r in recipes]
                lines.append(f"| `{strategy}` on top | " + " | ".join(row) + " |")
            lines.append("")
            for strategy in strategies:
                decisions = {
                    r: v.decision if (v := per_recipe[r].get((strategy, baseline))) else "not run" for r in recipes
                }
                lines.append(f"- {survival(strategy, baseline, decisions)}.")
            lines.append("")
            if figure_dir is not None:
                name = figure_name(dataset, metric)
                plotting.recipe_gains(_gains(per_recipe, strategies, baseline), metric, dataset, figure_dir / name)
                lines += [f"![{dataset}: recipe and strategy gains, {METRIC_NAMES[metric]}]({figure_link}/{name})", ""]
    return lines


def _metrics(units: dict[str, DatasetResults]) -> list[str]:
    found = {v.metric for r in units.values() for v in r.verdicts}
    return [m for m in METRIC_NAMES if m in found]


def _gains(
    per_recipe: dict[str, dict[tuple[str, str], Verdict]], strategies: list[str], baseline: str
) -> dict[str, dict[str, tuple[float, float, float]]]:
    out: dict[str, dict[str, tuple[float, float, float]]] = {}
    for recipe, verdicts in per_recipe.items():
        bars = {}
        if (own := verdicts.get((baseline, under_default(baseline)))) is not None:
            bars[plotting.RECIPE_BAR] = (own.mean, own.ci_low, own.ci_high)
        for strategy in strategies:
            if (v := verdicts.get((strategy, baseline))) is not None:
                bars[strategy] = (v.mean, v.ci_low, v.ci_high)
        out[recipe] = bars
    return out
