"""Group-sequential verdicts: a study that adds seeds in steps and looks at its tests after each step.

Looking again after every new batch of seeds and stopping once the verdicts are
in inflates the error rate if each look tests at the full alpha. Lan and DeMets
(1983) let a design spend its alpha over the looks instead: by the fraction t of
the planned seeds in hand, at most alpha*(t) of it is spent. With O'Brien and
Fleming's shape, alpha*(t) = 2 - 2 Phi(z_{1 - a/2} / sqrt(t)) for a one-sided
level a, the early looks need overwhelming evidence and the last one almost the
full level. A two-sided test at level a spends a/2 on each side, as gsDesign and
ldbounds do (five equal looks at two-sided 0.05: |z| boundaries 4.88, 3.36,
2.68, 2.29, 2.03).

Each look's boundary is solved so that the chance of first crossing there under
the null (Brownian motion of the z-statistics, recursive numerical integration
as in Jennison and Turnbull 2000, ch. 19) is what the spending function allots.
The per-seed AUBC differences have an unknown variance and few seeds, so the
boundaries are applied on the p-value scale (Jennison and Turnbull's
significance-level approach, sec. 3.8): at look j the t-test's p must reach the
nominal level 2 (1 - Phi(c_j)) (one-sided: 1 - Phi(c_j)).

Many comparisons. Holm's procedure over group-sequential tests keeps the
family-wise error rate (Maurer and Bretz 2013: a closed test of Bonferroni
group-sequential tests). It reduces to plain Holm on each hypothesis's
*sequential p-value*: the smallest level at which its own group-sequential test
would have stopped by this look, min over looks of the level whose nominal
boundary there equals the look's p. With a single look that is the p itself,
so a study of a fixed number of seeds gets exactly the fixed-design numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import optimize, stats

GRID_POINTS = 401  # Simpson's rule on the continuation region: odd
LOWEST_Z = -10.0  # a one-sided design's continuation region, cut off where the density is ~1e-23
# The levels at which nominal boundaries are tabulated, then interpolated; a sequential p above the top
# one reads as 1 (a one-sided design at level 1 would have no boundary).
LEVELS = np.logspace(-12, np.log10(0.5), 81)


@dataclass(frozen=True)
class Looks:
    """When the study looked: seeds in hand at each look, and the seeds the design plans at most."""

    seeds: tuple[int, ...]  # increasing, the last one the seeds in hand now
    planned: int

    @classmethod
    def fixed(cls, n_seeds: int) -> Looks:
        """A study of a fixed number of seeds: one look, at the end."""
        return cls((n_seeds,), n_seeds)

    @classmethod
    def every(cls, step: int, n_seeds: int, planned: int) -> Looks:
        """Looks after every `step` seeds up to the `n_seeds` in hand (that count too, if it is not a multiple)."""
        seeds = list(range(step, n_seeds + 1, step)) or [n_seeds]
        if seeds[-1] != n_seeds:
            seeds.append(n_seeds)
        return cls(tuple(seeds), max(planned, n_seeds))

    @property
    def fractions(self) -> tuple[float, ...]:
        return tuple(n / self.planned for n in self.seeds)


def spent(t: float, level: float, two_sided: bool) -> float:
    """O'Brien-Fleming-type spending (Lan and DeMets 1983): alpha spent by information fraction t, on both
    sides together for a two-sided test (half on each)."""
    if t <= 0:
        return 0.0
    side = level / 2 if two_sided else level
    return float((2 if two_sided else 1) * 2 * stats.norm.sf(stats.norm.isf(side / 2) / np.sqrt(t)))


def _simpson(lower: float, upper: float) -> tuple[np.ndarray, np.ndarray]:
    z = np.linspace(lower, upper, GRID_POINTS)
    weights = np.ones(GRID_POINTS)
    weights[1:-1:2], weights[2:-1:2] = 4, 2
    return z, weights * (upper - lower) / (GRID_POINTS - 1) / 3


def boundaries(fractions: tuple[float, ...], level: float, two_sided: bool) -> list[float]:
    """z boundaries c_1..c_K: crossing |Z_j| >= c_j (or Z_j >= c_j) first at look j has null probability
    spent(t_j) - spent(t_{j-1})."""
    out: list[float] = []
    z = weights = density = None
    previous_t, previous_spent = 0.0, 0.0
    for t in fractions:
        target = spent(t, level, two_sided) - previous_spent
        if density is None:  # the first look: Z_1 is standard normal
            c = stats.norm.isf(target / 2 if two_sided else target) if target > 0 else np.inf
        else:
            step = t - previous_t
            shift = z * np.sqrt(previous_t)
            mass = weights * density

            def crossing(c: float, shift=shift, mass=mass, step=step, t=t) -> float:
                up = stats.norm.sf((c * np.sqrt(t) - shift) / np.sqrt(step))
                down = stats.norm.cdf((-c * np.sqrt(t) - shift) / np.sqrt(step)) if two_sided else 0.0
                return float(np.sum(mass * (up + down)))

            if target <= 0 or crossing(40.0) >= target:
                c = np.inf
            else:
                c = optimize.brentq(lambda c: crossing(c) - target, -40.0 if not two_sided else 0.0, 40.0, xtol=1e-10)
        out.append(float(c))
        # The density of Z at this look on its continuation region, for the next look.
        upper = min(float(c), 12.0)
        new_z, new_weights = _simpson(-upper if two_sided else LOWEST_Z, upper)
        if density is None:
            new_density = stats.norm.pdf(new_z)
        else:
            kernel = stats.norm.pdf(
                (new_z[:, None] * np.sqrt(t) - z[None, :] * np.sqrt(previous_t)) / np.sqrt(t - previous_t)
            )
            new_density = kernel @ (weights * density) * np.sqrt(t / (t - previous_t))
        z, weights, density = new_z, new_weights, new_density
        previous_t, previous_spent = t, spent(t, level, two_sided)
    return out


def nominal_levels(fractions: tuple[float, ...], level: float, two_sided: bool) -> list[float]:
    """The p a look's test must reach: 2 (1 - Phi(c_j)) two-sided, 1 - Phi(c_j) one-sided."""
    return [float((2 if two_sided else 1) * stats.norm.sf(c)) for c in boundaries(fractions, level, two_sided)]


