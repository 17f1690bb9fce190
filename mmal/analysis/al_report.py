"""The report of an experiment: tables, savings, plots (see
``tools/analysis_tools/al_report.py``)."""
import os
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from mmal.utils.errors import ConfigError
from mmal.utils.fileio import atomic_write_text
from .al_curves import MeanCurve, SavingResult, mean_curves, savings
from .al_runs import RunSet, load_runs
from .curve_plot import plot_curves
from .report_tables import (curves_csv, curves_markdown, metric_label,
                            savings_csv, savings_markdown)

#: Selector types taken as the reference when none is named.
DEFAULT_REFERENCE_TYPES = ('mmal.RandomSelector', 'RandomSelector')


def find_reference(runs: RunSet, name: Optional[str]) -> Optional[str]:
    """The reference selector's group name.

    Args:
        runs (RunSet): The grouped runs.
        name (str, optional): A group name, or its selector prefix
            (``random`` for ``random_fcos_voc``). None: the group of the
            random selector, if exactly one.

    Returns:
        str | None: None when no name is given and no random run exists.

    Raises:
        ConfigError: ``name`` matches no group or several.
    """
    groups = list(runs.groups)
    if name is None:
        found = [
            g for g in groups
            if runs.groups[g][0].selector in DEFAULT_REFERENCE_TYPES
        ]
        return found[0] if len(found) == 1 else None
    if name in runs.groups:
        return name
    found = [g for g in groups if g.split('_')[0] == name]
    if len(found) != 1:
        raise ConfigError(f'--reference {name!r} matches '
                          f'{found or "no selector"}; the selectors are '
                          f'{groups}')
    return found[0]


@dataclass
class Report:
    """What :func:`make_report` computed and wrote.

    Args:
        runs (RunSet): The runs.
        curves (dict[str, MeanCurve]): Mean curves by selector.
        savings (list[SavingResult] | None): None without a reference.
        reference (str | None): The reference selector.
        markdown (str): The whole report as Markdown.
        files (list[str]): Files written.
    """
    runs: RunSet
    curves: Dict[str, MeanCurve]
    savings: Optional[List[SavingResult]]
    reference: Optional[str]
    markdown: str
    files: List[str]


def make_report(paths: Sequence[str],
                out_dir: Optional[str] = None,
                reference: Optional[str] = None,
                include_unfinished: bool = False,
                plot_formats: Sequence[str] = ('png', 'svg'),
                title: Optional[str] = None) -> Report:
    """Read the runs under ``paths``; write the report to ``out_dir``.

    Files: ``al_report.md``, ``al_curves.csv``, ``al_savings.csv`` (with a
    reference) and ``al_curves.<fmt>`` for each plot format.

    Args:
        paths (Sequence[str]): Work dirs of runs or experiments.
        out_dir (str, optional): None: nothing is written.
        reference (str, optional): See :func:`find_reference`.
        include_unfinished (bool): Use unfinished runs' evaluated cycles.
        plot_formats (Sequence[str]): Figure formats.
        title (str, optional): Title of the figure and the Markdown.

    Returns:
        Report
    """
    runs = load_runs(paths, include_unfinished=include_unfinished)
    curves = mean_curves(runs)
    ref = find_reference(runs, reference)
    unit, metric = runs.cost_unit, metric_label(runs.metric_key)
    title = title or ', '.join(runs.groups)
    parts = [
        f'# Active-learning report: {title}', '',
        f'Runs: {sum(len(g) for g in runs.groups.values())} '
        f'({len(runs.groups)} selectors, seeds '
        f'{", ".join(map(str, runs.seeds))}). Metric: {runs.metric_key}, '
        f'in points; cost: labeled {unit}.', ''
    ]
    if runs.notes:
        parts += ['Notes:', ''] + [f'- {n}' for n in runs.notes] + ['']
    for curve in curves.values():
        if len(set(curve.lengths)) > 1:
            parts.append(f'- {curve.name}: its seeds have '
                         f'{"/".join(map(str, curve.lengths))} evaluated '
                         f'cycles; the mean covers the first '
                         f'{len(curve.cycles)}')
    parts += [
        '## Curves (mean over seeds)', '',
        curves_markdown(curves, unit, metric), ''
    ]
    results = None
    if ref is None:
        parts += [
            'No random selector among the runs: pass --reference '
            'NAME for the savings at equal performance.'
        ]
    else:
        results = savings(runs, curves, ref)
        parts += [
            '## Savings at equal performance', '',
            savings_markdown(results, ref, unit, metric)
        ]
    markdown = '\n'.join(parts) + '\n'
    files: List[str] = []
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        texts = {'al_report.md': markdown, 'al_curves.csv': curves_csv(curves)}
        if results is not None:
            texts['al_savings.csv'] = savings_csv(results)
        for name, text in texts.items():
            atomic_write_text(osp.join(out_dir, name), text)
            files.append(osp.join(out_dir, name))
        plots = [osp.join(out_dir, f'al_curves.{fmt}') for fmt in plot_formats]
        if plots:
            plot_curves(curves, unit, metric, plots, title)
            files += plots
    return Report(runs, curves, results, ref, markdown, files)
