"""The report's tables: curves per selector and cycle, and savings.

Markdown for people (README, issues), CSV for spreadsheets. The metric is
in points (%); ``10k x metric / cost`` is the paper's annotation
efficiency, the mean over seeds of each run's value.
"""
import csv
import io
import math
from typing import Dict, List, Optional, Sequence

from .al_curves import MeanCurve, Saving, SavingResult

CURVE_COLUMNS = ('selector', 'cycle', 'seeds', 'images', 'cost_mean',
                 'cost_min', 'cost_max', 'metric_mean', 'metric_min',
                 'metric_max', 'metric_per_10k_cost')
SAVING_COLUMNS = ('selector', 'seed', 'target_metric', 'reference_cost',
                  'cost_to_reach', 'saving', 'saving_percent',
                  'reached_at_start')

#: What a saving reached at the shared initial set is called.
AT_START = 'reached at the start (no information)'


def metric_label(metric_key: str) -> str:
    """``coco/bbox_mAP`` -> ``bbox_mAP``; ``accuracy/top1`` -> ``top1``."""
    return (metric_key or 'metric').split('/')[-1]


def format_number(value: Optional[float]) -> str:
    """``216.0`` -> ``216``; ``1104.33`` -> ``1104.3``; None -> ``-``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '-'
    value = round(float(value), 1)
    return f'{value:.0f}' if value.is_integer() else f'{value:.1f}'


def format_count(value: Optional[float]) -> str:
    """``7093.4`` -> ``7.1k``; ``216.0`` -> ``216``; ``216.5`` -> ``216.5``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '-'
    if abs(value) >= 1000:
        return f'{value / 1000:.1f}k'
    return f'{value:.0f}' if float(value).is_integer() else f'{value:.1f}'


def format_saving(saving: Saving, unit: str) -> str:
    """``7.1k fewer boxes (10.4 %)``, ``312 more boxes (-4.0 %)``,
    ``not reached`` or :data:`AT_START`."""
    if not saving.reached:
        return 'not reached'
    if saving.at_start:
        return AT_START
    amount = saving.saving
    word = 'fewer' if amount >= 0 else 'more'
    pct = '' if saving.percent is None else f' ({saving.percent:.1f} %)'
    return f'{format_count(abs(amount))} {word} {unit}{pct}'


def _signed(saving: Saving) -> str:
    if not saving.reached:
        return 'not reached'
    if saving.at_start:
        return 'at start'
    return ('+' if saving.saving >= 0 else '-') + format_count(
        abs(saving.saving))


def curves_markdown(curves: Dict[str, MeanCurve], unit: str,
                    metric: str) -> str:
    """One row per selector and cycle: mean [min, max] over seeds."""
    with_cost = unit != 'images'
    head = ['selector', 'cycle', 'images'] + (
        [f'{unit}'] if with_cost else []
    ) + [f'{metric} (%) mean [min, max]', f'10k × {metric} / {unit}', 'seeds']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for curve in curves.values():
        for i, cycle in enumerate(curve.cycles):
            row = [curve.name, str(cycle), format_number(curve.images[i])]
            if with_cost:
                row.append(format_number(curve.cost[i]))
            row += [
                f'{curve.metric[i]:.2f} [{curve.metric_min[i]:.2f}, '
                f'{curve.metric_max[i]:.2f}]', f'{curve.efficiency[i]:.1f}',
                str(len(curve.seeds))
            ]
            lines.append('| ' + ' | '.join(row) + ' |')
    return '\n'.join(lines)


def savings_markdown(results: Sequence[SavingResult], reference: str,
                     unit: str, metric: str) -> str:
    """The savings table and one sentence per selector on its spread."""
    ref = next(r for r in results if r.name == reference)
    seeds = sorted({s for r in results for s in r.per_seed})
    head = [
        'selector', f'{unit} to reach the target (mean curve)',
        'saving (mean curve)', 'per seed ' + ' / '.join(map(str, seeds)),
        'spread [min, max]', 'spread includes zero'
    ]
    lines = [
        f'Target: {reference}\'s final mean {metric}, '
        f'{ref.mean.target:.2f}, reached with '
        f'{format_number(ref.mean.reference_cost)} {unit}.', '',
        '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)
    ]
    for res in results:
        is_ref = res.name == reference
        per_seed = ' / '.join(
            _signed(res.per_seed[s]) if s in res.per_seed else 'missing'
            for s in seeds)
        row = [
            res.name + (' (reference)' if is_ref else ''),
            format_number(res.mean.cost)
            if res.mean.reached else 'not reached',
            format_saving(res.mean, unit), per_seed,
            _spread_cell(res), '-' if is_ref else
            ('n/a (1 seed)' if len(res.per_seed) == 1 else
             'yes' if res.spread_includes_zero else 'no')
        ]
        lines.append('| ' + ' | '.join(row) + ' |')
    lines.append('')
    for res in results:
        if res.name != reference:
            lines.append('- ' + conclusion(res, reference, unit))
    return '\n'.join(lines)


