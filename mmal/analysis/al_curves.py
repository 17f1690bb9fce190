"""Mean curves over seeds and savings at equal performance.

*Savings at equal performance* (the paper's "fewer boxes at the same
mAP"): the target is the reference selector's final mean metric; for each
selector, the cost at which its mean curve first reaches the target, by
linear interpolation between cycles (never extrapolated: a curve that ends
below the target has "not reached" it, and one that starts above it
reaches it at its first cost); the saving is the reference's final cost
minus that cost, absolute and as a percentage of the reference's final
cost. Per seed the same is done with each seed's curve against the
reference's curve of the same seed, which gives the spread.

Every selector of a seed starts from the same initial labeled set, so a
curve that reaches the target at its first cycle says nothing about its
selector: such a saving is *reached at the start (no information)*, has no
value and is left out of the spread. The reference's own row is 0 by
construction (its final cost against its final metric).
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from .al_runs import RunCurve, RunSet, group_seed

#: A metric within this of the target has reached it (mmdet rounds its
#: metrics to 3 decimals; means over seeds differ in the last bits).
REACH_TOL = 1e-9


@dataclass
class MeanCurve:
    """A selector's curve, mean over its seeds, with min and max.

    Every array has one value per cycle, over the cycles *all* the
    selector's seeds evaluated (a shorter seed cuts the others).

    Args:
        name (str): The selector's label.
        seeds (list[int]): The seeds averaged.
        cycles (np.ndarray): (C,) cycle numbers.
        images (np.ndarray): (C,) mean labeled images.
        cost (np.ndarray): (C,) mean labeled cost.
        cost_min, cost_max (np.ndarray): (C,) over seeds.
        metric (np.ndarray): (C,) mean metric, points (%).
        metric_min, metric_max (np.ndarray): (C,) over seeds.
        efficiency (np.ndarray): (C,) mean over seeds of each run's
            ``1e4 * metric / cost`` (NaN where a cost is 0).
        lengths (list[int]): Evaluated cycles of each seed's run.
    """
    name: str
    seeds: List[int]
    cycles: np.ndarray
    images: np.ndarray
    cost: np.ndarray
    cost_min: np.ndarray
    cost_max: np.ndarray
    metric: np.ndarray
    metric_min: np.ndarray
    metric_max: np.ndarray
    efficiency: np.ndarray
    lengths: List[int]


def efficiency(metric: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """``1e4 * metric / cost`` (metric in points), NaN at zero cost."""
    metric, cost = np.asarray(metric, float), np.asarray(cost, float)
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(cost > 0, 1e4 * metric / np.where(cost > 0, cost, 1),
                        np.nan)


def _nanmean(values: np.ndarray) -> np.ndarray:
    """Mean over axis 0 ignoring NaN; NaN where every value is."""
    finite = np.isfinite(values)
    count = finite.sum(0)
    total = np.where(finite, values, 0.0).sum(0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def mean_curve(name: str, runs: Sequence[RunCurve]) -> MeanCurve:
    """The mean over ``runs`` (one selector's seeds), cycle by cycle."""
    n = min(len(r.cycles) for r in runs)

    def stack(attr: str) -> np.ndarray:  # (seeds, cycles)
        return np.array([getattr(r, attr)[:n] for r in runs], dtype=float)

    images, cost, metric = stack('images'), stack('cost'), stack('metric')
    return MeanCurve(
        name=name,
        seeds=[r.seed for r in runs],
        cycles=np.arange(n),
        images=images.mean(0),
        cost=cost.mean(0),
        cost_min=cost.min(0),
        cost_max=cost.max(0),
        metric=metric.mean(0),
        metric_min=metric.min(0),
        metric_max=metric.max(0),
        efficiency=_nanmean(efficiency(metric, cost)),
        lengths=[len(r.cycles) for r in runs])


def mean_curves(runs: RunSet) -> 'Dict[str, MeanCurve]':
    """:func:`mean_curve` of every selector, in the run set's order."""
    return {
        name: mean_curve(name, group)
        for name, group in runs.groups.items()
    }


def cost_to_reach(cost: Sequence[float], metric: Sequence[float],
                  target: float) -> Optional[float]:
    """The cost at which a curve first reaches ``target``.

    Linear interpolation between the two cycles around the first crossing;
    the first cost when the curve starts at or above the target; None when
    it never reaches it (no extrapolation).

    Args:
        cost (Sequence[float]): (C,) increasing costs.
        metric (Sequence[float]): (C,) metrics.
        target (float): The metric to reach.

    Returns:
        float | None
    """
    for i, (c, m) in enumerate(zip(cost, metric)):
        if m >= target - REACH_TOL:
            if i == 0:
                return float(c)
            c0, m0 = cost[i - 1], metric[i - 1]
            frac = min(1.0, max(0.0, (target - m0) / (m - m0)))
            return float(c0 + frac * (c - c0))
    return None


@dataclass
class Saving:
    """How much less a selector labels than the reference for the
    reference's final metric.

    Args:
        target (float): The metric to reach (the reference's final).
        reference_cost (float): The reference's final cost.
        cost (float | None): The selector's cost to reach the target;
            None: not reached.
        at_start (bool): Reached at the first cycle, the initial labeled
            set every selector of the seed shares: no information, no
            saving.
    """
    target: float
    reference_cost: float
    cost: Optional[float]
    at_start: bool = False

    @property
    def reached(self) -> bool:
        return self.cost is not None

    @property
    def informative(self) -> bool:
        """Reached after the shared start: the saving says something."""
        return self.reached and not self.at_start

    @property
    def saving(self) -> Optional[float]:
        if not self.informative:
            return None
        return self.reference_cost - self.cost

    @property
    def percent(self) -> Optional[float]:
        if not self.informative or not self.reference_cost:
            return None
        return 100.0 * self.saving / self.reference_cost


@dataclass
class SavingResult:
    """A selector's saving on the mean curves and per seed.

    Args:
        name (str): The selector.
        mean (Saving): On the mean curves.
        per_seed (dict[int, Saving]): Seed -> on that seed's curves (the
            seeds both the selector and the reference have).
    """
    name: str
    mean: Saving
    per_seed: Dict[int, Saving]

    @property
    def at_start_seeds(self) -> List[int]:
        """The seeds that reached the target at the shared start (left out
        of the spread)."""
        return sorted(k for k, s in self.per_seed.items() if s.at_start)

    @property
    def spread(self) -> Optional[tuple]:
        """(min, max) of the per-seed savings reached after the shared
        start; None if none."""
        values = [s.saving for s in self.per_seed.values() if s.informative]
        return (min(values), max(values)) if values else None

    @property
    def spread_includes_zero(self) -> bool:
        """True unless at least two seeds reached the target after the
        shared start, none missed it, and all their savings have one sign
        (all > 0 or all < 0).

        One seed has no spread: it cannot exclude zero.
        """
        seeds = self.per_seed.values()
        if not all(s.reached for s in seeds) or sum(s.informative
                                                    for s in seeds) < 2:
            return True
        low, high = self.spread
        return low <= 0 <= high


def saving_of(cost: Sequence[float], metric: Sequence[float], target: float,
              reference_cost: float) -> Saving:
    """A curve's :class:`Saving` against ``target`` (reached at the start
    when its first point reaches it)."""
    reached = cost_to_reach(cost, metric, target)
    at_start = reached is not None and metric[0] >= target - REACH_TOL
    return Saving(target, reference_cost, reached, at_start)


def savings(runs: RunSet, curves: Dict[str, MeanCurve],
            reference: str) -> List[SavingResult]:
    """Savings of every selector against ``reference`` (module doc).

    Args:
        runs (RunSet): The runs, by selector.
        curves (dict[str, MeanCurve]): Their :func:`mean_curves`.
        reference (str): The reference selector's name.

    Returns:
        list[SavingResult]: One per selector, the reference included (its
        own curve against its final value), in the run set's order.
    """
    ref = curves[reference]
    target, ref_cost = float(ref.metric[-1]), float(ref.cost[-1])
    out = []
    for name, curve in curves.items():
        is_ref = name == reference
        # the reference against itself: its final cost, saving 0
        mean = (
            Saving(target, ref_cost, ref_cost) if is_ref else saving_of(
                curve.cost, curve.metric, target, ref_cost))
        per_seed = {}
        for run in runs.groups[name]:
            ref_run = group_seed(runs.groups[reference], run.seed)
            if ref_run is None:
                continue
            t, c = float(ref_run.metric[-1]), float(ref_run.cost[-1])
            per_seed[run.seed] = (
                Saving(t, c, c) if is_ref else saving_of(
                    run.cost, run.metric, t, c))
        out.append(SavingResult(name, mean, per_seed))
    return out
