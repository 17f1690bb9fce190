"""Finished active-learning runs, read back from their ``al_state.json``.

The report compares *selectors* (one per config name) over *seeds*. Runs
come from work dirs: a run's own folder, a config's folder of ``seed_<k>``
runs, or an experiment's folder (``tools/al_train.py ... --seeds``), in any
mix. They must be one experiment: the same data, metric, initial size and
budgets (:func:`mmal.engine.al_experiment.comparison_key`), and, for each
seed, the same initial labeled images.
"""
import glob
import os.path as osp
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from mmal.structures import ALState
from mmal.structures.experiment_fingerprint import FINGERPRINT_KEY
from mmal.structures.run_files import (PLAN_FILE, STATE_FILE, compare_keys,
                                       comparison_key, is_finished)
from mmal.utils.errors import DataError, MissingFileError, WorkDirError
from mmal.utils.fileio import read_json


class ReportError(DataError):
    """The runs given to the report cannot be compared (named in the
    message)."""


@dataclass
class RunCurve:
    """The evaluated cycles of one run.

    Args:
        path (str): Its state file.
        name (str): The selector's label (the config's name).
        seed (int): ``al_cfg.seed``.
        cycles (list[int]): Evaluated cycles, 0, 1, ... (a prefix).
        images (list[int]): Labeled images per cycle.
        cost (list[float]): Their annotation cost (``cost_unit``).
        metric (list[float]): The test metric per cycle, in points (%).
        cost_unit (str): ``'boxes'`` or ``'images'``.
        metric_key (str): The metric's name in mmdet's / mmpretrain's
            results.
        finished (bool): The run has nothing left to do.
        selector (str): The selector's registered type.
        key (dict): What runs of one experiment share
            (:func:`comparison_key`).
        initial (tuple[str]): The initial labeled ids, sorted.
    """
    path: str
    name: str
    seed: int
    cycles: List[int]
    images: List[int]
    cost: List[float]
    metric: List[float]
    cost_unit: str
    metric_key: str
    finished: bool
    selector: str = ''
    key: Dict = field(default_factory=dict)
    initial: Tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f'{self.name} seed {self.seed}'


def find_state_files(paths: Sequence[str]) -> List[str]:
    """The ``al_state.json`` files in and below ``paths`` (3 levels).

    Raises:
        MissingFileError: A path that does not exist or holds no run.
    """
    found = []
    for path in paths:
        if osp.isfile(path) and osp.basename(path) == STATE_FILE:
            found.append(osp.abspath(path))
            continue
        if not osp.isdir(path):
            raise MissingFileError(f'no such work dir: {path}')
        here = []
        for depth in range(3):
            pattern = osp.join(path, *(['*'] * depth), STATE_FILE)
            here += sorted(glob.glob(pattern))
        if not here:
            raise MissingFileError(
                f'{path} holds no active-learning run ({STATE_FILE} in it, '
                'in <config>/seed_<k>/ or one level below)')
        found += [osp.abspath(p) for p in here]
    return sorted(set(found), key=found.index)


def _seed_of(meta: dict, path: str) -> int:
    experiment = meta.get(FINGERPRINT_KEY) or {}
    if 'al_cfg.seed' in experiment:
        return int(experiment['al_cfg.seed'])
    match = re.fullmatch(r'seed_(\d+)', osp.basename(osp.dirname(path)))
    if match:
        return int(match.group(1))
    raise ReportError(f'{path} records no seed (an older mmal wrote it): '
                      'rerun it with this mmal, which records it')


def load_run(path: str) -> RunCurve:
    """One run's curve from its state file.

    Raises:
        ReportError: The evaluated cycles are not 0, 1, ... in order, or
            their units differ.
    """
    state = ALState.load(path)
    meta = state.meta
    name = osp.splitext(osp.basename(meta.get('config') or ''))[0]
    if not name:  # no config recorded: the folder layout names it
        parent = osp.dirname(path)
        if re.fullmatch(r'seed_\d+', osp.basename(parent)):
            parent = osp.dirname(parent)
        name = osp.basename(parent)
    recs = [r for r in state.cycles if 'metric' in r]
    cycles = [r['cycle'] for r in recs]
    if cycles != list(range(len(cycles))):
        raise ReportError(f'{path}: evaluated cycles {cycles} are not 0, 1, '
                          '... (a cycle was not evaluated, e.g. no test '
                          'split): nothing to compare')
    units = {r.get('cost_unit', 'boxes') for r in recs}
    keys = {r.get('metric_key') for r in recs}
    if len(units) > 1 or len(keys) > 1:
        raise ReportError(f'{path}: cycles with different cost units '
                          f'{sorted(units)} or metrics {sorted(keys)}')
    experiment = meta.get(FINGERPRINT_KEY) or {}
    selector = (experiment.get('al_cfg.selector') or {}).get('type', '')
    return RunCurve(
        path=path,
        name=name,
        seed=_seed_of(meta, path),
        cycles=cycles,
        images=[int(r['images']) for r in recs],
        cost=[float(r['cost']) for r in recs],
        metric=[100.0 * float(r['metric']) for r in recs],
        cost_unit=units.pop() if units else 'boxes',
        metric_key=(keys.pop() if keys else None) or 'metric',
        finished=is_finished(meta, state.cycles),
        selector=selector,
        key=comparison_key(experiment) if experiment else {},
        initial=tuple(sorted(state.pool.ids_labeled_in(0))))