def _spread_cell(res: SavingResult) -> str:
    """``[+6.8, +54.6]``, with the seeds that did not reach the target and
    those left out (reached at the shared start)."""
    missed = sum(not s.reached for s in res.per_seed.values())
    spread = res.spread
    cell = '-' if spread is None else \
        f'[{_signed_value(spread[0])}, {_signed_value(spread[1])}]'
    if missed:
        cell += f'; {missed} not reached'
    if res.at_start_seeds:
        cell += f'; {len(res.at_start_seeds)} at start, left out'
    return cell


def _signed_value(value: float) -> str:
    return ('+' if value >= 0 else '-') + format_count(abs(value))


def conclusion(res: SavingResult, reference: str, unit: str) -> str:
    """What the per-seed spread allows one to say about a selector (the
    seeds that reached the target at the shared start left out, and
    said so)."""
    if not res.per_seed:
        return (f'{res.name}: no seed shared with {reference}; no per-seed '
                'comparison')
    start = res.at_start_seeds
    if not start:
        return f'{res.name}: {_spread_verdict(res.per_seed, reference, unit)}'
    note = (f'seed{"s" if len(start) > 1 else ""} '
            f'{", ".join(map(str, start))} reached {reference}\'s final '
            'metric at the initial labeled set every selector of the seed '
            'shares (no information), left out of the spread; ')
    left = {k: v for k, v in res.per_seed.items() if not v.at_start}
    if len(left) < 2 and all(v.reached for v in left.values()):
        return (f'{res.name}: {note}{len(left)} '
                f'seed{"" if len(left) == 1 else "s"} left: no spread, '
                'nothing to conclude')
    return f'{res.name}: {note}{_spread_verdict(left, reference, unit)}'


def _spread_verdict(per_seed: Dict[int, Saving], reference: str,
                    unit: str) -> str:
    """:func:`conclusion` on the savings of ``per_seed`` (seed -> saving,
    none reached at the shared start), without the selector's name."""
    n = len(per_seed)
    missed = [s for s, v in per_seed.items() if not v.reached]
    if n == 1:
        return (f'one seed compared with {reference}, no spread: an '
                'illustration, not evidence')
    if missed:
        return (f'does not reach {reference}\'s final metric with '
                f'seed{"s" if len(missed) > 1 else ""} '
                f'{", ".join(map(str, missed))} of {n}: the spread includes '
                f'zero, no saving is shown')
    savings = [v.saving for v in per_seed.values()]
    low, high = min(savings), max(savings)
    if low <= 0 <= high:
        return (f'the per-seed savings go from {_signed_value(low)} to '
                f'{_signed_value(high)} {unit} over {n} seeds: the spread '
                f'includes zero, not distinguishable from {reference} at '
                'this number of seeds')
    word = 'fewer' if low > 0 else 'more'
    return (f'every one of {n} seeds needs {word} {unit} than {reference} '
            f'(the spread excludes zero: {_signed_value(low)} to '
            f'{_signed_value(high)})')


def curves_csv(curves: Dict[str, MeanCurve]) -> str:
    """:data:`CURVE_COLUMNS`, one row per selector and cycle."""
    rows: List[list] = []
    for c in curves.values():
        for i, cycle in enumerate(c.cycles):
            rows.append([
                c.name,
                int(cycle),
                len(c.seeds), c.images[i], c.cost[i], c.cost_min[i],
                c.cost_max[i], c.metric[i], c.metric_min[i], c.metric_max[i],
                c.efficiency[i]
            ])
    return _csv(CURVE_COLUMNS, rows)


def savings_csv(results: Sequence[SavingResult]) -> str:
    """:data:`SAVING_COLUMNS`; ``seed`` is ``mean`` for the mean curves;
    empty cost and saving: not reached."""
    rows = []
    for res in results:
        for seed, s in [('mean', res.mean)] + sorted(res.per_seed.items()):
            rows.append([
                res.name, seed, s.target, s.reference_cost,
                '' if s.cost is None else s.cost,
                '' if s.saving is None else s.saving,
                '' if s.percent is None else s.percent,
                int(s.at_start)
            ])
    return _csv(SAVING_COLUMNS, rows)


def _csv(columns: Sequence[str], rows: List[list]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator='\n')
    writer.writerow(columns)
    for row in rows:
        writer.writerow([
            f'{v:.6g}' if isinstance(v, float) else v
            for v in [float(x) if hasattr(x, 'dtype') else x for x in row]
        ])
    return buf.getvalue()
