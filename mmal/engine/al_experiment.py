"""An experiment: several configs (selectors) x seeds, run one by one.

``tools/al_train.py CONFIG [CONFIG ...] --seeds 0 1 2`` runs every config
with every seed into ``<root>/<config name>/seed_<k>/``, each an ordinary
resumable mmal run with ``al_cfg.seed = k``. Rerunning the command
continues: finished runs are skipped, an interrupted one resumes where it
stopped. Runs go seed by seed (every config with seed 0, then seed 1, ...),
so that a stopped experiment already holds comparable curves.

The configs must describe the same experiment but for the selector (and
what a selector needs, e.g. a wrapped model): the same data, initial size
and budgets (:func:`comparison_key`); they are checked before any run
starts. Every run of a seed starts from the same initial labeled set (it is
drawn from the pool ids and the seed only), so the curves of a seed start
together; that is checked after each run.
"""
import os
import os.path as osp
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence

from mmengine.config import Config
from mmengine.logging import MMLogger, print_log

from mmal.structures import ALState
from mmal.structures import experiment_fingerprint as fingerprint
from mmal.structures.run_files import (PLAN_FILE, STATE_FILE, compare_keys,
                                       comparison_key, is_finished)
from mmal.utils.distributed import broadcast_from_master, is_master, sync
from mmal.utils.errors import ConfigError, MissingFileError, WorkDirError
from mmal.utils.fileio import atomic_write_json
from .al_config import resolve_al_cfg
from .al_runner import ActiveLearningRunner


@dataclass
class PlannedRun:
    """One config with one seed, in its own work dir."""
    config: str
    name: str
    seed: int
    work_dir: str

    @property
    def label(self) -> str:
        return f'{self.name} seed {self.seed}'


def default_experiment_name(configs: Sequence[str]) -> str:
    """The name the configs share after their selector prefix.

    ``isal_fcos_voc`` and ``random_fcos_voc`` give ``fcos_voc``; one config
    gives its own name; names with nothing in common ``experiment``.
    """
    stems = [osp.splitext(osp.basename(c))[0] for c in configs]
    if len(stems) == 1:
        return stems[0]
    suffix = osp.commonprefix([s[::-1] for s in stems])[::-1]
    return suffix.strip('_-') or 'experiment'


def plan_runs(configs: Sequence[str], seeds: Sequence[int],
              root: str) -> List[PlannedRun]:
    """Every config with every seed, seed by seed.

    Raises:
        ConfigError: Two configs with one name, a seed given twice.
    """
    names = [osp.splitext(osp.basename(c))[0] for c in configs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f'configs with the same name {twice}: their runs '
                          f'would share {root}/<name>/; rename one')
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f'--seeds lists a seed twice: {list(seeds)}')
    return [
        PlannedRun(c, n, int(s), osp.join(root, n, f'seed_{s}')) for s in seeds
        for c, n in zip(configs, names)
    ]


