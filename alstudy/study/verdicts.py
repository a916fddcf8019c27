"""The study's headline verdicts: whole learning curves compared seed by seed, Holm-corrected over the study.

Each run's learning curve is summarised by its area under the budget curve
(AUBC, ``alstudy.study.summary.aubc``: the mean score over the label budget), as
Werner et al. 2024 (CDALBench) do to compare strategies over seeds. Two
strategies are compared on the per-seed differences of their AUBCs (the same
seed gives both the same initial set): the mean difference with a 95% t
interval and a paired two-sided t-test (scipy.stats.ttest_rel). One test per
curve uses every round at once, so it is far stronger than a test at one round.

The family. The report calls a comparison significant only after Holm's (1979)
step-down correction over every comparison it gives a verdict on: on every
dataset (with at least two seeds), for every metric in ``study.metrics``, each
strategy against the baseline and each pair of the other strategies, each
unordered pair once. Holm keeps the chance of any false "significant" in the
whole study at ``study.alpha``. A pair whose per-seed differences are all zero
has no test (p is undefined); it stays in the family with p = 1.

Four answers. Each comparison carries two null hypotheses: "no difference" (the
t-test above) and "a difference of at least the margin" (``study.equivalence_margin``,
in AUBC points), tested with two one-sided t-tests (TOST; Schuirmann 1987: the
larger of the two one-sided p-values). Holm corrects all 2m of them together,
with Shaffer's (1986) refinement: the two hypotheses of one comparison cannot
both be true, so at most m of the 2m are, and Holm's first step divides alpha by
m, not 2m (with no equivalence in sight, the verdicts are plain Holm's over m). A
comparison is *better* or *worse* when its difference null falls, *equivalent*
when its non-equivalence null falls (the 1 - 2 alpha interval inside the margin),
and *undecided* otherwise; a difference that is significant but smaller than the
margin reads as better or worse. "Not significant" is never a verdict.

Seeds added in steps. A study that adds seeds until its verdicts are in
(``study.sequential``) looks at its tests after every step; each hypothesis's p
is then its group-sequential p (alstudy/study/sequential.py: O'Brien-Fleming
alpha spending over the planned seeds, the looks taking ``al.seeds`` in order),
and Holm corrects those. With one look it is the plain p.

Seeds needed. Where a comparison is undecided, ``seeds_needed`` is the smallest
number of seeds at which the t-test, or TOST where the observed difference is
inside the margin, would reach power ``study.power`` if the true effect were the
observed one (d = mean / sd of the per-seed differences); power from the
noncentral t distribution (scipy.stats.nct; for TOST, the usual approximation
P(both one-sided tests reject) >= P1 + P2 - 1). It is computed at the level
alpha / m of the correction's first step, so a comparison that reaches it is
decided whatever the others do; in a study that adds seeds in steps, at the
nominal level of each later look's boundary (fewer seeds than the next look
never decide it there), then past the cap at alpha / m. With few seeds d is itself a rough estimate,
so the number is a guide, not a promise.

Replication. ``replication`` is the chance that a rerun of the comparison with as
many new seeds gives the same verdict, if the true per-seed differences were
normal with the observed mean and sd (the "estimated power" approach to
reproducibility probability: Goodman 1992; Shao and Chow 2002): a Monte-Carlo
estimate over REPLICATION_DRAWS reruns, each decided at the level the comparison
met in this study's Holm procedure (alpha x p / Holm p). A verdict below FRAGILE
is marked fragile: one at p just under its level replicates about half the time,
however small that p, and an undecided one near the level may well be decided
by a rerun.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import stats

from alstudy.paths import DEFAULT_RECIPE, study_unit, unit_parts
from alstudy.study.sequential import Looks, final_nominal, nominal_levels, sequential_p
from alstudy.study.summary import t_half_width

MIN_SEEDS = 2
FRAGILE = 0.8  # a verdict that a rerun would give less often than this is marked fragile
REPLICATION_DRAWS = 4000
DECISIONS = ("better", "worse", "equivalent", "undecided")


@dataclass(frozen=True)
class Family:
    """The study's settings for its verdicts, and how many comparisons share the correction."""

    alpha: float
    size: int  # m: the comparisons; Holm corrects over their 2m hypotheses (difference, non-equivalence)
    power: float
    max_seeds: int  # seeds_needed beyond this is reported as "more than max_seeds"
    margin: float = 0.005  # the equivalence margin, as a fraction of AUBC (study.equivalence_margin / 100)
    looks: tuple[int, ...] = ()  # seeds in hand at each look; one look (or none recorded): a fixed design
    planned: int = 0  # the seeds the sequential design plans at most (alpha is spent by looks / planned)

    @property
    def hypotheses(self) -> int:
        return 2 * self.size

    @property
    def power_alpha(self) -> float:
        """The level the seeds-needed estimate uses: alpha / m (the correction's strictest step)."""
        return self.alpha / max(self.size, 1)


