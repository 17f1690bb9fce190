"""The active-learning driver: train -> evaluate -> select, cycle by cycle."""
import copy
import gc
import glob
import itertools
import logging
import os
import os.path as osp
import re
import time
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.logging import MMLogger, print_log
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmengine.runner.checkpoint import (_load_checkpoint,
                                        _load_checkpoint_to_model)

from mmal.datasets import PoolSubsetDataset
from mmal.datasets.pool_data import (check_data_paths, pool_dataset_cfg,
                                     replace_pool_dataset)
from mmal.models.auto_adapter import adapter_for, model_class
from mmal.models.class_quality import add_quality_buffers
from mmal.registry import AL_ADAPTERS, MODELS, SELECTORS, TASKS
from mmal.structures import ALState, PoolState
from mmal.structures import experiment_fingerprint as fingerprint
from mmal.structures.run_files import STATE_FILE, STOP_SETTINGS
from mmal.utils.checkpoint import trusted_checkpoint_loading
from mmal.utils.config_utils import override_data_root
from mmal.utils.distributed import (broadcast_from_master, is_distributed,
                                    is_master, sync)
from mmal.utils.errors import (ConfigError, ConfigKeyError, MissingFileError,
                               WorkDirError)
from mmal.utils.fileio import atomic_write_json
from mmal.utils.text import counted
from .al_config import num_images, resolve_al_cfg
from .al_visualizer import ALVisualizer
from .annotation_mode import AnnotationMode, resolve_annotation_cfg
from .cycle_runner import CycleRunner
from .image_drops import ImageDrops, check_run_images
from .selection_step import Selection, SelectionStep

#: Why a run stopped (``meta['stop']['reason']`` of its state): the last
#: cycle was trained, the target metric was reached, or every image of the
#: pool is labeled. A run waiting for annotations has not stopped.
STOP_REASONS = ('num_cycles', 'target_metric', 'pool_labeled')
#: ``al_cfg`` keys of the stop rule, recorded with ``meta['stop']``.
_run_counter = itertools.count()


def _build(registry, cfg: dict, what: str):
    """Build ``al_cfg.<what>``; a bad type or bad arguments are the
    config's errors (:class:`ConfigKeyError`, :class:`ConfigError`)."""
    try:
        return registry.build(cfg)
    except KeyError as e:
        if cfg.get('type') and registry.get(cfg['type']) is None:
            known = sorted(registry.module_dict)
            raise ConfigKeyError(
                f'unknown {what} type {cfg["type"]!r} in al_cfg; registered '
                f'{what}s: {known} (use the mmal. prefix, e.g. '
                'type="mmal.RandomSelector")') from e
        raise
    except (TypeError, ValueError) as e:  # an unknown key, a bad value
        raise ConfigError(f'al_cfg.{what} = {cfg}: {e}') from e