@lru_cache(maxsize=32)
def _nominal_table(fractions: tuple[float, ...], two_sided: bool) -> np.ndarray:
    """log nominal level, looks x LEVELS, for inverting by interpolation."""
    table = np.array([nominal_levels(fractions, level, two_sided) for level in LEVELS]).T
    return np.log(np.maximum(table, 1e-300))


def sequential_p(p_values: list[float], looks: Looks, two_sided: bool) -> float:
    """The smallest level at which the group-sequential test of these per-look p-values stops by the last
    look: min over looks of the level whose nominal boundary there is that look's p. One look: the p."""
    if len(p_values) != len(looks.seeds):
        raise ValueError(f"{len(p_values)} p-values for {len(looks.seeds)} looks")
    if len(looks.seeds) == 1 and looks.seeds[0] == looks.planned:
        return float(p_values[0])
    table = _nominal_table(looks.fractions, two_sided)
    best = 1.0
    for p, row in zip(p_values, table):
        if p <= 0:
            return 0.0
        if p >= np.exp(row[-1]):
            continue  # not even at the top level
        # row increases with the level: interpolate log level against log nominal
        best = min(best, float(np.exp(np.interp(np.log(p), row, np.log(LEVELS)))))
    return best


def final_nominal(looks: Looks, level: float, two_sided: bool) -> float:
    """The p the last look's test had to reach at `level` (for simulating a rerun of the last look)."""
    if len(looks.seeds) == 1 and looks.seeds[0] == looks.planned:
        return level
    return nominal_levels(looks.fractions, level, two_sided)[-1]