@dataclass(frozen=True)
class Verdict:
    """One curve-level comparison, a minus b, on one dataset and metric."""

    dataset: str
    metric: str
    a: str
    b: str
    differences: list[float]  # per seed: AUBC of a minus AUBC of b
    mean: float
    sd: float  # sample SD (ddof 1) of the differences
    ci_low: float
    ci_high: float
    p_value: float | None  # None: every difference is 0, there is nothing to test
    p_holm: float  # Holm-adjusted over the family (1 where p_value is None)
    p_equivalence: float  # TOST: the larger one-sided p against a difference of at least the margin
    p_equivalence_holm: float
    seeds_needed: int | None  # for an undecided one; None: more than max_seeds, or nothing to find
    likely: str | None  # what those seeds would likely decide: better, worse or equivalent
    replication: float  # the chance that a rerun with as many new seeds gives the same verdict
    family: Family
    p_sequential: float | None = None  # over the looks (the p Holm corrects); None: a fixed design, the p itself
    p_equivalence_sequential: float | None = None

    @property
    def n_seeds(self) -> int:
        return len(self.differences)

    @property
    def decision(self) -> str:
        """better | worse (a than b, after correction) | equivalent (within the margin) | undecided."""
        return decide(self.mean, self.p_holm, self.p_equivalence_holm, self.family.alpha)

    @property
    def fragile(self) -> bool:
        """A verdict that a rerun with new seeds could well not repeat (undecided ones too: a rerun may
        decide them)."""
        return self.replication < FRAGILE

    def to_dict(self) -> dict:
        """The numbers of `metrics/verdicts/<dataset>.json` (the differences as fractions, not points)."""
        return {
            "aubc_diff": self.mean,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "sd": self.sd,
            "p": self.p_value,
            "p_holm": self.p_holm,
            "p_equivalence": self.p_equivalence,
            "p_equivalence_holm": self.p_equivalence_holm,
            "p_sequential": self.p_sequential,
            "p_equivalence_sequential": self.p_equivalence_sequential,
            "verdict": self.decision,
            "replication": self.replication,
            "fragile": self.fragile,
            "seeds_needed": self.seeds_needed,
            "likely": self.likely,
            "differences": self.differences,
        }


def decide(mean: float, p_holm: float, p_equivalence_holm: float, alpha: float) -> str:
    if p_holm < alpha and mean != 0:
        return "better" if mean > 0 else "worse"
    if p_equivalence_holm < alpha:
        return "equivalent"
    return "undecided"


def pairs(strategies: list[str], baseline: str) -> list[tuple[str, str]]:
    """The comparisons of one dataset and metric, as (a, b) for a - b: every strategy minus the baseline
    first (when the grid has it), then every pair of the others in the grid's order."""
    others = [s for s in strategies if s != baseline]
    against = [(s, baseline) for s in others] if baseline in strategies else []
    return against + list(combinations(others, 2))


def under_default(strategy: str) -> str:
    """The name a strategy's default-recipe AUBC takes inside a recipe's unit, to compare the two."""
    return f"{strategy}_under_{DEFAULT_RECIPE}"


def with_recipe_effects(
    aubcs: dict[str, dict[str, dict[str, list[float]]]], comparisons: list[tuple[str, str]], baseline: str
) -> tuple[dict, dict[str, list[tuple[str, str]]]]:
    """The study's AUBCs and comparisons per unit, with what each recipe buys: in a recipe's unit
    (`<dataset>~<recipe>`), its baseline against the same baseline under the default recipe, seed by seed
    (the same seed draws the same initial set under every recipe). The strategies' own comparisons in that
    unit are then what a strategy buys on top of the recipe."""
    per_unit, out = {}, {}
    for unit, by_metric in aubcs.items():
        dataset, recipe = unit_parts(unit)
        per_unit[unit] = list(comparisons)
        out[unit] = by_metric
        default = aubcs.get(study_unit(dataset))
        if recipe == DEFAULT_RECIPE or default is None or not all(baseline in s for s in by_metric.values()):
            continue
        out[unit] = {
            metric: {**by_strategy, under_default(baseline): default[metric][baseline]}
            for metric, by_strategy in by_metric.items()
        }
        per_unit[unit] = [(baseline, under_default(baseline)), *comparisons]
    return out, per_unit