class ActiveLearningRunner:
    """Runs cycles of pool-based active learning with mmengine Runners.

    Cycle ``k`` trains a fresh :class:`mmengine.runner.Runner` (its own
    ``work_dir/cycle_k`` and experiment name) on the labeled view of the
    pool, evaluates it on the test split, then lets the selector pick the
    next images. After each step the state is written atomically to
    ``work_dir/al_state.json``; rerunning on the same ``work_dir`` continues
    after the last finished step (and resumes an interrupted training from
    its last checkpoint).

    Args:
        cfg (Config): An mmdet / mmpretrain config with an ``al_cfg``
            block.
        work_dir (str, optional): Defaults to ``cfg.work_dir``.
        require_state (bool): Fail when ``work_dir`` holds no state yet
            (``--resume``).
        annotations (str, optional): Annotation mode (``al_cfg.annotation``):
            the annotation tool's export that labels the selection waiting
            in ``work_dir`` (``--annotations``; see
            :class:`~mmal.engine.annotation_mode.AnnotationMode`).
    """

    def __init__(self,
                 cfg: Config,
                 work_dir: Optional[str] = None,
                 require_state: bool = False,
                 annotations: Optional[str] = None) -> None:
        world = int(os.environ.get('WORLD_SIZE', '1'))
        if world > 1 and not is_distributed():
            raise RuntimeError(
                'WORLD_SIZE > 1 but no process group: start distributed runs '
                'with tools/dist_al_train.sh (torchrun, --launcher pytorch), '
                'which joins the group before ActiveLearningRunner is built.')
        self.cfg = copy.deepcopy(cfg)
        source = cfg.filename or 'the config'
        self.al = resolve_al_cfg(self.cfg, source)
        work_dir = work_dir or self.cfg.get('work_dir')
        if not work_dir:
            raise ConfigError('no work_dir: pass --work-dir or set work_dir')
        self.work_dir = osp.abspath(work_dir)
        self.cfg.work_dir = self.work_dir
        self.state_path = osp.join(self.work_dir, STATE_FILE)
        self.require_state = require_state
        self.name = osp.splitext(osp.basename(cfg.filename or 'al'))[0]
        self.selector = _build(SELECTORS, dict(self.al['selector']),
                               'selector')
        self.adapter = None
        auto_adapter = None  # logged once the logger exists
        if self.al['adapter'] is not None:
            self.adapter = _build(AL_ADAPTERS, dict(self.al['adapter']),
                                  'adapter')
        elif self.selector.needs_model or self.al['annotation'] is not None:
            auto_adapter = self._auto_adapter()
            self.adapter = _build(AL_ADAPTERS, auto_adapter, 'adapter')
        self.task = self._build_task()
        init_default_scope(
            self.cfg.get('default_scope', self.task.default_scope))
        if self.al['cost_budget'] is not None and self.task.cost_is_images:
            raise ConfigError(
                f'al_cfg.cost_budget is set, but the annotation cost of '
                f'{self.task.name} is counted in images: use al_cfg.budget')
        self._prepare_demo_data()
        if self.selector.needs_model and self.adapter is None:
            raise ConfigError(
                f'{type(self.selector).__name__} needs a model adapter: set '
                'al_cfg.adapter (e.g. dict(type="mmal.FCOSAdapter"))')
        if getattr(self.selector, 'needs_boxes', False) and \
                self.adapter is not None and not self.adapter.predicts_boxes:
            raise ConfigError(
                f'{type(self.selector).__name__} compares predicted boxes, '
                f'but the model\'s adapter {type(self.adapter).__name__} '
                'predicts none (a classifier?): use it with a detector')
        check = getattr(self.selector, 'check_config', None)
        if check is not None:  # BaseSelector's; a duck-typed one may lack it
            check(self.cfg)
        os.makedirs(self.work_dir, exist_ok=True)
        self.logger = MMLogger.get_instance(
            f'mmal_{self.name}_{next(_run_counter)}_{time.time_ns()}',
            log_file=osp.join(self.work_dir, 'al.log'),
            file_mode='a',  # a rerun continues the log of the run it resumes
            log_level='INFO')
        if auto_adapter is not None:
            self.log(f'al_cfg.adapter not set: {auto_adapter["type"]} for '
                     f'{self._model_type()} (chosen from the model\'s type)')
        self._pool_view: Optional[PoolSubsetDataset] = None
        self._costs: Optional[Dict[str, int]] = None
        self.image_drops = ImageDrops()  # undecodable images left out
        self._env_logged = False
        self.vis: Optional[ALVisualizer] = None
        annotation = resolve_annotation_cfg(self.al['annotation'])
        if annotation is None and annotations:
            raise ConfigError(
                '--annotations is for annotation mode: the config has no '
                'al_cfg.annotation (see '
                'docs/en/user_guides/annotation_mode.md)')
        self.annotation_mode = None
        if annotation is not None:
            self.annotation_mode = AnnotationMode(self, annotation,
                                                  annotations)
            self.annotation_mode.prepare()

    # -- helpers ----------------------------------------------------------
    def _model_type(self) -> str:
        return model_class(self.cfg.model,
                           self.cfg.get('default_scope', 'mmdet')).__name__

    def _auto_adapter(self) -> dict:
        """The adapter of the config's model family (an unsupported
        family is refused here, before any training)."""
        try:
            return adapter_for(self.cfg.model,
                               self.cfg.get('default_scope', 'mmdet'))
        except (ValueError, KeyError) as e:
            raise ConfigError(
                f'{type(self.selector).__name__} needs a model adapter and '
                f'al_cfg.adapter is not set: {e}') from e

    def _build_task(self):
        """``al_cfg.task``; else the adapter's ``task_type``; else the one
        registered task whose ``default_scope`` is the config's (``mmdet``
        when the config names none); several or none: an error."""
        task = self.al['task']
        if task is None and self.adapter is not None and \
                self.adapter.task_type:
            task = self.adapter.task_type
        if task is None:
            scope = self.cfg.get('default_scope', 'mmdet')
            serving = sorted(name for name, cls in TASKS.module_dict.items()
                             if cls.default_scope == scope)
            if len(serving) != 1:
                raise ConfigError(
                    f'no al_cfg.task and no al_cfg.adapter: the task of '
                    f'default_scope {scope!r} is ambiguous (tasks of that '
                    f'scope: {serving or "none"}); set al_cfg.task')
            task = serving[0]
        if isinstance(task, str):
            task = dict(type=task)
        return _build(TASKS, dict(task), 'task')

    def _prepare_demo_data(self) -> None:
        """Generate the config's ``demo_data`` into ``work_dir/data``.

        Configs with a ``demo_data`` block (the built-in shapes demos) need
        no download: the task's generator writes the images and annotations
        on first use and every path under ``data_root`` is pointed at
        them.
        """
        demo = self.cfg.get('demo_data')
        if not demo:
            return
        if self.al['annotation'] is not None and not (
                self.cfg.get('val_dataloader')
                or self.cfg.get('test_dataloader')):
            return  # the pool is the user's images; nothing evaluates
        out_dir = osp.join(self.work_dir, 'data')
        if is_master():
            self.task.generate_demo_data(out_dir, **dict(demo))
        sync()
        override_data_root(self.cfg, out_dir)

    def log(self, msg: str) -> None:
        print_log(msg, self.logger)

    def cycle_dir(self, cycle: int) -> str:
        return osp.join(self.work_dir, f'cycle_{cycle}')

    def checkpoint_path(self, state: ALState, cycle: int) -> str:
        """Cycle ``cycle``'s trained checkpoint, as an absolute path.

        The state records it relative to the work dir, so that a copied or
        moved work dir continues; an absolute path (a state of an older
        mmal) that no longer exists is looked for in the cycle's folder.
        """
        path = state.record(cycle)['checkpoint']
        if not osp.isabs(path):
            return osp.join(self.work_dir, path)
        return found_in(path, self.cycle_dir(cycle))

    @property
    def pool_view(self) -> PoolSubsetDataset:
        """Every image of the pool but the dropped undecodable ones,
        annotations only (no pipeline run)."""
        if self._pool_view is None:
            ds = pool_dataset_cfg(self.cfg)
            ds['pipeline'] = []
            self._pool_view = PoolSubsetDataset(
                ds,
                annotation_policy=self.al['annotation_policy'],
                exclude_ids=self.image_drops.ids('pool'))
        return self._pool_view

    def cost(self, ids: Sequence[str]) -> int:
        """Annotation cost of ``ids`` in the task's unit (boxes for
        detection, images for classification)."""
        if self._costs is None:
            self._costs = self.task.costs(self.pool_view)
        return sum(self._costs[i] for i in ids)

    def build_runner(self, cfg: Config) -> Runner:
        """A cycle's mmengine Runner; only the first one of this run logs
        the environment (:class:`CycleRunner`)."""
        cfg.log_env = not self._env_logged
        self._env_logged = True
        return CycleRunner.from_cfg(cfg)

    def _experiment_name(self, cycle: int, what: str) -> str:
        stamp = time.strftime('%Y%m%d_%H%M%S')
        return broadcast_from_master(
            f'{self.name}_cycle{cycle}_{what}_{stamp}_{next(_run_counter)}')

    def save_state(self, state: ALState) -> None:
        """Rank 0 writes the state (atomically); the others wait for it."""
        if is_master():
            state.save(self.state_path)
        sync()

    def write_json(self, path: str, obj) -> None:
        """Rank 0 writes ``path`` (atomically); the others wait for it."""
        if is_master():
            atomic_write_json(path, obj)
        sync()

    # -- state ------------------------------------------------------------
    def load_or_init_state(self) -> ALState:
        """The saved state, or a new one with the seeded initial split."""
        pool_ids = self.pool_view.sample_ids
        experiment = fingerprint.experiment_fingerprint(self.cfg, self.al)
        if broadcast_from_master(ALState.exists(self.state_path)):
            state = ALState.load(self.state_path)
            # every rank has read it before rank 0 may rewrite it below
            # (else a rank reading late sees no change to record, skips
            # the save's barrier, and the ranks deadlock)
            sync()
            if fingerprint.FINGERPRINT_KEY in state.meta:
                fingerprint.check_same_experiment(state.meta, experiment,
                                                  self.state_path)
            if sorted(state.pool.pool_ids) != sorted(pool_ids):
                raise WorkDirError(
                    f'{self.state_path} was written for another pool '
                    f'({len(state.pool)} images; the config gives '
                    f'{len(pool_ids)}). Use a new --work-dir for a new '
                    'dataset.')
            self._record_settings(state, experiment)
            self.log(
                f'resuming from {self.state_path}: '
                f'{state.pool.num_labeled} labeled images, finished '
                f'steps {[(r["cycle"], r["done"]) for r in state.cycles]}')
            return state
        if self.require_state:
            raise MissingFileError(
                f'--resume given but {self.state_path} does not exist')
        if self.annotation_mode is not None:
            pool = PoolState(pool_ids)
            pool.label(self.annotation_mode.initial_labeled(), cycle=0)
        else:
            pool = PoolState.initial(
                pool_ids, num_images(self.al['initial_size'], len(pool_ids)),
                self.al['seed'])
        state = ALState(
            pool,
            meta={
                'config': self.cfg.filename,
                fingerprint.FINGERPRINT_KEY: experiment,
                fingerprint.SETTINGS_KEY: fingerprint.run_settings(
                    self.cfg, self.al),
                fingerprint.CHANGES_KEY: []
            })
        self.save_state(state)
        if self.annotation_mode is not None:
            how = ('the images of '
                   f'{self.annotation_mode.cfg["labeled_ann_file"]}')
        else:
            how = f'at random (seed {self.al["seed"]})'
        self.log(f'new run in {self.work_dir}: pool of '
                 f'{counted(len(pool), "image")}, {pool.num_labeled} '
                 f'labeled: {how}')
        return state

    def check_experiment(self) -> None:
        """Refuse a work dir whose state records another experiment.

        Raises:
            WorkDirError: The recorded fingerprint differs from this
                config's (every difference listed).
        """
        if not broadcast_from_master(ALState.exists(self.state_path)):
            return
        meta = ALState.load(self.state_path).meta
        if fingerprint.FINGERPRINT_KEY in meta:
            fingerprint.check_same_experiment(
                meta, fingerprint.experiment_fingerprint(self.cfg, self.al),
                self.state_path)

    def _record_settings(self, state: ALState, experiment: dict) -> None:
        """Record this run's settings in a resumed state, logging each one
        that changed since the last run (``meta['changes']``).

        A state written before mmal recorded fingerprints gets this run's
        fingerprint, with a warning.
        """
        settings = fingerprint.run_settings(self.cfg, self.al)
        if fingerprint.FINGERPRINT_KEY not in state.meta:
            print_log(
                f'{self.state_path} records no experiment fingerprint (an '
                'older mmal wrote it): recording this run\'s config as the '
                'experiment of the work dir, so a rerun that changes the '
                'selector, model, data, seed or budgets is refused from now '
                'on. Check that this is the config the run was started with.',
                self.logger,
                level=logging.WARNING)
            state.meta[fingerprint.FINGERPRINT_KEY] = experiment
            state.meta[fingerprint.SETTINGS_KEY] = settings
            state.meta.setdefault(fingerprint.CHANGES_KEY, [])
            self.save_state(state)
            return
        # the changes apply from the first cycle with a step still to do
        cycle = next(
            (r['cycle'] for r in state.cycles if 'select' not in r['done']),
            len(state.cycles))
        changes = fingerprint.record_setting_changes(state.meta, settings,
                                                     cycle)
        for change in changes:
            self.log(f'setting changed since the last run, from cycle '
                     f'{cycle} on: ' + fingerprint.format_difference(
                         change['key'], change['from'], change['to']))
        if changes:
            self.save_state(state)

    # -- the loop ---------------------------------------------------------
    def run(self) -> ALState:
        """Run (or continue) every cycle; returns the final state."""
        check_data_paths(
            self.cfg,
            ('train_dataloader', 'val_dataloader', 'test_dataloader'))
        self.check_experiment()  # before the image checks touch the state
        self.image_drops = check_run_images(self.cfg, self.work_dir,
                                            self.state_path,
                                            self.al['annotation_policy'],
                                            self.logger)
        self.forget_pool_annotations()  # built before images were dropped
        self.vis = ALVisualizer(self.cfg, self.work_dir, self.name)
        reason = None
        try:
            with trusted_checkpoint_loading():
                state = self.load_or_init_state()
                if self.image_drops.record(state):
                    self.save_state(state)
                if self.annotation_mode is not None:
                    self.annotation_mode.check_annotations_arg(state)
                for cycle in range(self.al['num_cycles']):
                    reason = self.run_cycle(state, cycle)
                    if reason is not None:
                        break
            if reason in STOP_REASONS:
                self.record_stop(state, cycle, reason)
        finally:
            self.vis.close()
        self.log_summary(state)
        return state

    def record_stop(self, state: ALState, cycle: int, reason: str) -> None:
        """Record in the state that the run stopped after ``cycle``.

        ``meta['stop']`` keeps the reason and the stop rule's settings, so
        a later run with more cycles or another target is not taken as
        finished (:func:`~mmal.structures.run_files.is_finished`).
        """
        stop = dict(
            reason=reason,
            cycle=cycle,
            **{k: self.al[k]
               for k in STOP_SETTINGS})
        if state.meta.get('stop') != stop:
            state.meta['stop'] = stop
            self.save_state(state)

    def run_cycle(self, state: ALState, cycle: int) -> Optional[str]:
        """Finish the steps of ``cycle`` not done yet.

        Returns:
            str | None: None to go on; else why the run stops here (one of
            :data:`STOP_REASONS`, or ``'awaiting_annotations'``).
        """
        runner = None
        if not state.is_done(cycle, 'train'):
            runner = self.train(state, cycle)
        if not state.is_done(cycle, 'evaluate'):
            self.evaluate(state, cycle, runner)
        del runner
        gc.collect()
        if self.target_reached(state.record(cycle)):
            rec = state.record(cycle)
            self.log(f'cycle {cycle}: {rec["metric_key"]} '
                     f'{100 * rec["metric"]:.2f} reached the target '
                     f'{100 * self.al["target_metric"]:.2f} - '
                     f'{100 * self.al["target_tolerance"]:.2f} with '
                     f'{counted(rec["images"], "image")}; stopping')
            return 'target_metric'
        if cycle == self.al['num_cycles'] - 1:
            if self.al['target_metric'] is not None:
                self.log(f'the target {self.al["target_metric"]} was not '
                         f'reached in {self.al["num_cycles"]} cycles '
                         '(al_cfg.num_cycles)')
            return 'num_cycles'
        if not state.is_done(cycle, 'select'):
            if not state.pool.unlabeled_ids:
                self.log(f'cycle {cycle}: every image of the pool is '
                         'labeled; stopping')
                return 'pool_labeled'
            if self.annotation_mode is not None:  # people label it
                if not self.annotation_mode.exchange(state, cycle):
                    return 'awaiting_annotations'
                return None
            self.select(state, cycle)
        return None

    def target_reached(self, record: dict) -> bool:
        """Whether an evaluated cycle meets ``al_cfg.target_metric``.

        Reached when ``metric >= target_metric - target_tolerance`` (the
        paper's Faster R-CNN protocol: 22 +- 0.3 AP); both are fractions.
        """
        target = self.al['target_metric']
        if target is None or 'metric' not in record:
            return False
        # 1e-9: mmdet rounds AP to 3 decimals; 0.22 - 0.003 is not exact
        return record['metric'] + 1e-9 >= target - self.al['target_tolerance']

    def _runner_cfg(self, cycle: int, what: str) -> Config:
        cfg = copy.deepcopy(self.cfg)
        cfg.pop('al_cfg', None)
        cfg.work_dir = self.cycle_dir(cycle)
        cfg.experiment_name = self._experiment_name(cycle, what)
        visualizer = cfg.get('visualizer')
        if isinstance(visualizer, dict):  # mmdet names it 'visualizer': one
            # instance, made by cycle 0, would write every cycle's curves
            # into cycle 0's vis_data; a name per cycle gives each its own
            cfg.visualizer = dict(visualizer, name=cfg.experiment_name)
        randomness = dict(cfg.get('randomness') or {})
        randomness['seed'] = self.al['seed'] + cycle
        cfg.randomness = randomness
        if not self.al['validate_during_training'] or what == 'eval':
            cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
        for split in ('val', 'test'):  # a split set to None: no loop
            if not cfg.get(f'{split}_dataloader'):
                cfg[f'{split}_dataloader'] = cfg[f'{split}_cfg'] = None
                cfg[f'{split}_evaluator'] = None
        self.image_drops.apply_to(cfg)
        if is_distributed():  # the group is up: mmengine's DDP on every rank
            cfg.launcher = 'pytorch'
            if not torch.cuda.is_available():  # DDP on CPU takes no device
                wrapper = dict(cfg.get('model_wrapper_cfg') or {})
                wrapper.setdefault('type', 'MMDistributedDataParallel')
                wrapper['device_ids'] = None
                cfg.model_wrapper_cfg = wrapper
        return cfg

    def resume_checkpoint(self, cdir: str) -> Optional[str]:
        """The checkpoint an interrupted training in ``cdir`` resumes from.

        mmengine's ``last_checkpoint`` when the file it names loads. A crash
        while mmengine rotates checkpoints (``max_keep_ckpts``) can leave it
        naming a deleted or half-written file: then the newest
        ``epoch_*.pth`` / ``iter_*.pth`` that loads; None when there is none
        (the training starts over).
        """
        candidates = []
        last = osp.join(cdir, 'last_checkpoint')
        if osp.isfile(last):
            with open(last) as f:
                # mmengine writes an absolute path: the work dir may have
                # moved since
                candidates.append(found_in(f.read().strip(), cdir))
        saved = glob.glob(osp.join(cdir, 'epoch_*.pth')) + glob.glob(
            osp.join(cdir, 'iter_*.pth'))
        saved.sort(
            key=lambda p: int(re.findall(r'\d+', osp.basename(p))[0]),
            reverse=True)
        candidates += [p for p in saved if p not in candidates]
        for path in candidates:
            if not osp.isfile(path):
                self.log(f'{last} names {path}, which does not exist (a '
                         'crash while checkpoints were rotated?); looking '
                         'for another checkpoint')
                continue
            try:
                torch.load(path, map_location='cpu', weights_only=False)
            except Exception as e:  # half-written by a killed process
                self.log(f'cannot resume from {path} ({type(e).__name__}: '
                         f'{e}); looking for another checkpoint')
                continue
            return path
        if candidates:
            self.log(f'no loadable checkpoint in {cdir}: training starts '
                     'over')
        return None

    def train(self, state: ALState, cycle: int) -> Runner:
        """Train a fresh model on the labeled view of ``cycle``."""
        cdir = self.cycle_dir(cycle)
        os.makedirs(cdir, exist_ok=True)
        labeled = state.pool.labeled_ids
        ids_file = osp.join(cdir, 'labeled_ids.json')
        self.write_json(ids_file, labeled)
        cfg = self._runner_cfg(cycle, 'train')
        cfg.train_dataloader.dataset = replace_pool_dataset(
            self.cfg, lambda pool: dict(
                type='mmal.PoolSubsetDataset',
                dataset=pool,
                ids_file=ids_file,
                annotation_policy=self.al['annotation_policy']))
        if not self.al['train_from_scratch'] and cycle > 0:
            cfg.load_from = self.checkpoint_path(state, cycle - 1)
        resume_from = broadcast_from_master(
            self.resume_checkpoint(cdir) if is_master() else None)
        cfg.resume = resume_from is not None
        if cfg.resume:
            cfg.load_from = resume_from
        images, cost = len(labeled), self.cost(labeled)
        unit = self.task.cost_unit
        self.log(f'cycle {cycle}: training on {counted(images, "image")}' +
                 ('' if self.task.cost_is_images else f' / {cost} {unit}') +
                 (' (resuming its training)' if cfg.resume else ''))
        runner = self.build_runner(cfg)
        runner.train()
        sync()  # rank 0 has written the last checkpoint
        ckpt_file = osp.join(cdir, 'last_checkpoint')
        with open(ckpt_file) as f:
            checkpoint = f.read().strip()
        if checkpoint.startswith(self.work_dir + osp.sep):
            checkpoint = osp.relpath(checkpoint, self.work_dir)
        state.mark_done(
            cycle,
            'train',
            checkpoint=checkpoint,
            images=images,
            cost=cost,
            cost_unit=unit)
        self.save_state(state)
        return runner

    def evaluate(self, state: ALState, cycle: int,
                 runner: Optional[Runner]) -> Dict[str, float]:
        """Evaluate the cycle's model on the test split; record metrics."""
        if not self.cfg.get('test_dataloader'):  # annotation mode may
            state.mark_done(cycle, 'evaluate')  # have no labeled test split
            self.save_state(state)
            self.log(f'cycle {cycle}: no test split (test_dataloader=None): '
                     'not evaluated')
            rec = state.record(cycle)
            self._log_scalars(
                cycle,
                labeled_images=rec.get('images'),
                labeled_cost=rec.get('cost'))
            return {}
        if runner is None:
            cfg = self._runner_cfg(cycle, 'eval')
            cfg.train_dataloader = cfg.train_cfg = cfg.optim_wrapper = None
            cfg.param_scheduler = None
            cfg.load_from = self.checkpoint_path(state, cycle)
            cfg.resume = False
            runner = self.build_runner(cfg)
        raw = runner.test()
        metrics = {
            k: float(v)
            for k, v in raw.items() if isinstance(v, (int, float))
        }
        rec = state.record(cycle)
        key = self.task.metric_key(metrics, self.al['metric_key'])
        if key in metrics:
            metric = self.task.as_fraction(metrics[key])
        elif not metrics:  # mmdet's metrics return nothing without detections
            self.log(f'cycle {cycle}: the evaluation returned no metric (the '
                     'model made no detection); recording 0')
            metric = 0.0
        else:
            raise ConfigKeyError(
                f'metric {key!r} not in the evaluation results '
                f'{sorted(metrics)}; set al_cfg.metric_key')
        per_cost = points_per_10k(metric, rec['cost'])
        state.mark_done(
            cycle,
            'evaluate',
            metrics=metrics,
            metric_key=key,
            metric=metric,
            points_per_10k_cost=per_cost)
        self.save_state(state)
        self._log_scalars(
            cycle,
            labeled_images=rec['images'],
            labeled_cost=rec['cost'],
            metric=100 * metric,
            metric_per_10k_cost=per_cost)
        unit = self.task.cost_unit
        cost = '' if self.task.cost_is_images else f'{unit} {rec["cost"]} | '
        self.log(f'cycle {cycle}: images {rec["images"]} | {cost}'
                 f'{key or "metric"} {100 * metric:.2f} | '
                 f'10k x metric / {unit} '
                 f'{per_cost if per_cost is None else round(per_cost, 3)}')
        return metrics

    def load_model(self, checkpoint: str) -> torch.nn.Module:
        """The cycle's trained model, in eval mode on the best device."""
        model_cfg = copy.deepcopy(self.cfg.model)
        if self.cfg.get('data_preprocessor') is not None:  # as Runner does
            model_cfg.setdefault('data_preprocessor',
                                 copy.deepcopy(self.cfg.data_preprocessor))
        model = MODELS.build(model_cfg)
        state = _load_checkpoint(checkpoint, map_location='cpu')
        # buffers a training hook added (PPAL's class qualities)
        add_quality_buffers(model, state.get('state_dict', state))
        _load_checkpoint_to_model(model, state, logger=self.logger)
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
        return model.to(device).eval()

    @property
    def selection_step(self) -> SelectionStep:
        """The run's selector with its settings (:class:`SelectionStep`)."""
        return SelectionStep(
            self.cfg,
            self.selector,
            self.task,
            self.adapter,
            num_workers=self.al['num_workers'],
            annotation_policy=self.al['annotation_policy'],
            logger=self.logger,
            exclude_ids=self.image_drops.ids_by_split(),
            unlabeled_subset=self.al['unlabeled_subset'],
            cost_budget=self.al['cost_budget'])

    def make_selection(self, state: ALState, cycle: int) -> Selection:
        """Cycle ``cycle``'s selection (``cycle_k/selection.json``): made
        once with the cycle's model, reused after a crash; the state is not
        changed."""
        seed = self.al['seed'] * 1000 + cycle
        return self.selection_step.run(
            state.pool,
            cycle,
            seed=seed,
            work_dir=self.cycle_dir(cycle),
            budget=num_images(self.al['budget'], len(state.pool)),
            load_model=lambda: self.load_model(
                self.checkpoint_path(state, cycle)),
            cost_of=lambda i: self.cost([i]),
            record_file=osp.join(self.cycle_dir(cycle), 'selection.json'))

    def select(self, state: ALState, cycle: int) -> List[str]:
        """Rank the unlabeled pool, take the budget, label it for cycle+1."""
        selection = self.make_selection(state, cycle)
        selected, seconds = selection.selected, selection.seconds
        state.pool.label(selected, cycle + 1)
        state.mark_done(
            cycle,
            'select',
            num_selected=len(selected),
            selected_cost=self.cost(selected),
            **({} if seconds is None else dict(selection_seconds=seconds)))
        self.save_state(state)
        self._log_scalars(
            cycle, selection_time_s=seconds, selected_images=len(selected))
        cost = ('' if self.task.cost_is_images else
                f' ({state.record(cycle)["selected_cost"]} '
                f'{self.task.cost_unit})')
        self.log(f'cycle {cycle}: selected '
                 f'{counted(len(selected), "image")}{cost}; '
                 f'{len(state.pool.unlabeled_ids)} left unlabeled')
        return selected

    def forget_pool_annotations(self) -> None:
        """Rebuild the pool view and its costs on next use (the pool file
        changed: imported labels, dropped images)."""
        self._pool_view = self._costs = None

    def _log_scalars(self, cycle: int, **scalars) -> None:
        """The AL curves' points of ``cycle`` (:mod:`.al_visualizer`)."""
        if self.vis is not None:
            self.vis.log(cycle, **scalars)

    def log_summary(self, state: ALState) -> None:
        unit = self.task.cost_unit
        with_cost = not self.task.cost_is_images
        lines = [
            'cycle | images | ' + (f'{unit} | ' if with_cost else '') +
            f'metric (%) | 10k x metric / {unit}'
        ]
        for rec in state.cycles:
            if 'images' not in rec:  # not trained yet
                continue
            cost = f'{rec["cost"]:{len(unit)}d} | ' if with_cost else ''
            if rec.get('metric') is None:  # not evaluated (no test split)
                metric = f'{"-":>10} | -'
            else:
                metric = (f'{100 * rec["metric"]:10.2f} | '
                          f'{rec["points_per_10k_cost"] or 0:.3f}')
            lines.append(f'{rec["cycle"]:5d} | {rec["images"]:6d} | {cost}'
                         f'{metric}')
        self.log('active learning summary (' + self.state_path + '):\n' +
                 '\n'.join(lines))


def found_in(path: str, folder: str) -> str:
    """``path``, or the file of its name in ``folder`` when ``path`` does
    not exist but that one does (an absolute path recorded before the work
    dir was copied or moved)."""
    moved = osp.join(folder, osp.basename(path))
    return moved if not osp.isfile(path) and osp.isfile(moved) else path


def points_per_10k(metric: float, cost: int) -> Optional[float]:
    """The paper's annotation efficiency: metric points (percent) per
    10,000 units of cost, ``1e4 * 100 * metric / cost`` (None at 0 cost)."""
    return 1e4 * 100 * metric / cost if cost else None