class Experiment:
    """Runs the planned runs one after the other (see the module doc).

    Args:
        runs (list[PlannedRun]): From :func:`plan_runs`.
        root (str): The experiment's folder.
        load_cfg (Callable): ``load_cfg(run) -> Config``: the run's config
            with the command line applied, ``al_cfg.seed`` and ``work_dir``
            set.
        require_state (bool): ``--resume``: fail when no run of the
            experiment has started yet.
    """

    def __init__(self,
                 runs: Sequence[PlannedRun],
                 root: str,
                 load_cfg: Callable[[PlannedRun], Config],
                 require_state: bool = False) -> None:
        self.runs = list(runs)
        self.root = osp.abspath(root)
        self.load_cfg = load_cfg
        self.require_state = require_state
        if is_master():
            os.makedirs(self.root, exist_ok=True)
        self.logger = MMLogger.get_instance(
            f'mmal_experiment_{time.time_ns()}',
            log_file=osp.join(self.root, 'experiment.log')
            if is_master() else None,
            file_mode='a',
            log_level='INFO')

    def log(self, msg: str) -> None:
        print_log(msg, self.logger)

    def check_configs(self) -> None:
        """Check that the configs are one experiment (each loaded once)."""
        keys = {}
        for run in self.runs:
            if run.name in keys:
                continue
            cfg = self.load_cfg(run)
            al = resolve_al_cfg(cfg, run.config)
            keys[run.name] = comparison_key(
                fingerprint.experiment_fingerprint(cfg, al))
        if len(keys) > 1:
            compare_keys(keys, 'the configs ' + ', '.join(keys))

    def write_plan(self) -> None:
        """``experiment.json``: the runs this command was asked for."""
        if is_master():
            atomic_write_json(
                osp.join(self.root, PLAN_FILE),
                dict(runs=[
                    dict(
                        config=r.config,
                        name=r.name,
                        seed=r.seed,
                        work_dir=osp.relpath(r.work_dir, self.root))
                    for r in self.runs
                ]))
        sync()

    def status(self, run: PlannedRun, cfg: Config) -> str:
        """'new', 'unfinished' or 'finished' (for ``cfg``'s stop rule)."""
        path = osp.join(run.work_dir, STATE_FILE)
        if not osp.isfile(path):
            return 'new'
        state = ALState.load(path)
        al = resolve_al_cfg(cfg, run.config)
        return 'finished' if is_finished(state.meta, state.cycles,
                                         al) else 'unfinished'

    def run(self) -> None:
        """Run every planned run not finished yet; check the initial
        sets."""
        self.check_configs()
        started = [
            osp.isfile(osp.join(r.work_dir, STATE_FILE)) for r in self.runs
        ]
        if self.require_state and not broadcast_from_master(any(started)):
            raise MissingFileError(
                f'--resume given but no run of the experiment in {self.root} '
                'has started')
        self.write_plan()
        self.log(f'experiment {self.root}: {len(self.runs)} runs (' +
                 ', '.join(r.label for r in self.runs) + ')')
        initial: Dict[int, tuple] = {}  # seed -> (first run, its ids)
        for i, run in enumerate(self.runs, 1):
            cfg = self.load_cfg(run)
            status = broadcast_from_master(self.status(run, cfg))
            prefix = f'[{i}/{len(self.runs)}] {run.label}'
            if status == 'finished':
                self.log(
                    f'{prefix}: finished before, skipped ({run.work_dir})')
            else:
                self.log(f'{prefix}: ' +
                         ('starting' if status == 'new' else 'resuming') +
                         f' in {run.work_dir}')
                start = time.perf_counter()
                ActiveLearningRunner(cfg).run()
                self.log(f'{prefix}: done in '
                         f'{time.perf_counter() - start:.0f} s')
            self.check_initial_set(run, initial)
        self.log(f'experiment {self.root}: every run finished; report with\n'
                 f'  python tools/analysis_tools/al_report.py {self.root}')

    def check_initial_set(self, run: PlannedRun, initial: Dict[int,
                                                               tuple]) -> None:
        """The runs of one seed start from the same labeled images.

        Raises:
            WorkDirError: naming both runs and how their sets differ.
        """
        state = ALState.load(osp.join(run.work_dir, STATE_FILE))
        ids = sorted(state.pool.ids_labeled_in(0))
        if run.seed not in initial:
            initial[run.seed] = (run, ids)
            return
        first, first_ids = initial[run.seed]
        if ids != first_ids:
            only = sorted(set(ids) - set(first_ids))
            raise WorkDirError(
                f'{run.work_dir} started from another initial labeled set '
                f'than {first.work_dir} ({len(ids)} vs {len(first_ids)} '
                f'images; e.g. {only[:5]} only in the former): the runs of '
                f'seed {run.seed} would not start together. Was one of them '
                'started with other data or another initial_size?')
