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

Seeds needed. Where a comparison is not significant, ``seeds_needed`` is the
smallest number of seeds at which a paired two-sided t-test would reach power
``study.power`` if the true effect were the observed one, d = mean / sd of the
per-seed differences; power from the noncentral t distribution
(scipy.stats.nct). It is computed at the Bonferroni level alpha / m (m = the
family's size): the level of Holm's first step, so a comparison that reaches it
is significant whatever the other comparisons do. With few seeds d is itself a
rough estimate, so the number is a guide, not a promise.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import stats

from alstudy.study.summary import t_half_width

MIN_SEEDS = 2


@dataclass(frozen=True)
class Family:
    """The study's settings for its verdicts, and how many comparisons share the correction."""

    alpha: float
    size: int  # m: the comparisons Holm corrects over
    power: float
    max_seeds: int  # seeds_needed beyond this is reported as "more than max_seeds"

    @property
    def power_alpha(self) -> float:
        """The level the seeds-needed estimate uses: alpha / m (Holm's strictest step)."""
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
    seeds_needed: int | None  # for a non-significant one; None: more than max_seeds, or nothing to find
    family: Family

    @property
    def n_seeds(self) -> int:
        return len(self.differences)

    @property
    def decision(self) -> str:
        """better | worse (a than b, after correction) | not significant | no difference (nothing observed)."""
        return decide(self.mean, self.p_value, self.p_holm, self.family.alpha)

    def to_dict(self) -> dict:
        """The numbers of `metrics/verdicts/<dataset>.json` (the differences as fractions, not points)."""
        return {
            "aubc_diff": self.mean,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "sd": self.sd,
            "p": self.p_value,
            "p_holm": self.p_holm,
            "seeds_needed": self.seeds_needed,
            "differences": self.differences,
        }


def decide(mean: float, p_value: float | None, p_holm: float, alpha: float) -> str:
    if p_value is None or mean == 0:
        return "no difference"
    if p_holm < alpha:
        return "better" if mean > 0 else "worse"
    return "not significant"


def pairs(strategies: list[str], baseline: str) -> list[tuple[str, str]]:
    """The comparisons of one dataset and metric, as (a, b) for a - b: every strategy minus the baseline
    first (when the grid has it), then every pair of the others in the grid's order."""
    others = [s for s in strategies if s != baseline]
    against = [(s, baseline) for s in others] if baseline in strategies else []
    return against + list(combinations(others, 2))


def holm(p_values: list[float]) -> list[float]:
    """Holm's (1979) step-down adjusted p-values, in the input's order.

    Sorted ascending, the k-th smallest (k = 1..m) becomes max over j <= k of
    min(1, (m - j + 1) p_(j)): monotone in p, capped at 1. Holm's procedure at
    level alpha rejects exactly the hypotheses whose adjusted p is at most alpha."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(np.argsort(p, kind="stable")):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
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


def _paired(a: np.ndarray, b: np.ndarray) -> dict:
    diff = a - b
    mean, sd = float(diff.mean()), float(diff.std(ddof=1))
    half = float(t_half_width(diff)) if sd > 0 else 0.0
    if np.ptp(diff) == 0:  # no spread: the t statistic is 0/0 (no test) or c/0 (certain)
        p = None if diff[0] == 0 else 0.0
    else:
        p = float(stats.ttest_rel(a, b).pvalue)
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
    comparisons: list[tuple[str, str]],
    alpha: float,
    target_power: float = 0.8,
    max_seeds: int = 100,
) -> list[Verdict]:
    """Every comparison of the study, Holm-corrected together.

    aubcs: dataset -> metric -> strategy -> per-seed AUBC (the same seeds in the same order for every
    strategy of a dataset). Datasets with fewer than two seeds have no test and are left out."""
    tests = []
    for dataset, by_metric in aubcs.items():
        for metric, by_strategy in by_metric.items():
            if len(next(iter(by_strategy.values()))) < MIN_SEEDS:
                continue
            for a, b in comparisons:
                paired = _paired(
                    np.asarray(by_strategy[a], dtype=np.float64), np.asarray(by_strategy[b], dtype=np.float64)
                )
                tests.append({"dataset": dataset, "metric": metric, "a": a, "b": b, **paired})
    family = Family(alpha=alpha, size=len(tests), power=target_power, max_seeds=max_seeds)
    adjusted = holm([1.0 if t["p_value"] is None else t["p_value"] for t in tests])
    verdicts = []
    for test, p_holm in zip(tests, adjusted):
        needed = None
        if decide(test["mean"], test["p_value"], p_holm, alpha) == "not significant":
            d = test["mean"] / test["sd"] if test["sd"] > 0 else np.inf
            needed = seeds_needed(d, family.power_alpha, target_power, max_seeds)
        verdicts.append(Verdict(**test, p_holm=p_holm, seeds_needed=needed, family=family))
    return verdicts


def dataset_metrics(verdicts: list[Verdict], dataset: str, family: Family) -> dict:
    """metrics/verdicts/<dataset>.json: the family's settings and, per comparison and metric, the numbers,
    nested as <a>.vs_<b>.<metric> so that `dvc metrics show` names a column `margin.vs_random.accuracy.p_holm`."""
    out: dict = {
        "family": {
            "alpha": family.alpha,
            "comparisons": family.size,
            "power": family.power,
            "power_alpha": family.power_alpha,
            "max_seeds": family.max_seeds,
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
                        seeds_needed=row["seeds_needed"],
                        family=family,
                    )
                )
    return verdicts


def mlflow_metrics(verdicts: list[Verdict]) -> dict[str, float]:
    """A dataset study run's curve-level metrics (logged as `summary/<key>`, alstudy/tracking/study_runs.py):
    `<a>.aubc_<metric>_vs_<b>` (the mean difference) and
    its `_ci_low`, `_ci_high`, `_p`, `_p_holm`, `_significant` (1 after correction, else 0) and
    `_seeds_needed`. Every key is logged every time, NaN where there is no value: the study run is
    reopened on reruns and MLflow cannot delete a metric, so a skipped key would keep a stale value."""
    out = {}
    for v in verdicts:
        name = f"{v.a}.aubc_{v.metric}_vs_{v.b}"
        values = {
            "": v.mean,
            "_ci_low": v.ci_low,
            "_ci_high": v.ci_high,
            "_p": v.p_value,
            "_p_holm": v.p_holm,
            "_significant": float(v.decision in ("better", "worse")),
            "_seeds_needed": v.seeds_needed,
        }
        out.update({name + suffix: float("nan") if x is None else float(x) for suffix, x in values.items()})
    return out