def holm(p_values: list[float], groups: list[int] | None = None) -> list[float]:
    """Holm's (1979) step-down adjusted p-values, in the input's order.

    Sorted ascending, the k-th smallest (k = 1..m) becomes max over j <= k of
    min(1, t_j p_(j)): monotone in p, capped at 1. Holm's procedure at
    level alpha rejects exactly the hypotheses whose adjusted p is at most alpha.
    Without `groups`, t_j = m - j + 1 (plain Holm). With them, hypotheses of one
    group cannot all be true together, at most one of them (Shaffer's 1986
    refinement): t_j is the number of groups that still hold a hypothesis not
    rejected before step j, the most true nulls there can be among the rest."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    remaining = None if groups is None else {g: groups.count(g) for g in set(groups)}
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(np.argsort(p, kind="stable")):
        at_most_true = m - rank if remaining is None else sum(1 for left in remaining.values() if left)
        running = max(running, min(1.0, at_most_true * p[i]))
        adjusted[i] = running
        if remaining is not None:
            remaining[groups[i]] -= 1
    return adjusted.tolist()


def power(n: int, d: float, alpha: float) -> float:
    """Power of the paired two-sided t-test with n pairs at standardised effect d = mean / sd."""
    df, nc = n - 1, abs(d) * np.sqrt(n)
    critical = stats.t.ppf(1 - alpha / 2, df)
    # Lower tail as the upper tail at -nc: nct.cdf(-critical, ...) returns nan when nc is large.
    return float(stats.nct.sf(critical, df, nc) + stats.nct.sf(critical, df, -nc))


def seeds_needed(d: float, alpha: float, target: float = 0.8, max_seeds: int = 100) -> int | None:
    """The smallest n (>= 2) whose power at effect d reaches `target`; None if more than max_seeds."""
    if d == 0:
        return None
    if not np.isfinite(d):
        return MIN_SEEDS  # no spread at all: any two seeds decide it
    return next((n for n in range(MIN_SEEDS, max_seeds + 1) if power(n, d, alpha) >= target), None)


def tost_p(differences: np.ndarray, margin: float) -> float:
    """Two one-sided t-tests of "the mean difference is at least the margin, in either direction": the
    larger of the two one-sided p-values (small: the difference lies inside +-margin)."""
    n, mean, sd = len(differences), float(np.mean(differences)), float(np.std(differences, ddof=1))
    if sd == 0:
        return 0.0 if abs(mean) < margin else 1.0
    se = sd / np.sqrt(n)
    above = stats.t.sf((mean + margin) / se, n - 1)  # against "mean <= -margin"
    below = stats.t.cdf((mean - margin) / se, n - 1)  # against "mean >= +margin"
    return float(max(above, below))


def equivalence_power(n: int, d: float, margin_d: float, alpha: float) -> float:
    """Power of TOST with n pairs when the true effect is d and the margin margin_d (both in sd units):
    P(both one-sided tests reject), approximated from below by P1 + P2 - 1."""
    df, root = n - 1, np.sqrt(n)
    critical = stats.t.ppf(1 - alpha, df)
    lower = stats.nct.sf(critical, df, (d + margin_d) * root)  # (mean + margin) / se > critical
    upper = stats.nct.sf(critical, df, (margin_d - d) * root)  # (mean - margin) / se < -critical, mirrored
    return float(max(0.0, lower + upper - 1))


def seeds_to_decide(
    mean: float,
    sd: float,
    margin: float,
    alpha: float,
    target: float,
    max_seeds: int,
    looks_ahead: dict[int, tuple[float, float]] | None = None,
    seeds_now: int = 0,
) -> tuple[int | None, str | None]:
    """The fewest seeds at which the t-test, or TOST where |mean| < margin, reaches `target` power at the
    observed effect, and the verdict they would likely give; (None, None) beyond max_seeds.

    looks_ahead, for a study that adds seeds in steps: the seed counts of its next looks, each with the
    nominal levels (two-sided for the t-test, one-sided for TOST) its tests must reach there; those looks
    are tried first, then counts past them and past `seeds_now` (the seeds such a study has; 0 for a fixed
    design, whose estimate may be fewer than it has) at `alpha` (a study past its cap, at about its last level)."""
    direction = "better" if mean > 0 else "worse"
    if sd == 0:
        if abs(mean) < margin:
            return MIN_SEEDS, "equivalent"
        return (MIN_SEEDS, direction) if mean != 0 else (None, None)
    d, margin_d = mean / sd, margin / sd
    ahead = looks_ahead or {}
    beyond = max([MIN_SEEDS - 1, *ahead, seeds_now]) + 1
    candidates = [(n, *levels) for n, levels in sorted(ahead.items())]
    candidates += [(n, alpha, alpha) for n in range(beyond, max_seeds + 1)]
    for n, level, equivalence_level in candidates:
        if mean != 0 and power(n, d, level) >= target:
            return n, direction
        if abs(mean) < margin and equivalence_power(n, d, margin_d, equivalence_level) >= target:
            return n, "equivalent"
    return None, None


def levels_ahead(step: int, n_seeds: int, planned: int, alpha: float) -> dict[int, tuple[float, float]]:
    """For a study looking every `step` seeds up to `planned`: each later look's seed count and the nominal
    levels, two-sided and one-sided, that the corrected level `alpha` gives its tests there."""
    ahead = {}
    for n in range(n_seeds + step, planned + step, step):
        n = min(n, planned)
        fractions = Looks.every(step, n, planned).fractions
        two_sided = nominal_levels(fractions, alpha, two_sided=True)[-1]
        one_sided = nominal_levels(fractions, alpha, two_sided=False)[-1]
        ahead[n] = (two_sided, one_sided)
    return ahead


def replication(differences: np.ndarray, margin: float, level: float, equivalence_level: float, verdict: str) -> float:
    """The share of simulated reruns (as many seeds, normal differences with the observed mean and sd)
    that reach `verdict`, deciding each at the levels this comparison met in the study."""
    n, mean, sd = len(differences), float(np.mean(differences)), float(np.std(differences, ddof=1))
    if sd == 0:
        return 1.0  # no spread: every rerun gives the same numbers
    draws = np.random.default_rng(0).normal(mean, sd, size=(REPLICATION_DRAWS, n))
    means, se = draws.mean(axis=1), draws.std(axis=1, ddof=1) / np.sqrt(n)
    p = 2 * stats.t.sf(np.abs(means / se), n - 1)
    p_equivalence = np.maximum(stats.t.sf((means + margin) / se, n - 1), stats.t.cdf((means - margin) / se, n - 1))
    decided = np.where(
        p < level,
        np.where(means > 0, "better", "worse"),
        np.where(p_equivalence < equivalence_level, "equivalent", "undecided"),
    )
    return float(np.mean(decided == verdict))


def level_met(p: float | None, p_holm: float, alpha: float, strictest: float) -> float:
    """The level this hypothesis was tested at in the Holm procedure, alpha x p / Holm p (its step's level,
    or a stricter one); `strictest` (the first step's) where that ratio says nothing."""
    if p is None or p <= 0 or p_holm >= 1:
        return strictest
    return alpha * p / p_holm


def paired_p(diff: np.ndarray) -> float | None:
    """The paired two-sided t-test's p on per-seed differences; None where they are all 0 (nothing to test)."""
    if np.ptp(diff) == 0:  # no spread: the t statistic is 0/0 (no test) or c/0 (certain)
        return None if diff[0] == 0 else 0.0
    return float(stats.ttest_1samp(diff, 0.0).pvalue)


def _paired(a: np.ndarray, b: np.ndarray) -> dict:
    diff = a - b
    mean, sd = float(diff.mean()), float(diff.std(ddof=1))
    half = float(t_half_width(diff)) if sd > 0 else 0.0
    p = paired_p(diff)
    return {
        "differences": diff.tolist(),
        "mean": mean,
        "sd": sd,
        "ci_low": mean - half,
        "ci_high": mean + half,
        "p_value": p,
    }


def study_verdicts(
    aubcs: dict[str, dict[str, dict[str, list[float]]]],
    comparisons: list[tuple[str, str]] | dict[str, list[tuple[str, str]]],
    alpha: float,
    target_power: float = 0.8,
    max_seeds: int = 100,
    margin: float = 0.005,
    sequential: tuple[int, int] | None = None,
) -> list[Verdict]:
    """Every comparison of the study, its difference and non-equivalence hypotheses Holm-corrected together.

    aubcs: dataset (or study unit, a dataset under a recipe) -> metric -> strategy -> per-seed AUBC (the
    same seeds in the same order for every strategy of a dataset); comparisons: the (a, b) pairs of every
    dataset, or per dataset where they differ (a recipe's unit also compares its baseline with the
    default recipe's: with_recipe_effects); margin: the equivalence margin, as a fraction of AUBC;
    sequential: (seeds per look, seeds planned at most) for a study that added its seeds in steps, None for
    a fixed number. Datasets with fewer than two seeds have no test and are left out."""
    tests = []
    for dataset, by_metric in aubcs.items():
        for metric, by_strategy in by_metric.items():
            if len(next(iter(by_strategy.values()))) < MIN_SEEDS:
                continue
            for a, b in comparisons[dataset] if isinstance(comparisons, dict) else comparisons:
                paired = _paired(
                    np.asarray(by_strategy[a], dtype=np.float64), np.asarray(by_strategy[b], dtype=np.float64)
                )
                tests.append({"dataset": dataset, "metric": metric, "a": a, "b": b, **paired})
    n_seeds = len(tests[0]["differences"]) if tests else 0
    looks = Looks.fixed(n_seeds) if sequential is None else Looks.every(sequential[0], n_seeds, sequential[1])
    for test in tests:
        differences = np.asarray(test["differences"])
        test["p_equivalence"] = tost_p(differences, margin)
        if sequential is not None:
            test["p_sequential"], test["p_equivalence_sequential"] = _over_looks(differences, looks, margin)
    family = Family(
        alpha=alpha,
        size=len(tests),
        power=target_power,
        max_seeds=max_seeds,
        margin=margin,
        looks=looks.seeds if sequential is not None else (),
        planned=looks.planned if sequential is not None else 0,
    )

    # What Holm corrects: each hypothesis's p over the looks where the study looked more than once, else
    # the t-tests' own; a test without a p (no spread) counts as p = 1.
    p_in = [_or_one(t.get("p_sequential", t["p_value"])) for t in tests]
    p_equivalence_in = [_or_one(t.get("p_equivalence_sequential", t["p_equivalence"])) for t in tests]
    # A comparison's no-difference and non-equivalence hypotheses cannot both be true: one group each.
    adjusted = holm(p_in + p_equivalence_in, groups=list(range(len(tests))) * 2)
    # Seeds needed, for a study adding seeds in steps: what its next looks' boundaries ask, not a fixed design's.
    ahead = levels_ahead(sequential[0], n_seeds, sequential[1], family.power_alpha) if sequential else None
    verdicts = []
    for i, test in enumerate(tests):
        p_holm, p_equivalence_holm = adjusted[i], adjusted[len(tests) + i]
        verdict = decide(test["mean"], p_holm, p_equivalence_holm, alpha)
        needed, likely = None, None
        if verdict == "undecided":
            needed, likely = seeds_to_decide(
                test["mean"],
                test["sd"],
                margin,
                family.power_alpha,
                target_power,
                max_seeds,
                ahead,
                n_seeds if sequential else 0,
            )
        # The levels met, on the scale of the p Holm corrected, then as the last look's nominal level.
        difference_level = level_met(p_in[i], p_holm, alpha, family.power_alpha)
        equivalence_level = level_met(p_equivalence_in[i], p_equivalence_holm, alpha, family.power_alpha)
        chance = replication(
            np.asarray(test["differences"]),
            margin,
            final_nominal(looks, difference_level, two_sided=True) if sequential else difference_level,
            final_nominal(looks, equivalence_level, two_sided=False) if sequential else equivalence_level,
            verdict,
        )
        verdicts.append(
            Verdict(
                **test,
                p_holm=p_holm,
                p_equivalence_holm=p_equivalence_holm,
                seeds_needed=needed,
                likely=likely,
                replication=chance,
                family=family,
            )
        )
    return verdicts


def _or_one(p: float | None) -> float:
    return 1.0 if p is None else p


def _over_looks(differences: np.ndarray, looks: Looks, margin: float) -> tuple[float, float]:
    """The group-sequential p of the difference and the non-equivalence hypotheses, from each look's tests
    on the seeds in hand then (the first n of the study's seed order)."""
    p_difference = [paired_p(differences[:n]) for n in looks.seeds]
    p_equivalence = [tost_p(differences[:n], margin) for n in looks.seeds]
    return (
        sequential_p([1.0 if p is None else p for p in p_difference], looks, two_sided=True),
        sequential_p(p_equivalence, looks, two_sided=False),
    )


def dataset_metrics(verdicts: list[Verdict], dataset: str, family: Family) -> dict:
    """metrics/verdicts/<dataset>.json: the family's settings and, per comparison and metric, the numbers,
    nested as <a>.vs_<b>.<metric> so that `dvc metrics show` names a column `margin.vs_random.accuracy.p_holm`."""
    out: dict = {
        "family": {
            "alpha": family.alpha,
            "comparisons": family.size,
            "power": family.power,
            "hypotheses": family.hypotheses,
            "equivalence_margin": family.margin,
            "power_alpha": family.power_alpha,
            "max_seeds": family.max_seeds,
            "looks": list(family.looks),
            "planned_seeds": family.planned,
        }
    }
    for v in verdicts:
        if v.dataset == dataset:
            out.setdefault(v.a, {}).setdefault(f"vs_{v.b}", {})[v.metric] = v.to_dict()
    return out


def from_metrics(data: dict, dataset: str) -> list[Verdict]:
    """The verdicts of one dataset back from its metrics file (for the report)."""
    family = Family(
        alpha=data["family"]["alpha"],
        size=data["family"]["comparisons"],
        power=data["family"]["power"],
        max_seeds=data["family"]["max_seeds"],
        margin=data["family"]["equivalence_margin"],
        looks=tuple(data["family"].get("looks", ())),  # absent in studies from before sequential looks
        planned=data["family"].get("planned_seeds", 0),
    )
    verdicts = []
    for a, against in data.items():
        if a == "family":
            continue
        for versus, by_metric in against.items():
            for metric, row in by_metric.items():
                verdicts.append(
                    Verdict(
                        dataset=dataset,
                        metric=metric,
                        a=a,
                        b=versus.removeprefix("vs_"),
                        differences=row["differences"],
                        mean=row["aubc_diff"],
                        sd=row["sd"],
                        ci_low=row["ci_low"],
                        ci_high=row["ci_high"],
                        p_value=row["p"],
                        p_holm=row["p_holm"],
                        p_equivalence=row["p_equivalence"],
                        p_equivalence_holm=row["p_equivalence_holm"],
                        seeds_needed=row["seeds_needed"],
                        likely=row["likely"],
                        replication=row["replication"],
                        family=family,
                        p_sequential=row.get("p_sequential"),
                        p_equivalence_sequential=row.get("p_equivalence_sequential"),
                    )
                )
    return verdicts


def mlflow_metrics(verdicts: list[Verdict]) -> dict[str, float]:
    """A dataset study run's curve-level metrics (logged as `summary/<key>`, alstudy/tracking/study_runs.py):
    `<a>.aubc_<metric>_vs_<b>` (the mean difference) and
    its `_ci_low`, `_ci_high`, `_p`, `_p_holm`, `_p_equivalence`, `_p_equivalence_holm`, `_significant`
    (better or worse: 1, else 0), `_equivalent` (1 or 0), `_replication` and `_seeds_needed`. Every key
    is logged every time, NaN where there is no value: the study run is reopened on reruns and MLflow
    cannot delete a metric, so a skipped key would keep a stale value."""
    out = {}
    for v in verdicts:
        name = f"{v.a}.aubc_{v.metric}_vs_{v.b}"
        values = {
            "": v.mean,
            "_ci_low": v.ci_low,
            "_ci_high": v.ci_high,
            "_p": v.p_value,
            "_p_holm": v.p_holm,
            "_p_equivalence": v.p_equivalence,
            "_p_equivalence_holm": v.p_equivalence_holm,
            "_significant": float(v.decision in ("better", "worse")),
            "_equivalent": float(v.decision == "equivalent"),
            "_replication": v.replication,
            "_seeds_needed": v.seeds_needed,
        }
        out.update({name + suffix: float("nan") if x is None else float(x) for suffix, x in values.items()})
    return out