@dataclass
class RunSet:
    """The runs of a report, by selector, with what the reader must know.

    Args:
        groups (OrderedDict[str, list[RunCurve]]): Selector name -> its
            runs, by seed; selectors by name.
        notes (list[str]): Warnings for the report: missing seeds,
            unfinished or unstarted runs left out, curves cut short.
    """
    groups: 'OrderedDict[str, List[RunCurve]]'
    notes: List[str]

    @property
    def cost_unit(self) -> str:
        return next(iter(self.groups.values()))[0].cost_unit

    @property
    def metric_key(self) -> str:
        return next(iter(self.groups.values()))[0].metric_key

    @property
    def seeds(self) -> List[int]:
        return sorted({r.seed for runs in self.groups.values() for r in runs})


def _planned_not_started(paths: Sequence[str]) -> List[str]:
    """Runs an experiment's plan lists that have no state yet."""
    out = []
    for path in paths:
        plan = osp.join(path, PLAN_FILE)
        if not osp.isfile(plan):
            continue
        for run in read_json(plan).get('runs', []):
            if not osp.isfile(osp.join(path, run['work_dir'], STATE_FILE)):
                out.append(f'{run["name"]} seed {run["seed"]}')
    return out


def load_runs(paths: Sequence[str],
              include_unfinished: bool = False) -> RunSet:
    """Read, check and group the runs under ``paths``.

    Args:
        paths (Sequence[str]): Work dirs (or state files).
        include_unfinished (bool): Use the evaluated cycles of unfinished
            runs too (they are left out by default, and named).

    Returns:
        RunSet

    Raises:
        ReportError: Two runs of one selector and seed; runs of different
            experiments (data, metric, initial size, budgets; the message
            names each difference); runs of one seed that started from
            different labeled images; no run to report.
        MissingFileError: A path without runs.
    """
    runs = [load_run(p) for p in find_state_files(paths)]
    notes = []
    for plan_entry in _planned_not_started(paths):
        notes.append(f'{plan_entry}: planned in the experiment but not '
                     'started; left out')
    kept = []
    for run in runs:
        if not run.cycles:
            notes.append(f'{run.label}: no evaluated cycle yet ({run.path}); '
                         'left out')
        elif not run.finished and not include_unfinished:
            notes.append(f'{run.label}: unfinished ({len(run.cycles)} '
                         f'evaluated cycles, {run.path}); left out '
                         '(--include-unfinished uses them)')
        else:
            if not run.finished:
                notes.append(f'{run.label}: unfinished, its {len(run.cycles)}'
                             ' evaluated cycles are used')
            kept.append(run)
    if not kept:
        raise ReportError('no run with evaluated cycles to report in '
                          f'{list(paths)}' +
                          (': ' + '; '.join(notes) if notes else ''))
    _check_one_experiment(kept)
    groups: 'OrderedDict[str, List[RunCurve]]' = OrderedDict()
    for run in sorted(kept, key=lambda r: (r.name, r.seed)):
        groups.setdefault(run.name, []).append(run)
    seeds = sorted({r.seed for r in kept})
    for name, group in groups.items():
        missing = sorted(set(seeds) - {r.seed for r in group})
        if missing:
            notes.append(f'{name}: seed{"s" if len(missing) > 1 else ""} '
                         f'{", ".join(map(str, missing))} missing (the other '
                         f'selectors have them); its mean is over seeds '
                         f'{", ".join(str(r.seed) for r in group)}')
    return RunSet(groups, notes)


def _check_one_experiment(runs: List[RunCurve]) -> None:
    seen: Dict[Tuple[str, int], RunCurve] = {}
    for run in runs:
        other = seen.setdefault((run.name, run.seed), run)
        if other is not run:
            raise ReportError(f'two runs of {run.label}: {other.path} and '
                              f'{run.path}; give the report one of them')
    for attr in ('cost_unit', 'metric_key'):
        values = {getattr(r, attr) for r in runs}
        if len(values) > 1:
            raise ReportError(f'the runs report different {attr}s: ' +
                              ', '.join(f'{r.label}: {getattr(r, attr)}'
                                        for r in runs))
    keyed = [r for r in runs if r.key]
    if keyed:
        try:
            compare_keys({r.label: r.key for r in keyed}, 'these runs')
        except WorkDirError as e:
            raise ReportError(str(e)) from e
    first: Dict[int, RunCurve] = {}
    for run in runs:
        ref = first.setdefault(run.seed, run)
        if run.initial != ref.initial:
            raise ReportError(
                f'{run.label} ({run.path}) started from other labeled '
                f'images than {ref.label} ({ref.path}): runs of one seed '
                'must start together (the same data, initial_size and seed)')


def group_seed(group: Sequence[RunCurve], seed: int) -> Optional[RunCurve]:
    """The run of ``seed`` in a selector's group, if any."""
    return next((r for r in group if r.seed == seed), None)
