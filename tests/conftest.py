"""Shared fixtures: tiny configs and data made by the tests themselves.

The suite runs on two workers (``-n 2``, pytest-xdist; one torch thread
each). Trainings that several test modules only read (a tiny FCOS or
classifier trained for cycle 0) are made once per session for all workers
(:func:`shared_once`); a test that changes such a work dir works on a copy
(:func:`copy_run`). Tests that start two processes of their own are marked
``two_processes``: they run alone, set-up included (:func:`_cpu_share`), so
that no core is oversubscribed.
"""
import contextlib
import copy
import fcntl
import glob
import io
import json
import os
import os.path as osp
import shutil
import sys
import tempfile
import time
from typing import Callable, Optional

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
# the benchmarks' scenarios (tools/benchmarks/scenarios), as the scripts
# import them
sys.path.insert(0, osp.join(REPO, 'tools', 'benchmarks'))
TESTS = osp.join(REPO, 'tests')


def tiny_overrides(max_epochs: int = 2) -> dict:
    """Overrides that shrink the shapes demo to a few seconds per cycle."""
    loader = dict(batch_size=4, num_workers=0)
    return {
        'demo_data': dict(
            num_train=24, num_val=8, img_size=64, max_objects=3, seed=0),
        'train_dataloader': loader,
        'val_dataloader': loader,
        'test_dataloader': loader,
        'train_cfg.max_epochs': max_epochs,
        'train_cfg.val_interval': max_epochs,
        'param_scheduler': [
            dict(
                type='LinearLR',
                start_factor=0.1,
                by_epoch=False,
                begin=0,
                end=4)
        ],
        'default_hooks.logger.interval': 1,
        'al_cfg.initial_size': 8,
        'al_cfg.budget': 4,
        'al_cfg.num_cycles': 2,
        'al_cfg.num_workers': 0,
    }


def _shrunk(name: str, overrides: dict, extra: dict) -> Config:
    """Config ``name`` with ``overrides`` and ``extra`` merged; LiSSA cut to
    2 chains of depth 3 (the selector block otherwise untouched)."""
    cfg = Config.fromfile(osp.join(REPO, 'configs', name))
    cfg.merge_from_dict({**overrides, **extra})
    if cfg.al_cfg.selector.get('solver'):
        cfg.al_cfg.selector.solver.depth = 3
        cfg.al_cfg.selector.solver.repeats = 2
    return cfg


def tiny_config(name: str = 'isal_fcos_shapes.py', **extra) -> Config:
    """A demo config shrunk for tests (the selector block untouched)."""
    return _shrunk(name, tiny_overrides(), extra)


def tiny_cls_overrides(max_epochs: int = 2) -> dict:
    """Overrides that shrink the classification demo to seconds per cycle."""
    return {
        'demo_data': dict(num_train=32, num_test=12, img_size=32, seed=0),
        'train_dataloader.batch_size': 4,
        'train_dataloader.num_workers': 0,
        'val_dataloader.batch_size': 8,
        'val_dataloader.num_workers': 0,
        'test_dataloader.batch_size': 8,
        'test_dataloader.num_workers': 0,
        'train_cfg.max_epochs': max_epochs,
        'train_cfg.val_interval': max_epochs,
        'param_scheduler': [],
        'default_hooks.logger.interval': 1,
        'al_cfg.initial_size': 8,
        'al_cfg.budget': 4,
        'al_cfg.num_cycles': 2,
        'al_cfg.num_workers': 0,
    }


def tiny_cls_config(name: str = 'isal_resnet18-small_shapes-cls.py',
                    **extra) -> Config:
    """The classification demo config shrunk for tests."""
    return _shrunk(name, tiny_cls_overrides(), extra)


def record_training(monkeypatch) -> list:
    """Let trainings run, recording the cycle directory of each."""
    trained = []
    original = Runner.train

    def spy(self):
        trained.append(osp.basename(self.work_dir))
        return original(self)

    monkeypatch.setattr(Runner, 'train', spy)
    return trained


@pytest.fixture(scope='session', autouse=True)
def _register():
    from mmal.utils import register_all_modules
    register_all_modules('mmdet')


# -- two workers, and tests that start processes of their own ---------------
def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'two_processes: starts 2 processes of its own (torchrun '
        'or torch.multiprocessing); runs while no other test does')
    if os.environ.get('PYTEST_XDIST_WORKER'):
        torch.set_num_threads(1)  # two workers on two cores


def _session_dir(tmp_path_factory) -> str:
    """A folder of this test session that every xdist worker sees."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get('PYTEST_XDIST_WORKER'):
        base = base.parent  # the workers' folders are popen-gw0, -gw1, ...
    return str(base)


@contextlib.contextmanager
def _flock(path: str, exclusive: bool):
    with open(path, 'a') as f:
        fcntl.flock(f, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def _cpu_share(item):
    """Under xdist: a ``two_processes`` test holds the CPU alone, from its
    fixtures' set-up to their tear-down; other tests share it. A worker
    that waits to run one raises a flag first, so that the other worker
    starts no new test until it has run."""
    run = os.environ.get('PYTEST_XDIST_TESTRUNUID')
    if not run:
        yield
        return
    lock = osp.join(tempfile.gettempdir(), f'mmal-tests-{run}.cpu.lock')
    worker = os.environ.get('PYTEST_XDIST_WORKER', '')
    flag = f'{lock}.waiting.{worker}'
    if item.get_closest_marker('two_processes'):
        open(flag, 'a').close()
        try:
            with _flock(lock, exclusive=True):
                os.remove(flag)
                yield
        finally:
            if osp.exists(flag):
                os.remove(flag)
        return
    while any(f != flag for f in glob.glob(f'{lock}.waiting.*')):
        time.sleep(0.2)
    with _flock(lock, exclusive=False):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    with _cpu_share(item):
        yield


def shared_once(tmp_path_factory, name: str, make: Callable[[str],
                                                            None]) -> str:
    """``make(folder)`` once per test session, whichever worker asks first;
    the others wait for it and get the same folder (read it, or copy it
    with :func:`copy_run` before changing it)."""
    folder = osp.join(_session_dir(tmp_path_factory), 'shared', name)
    os.makedirs(osp.dirname(folder), exist_ok=True)
    done = osp.join(folder, '.done')
    with _flock(folder + '.lock', exclusive=True):
        if not osp.exists(done):
            shutil.rmtree(folder, ignore_errors=True)
            make(folder)
            open(done, 'w').close()
    return folder


# -- trained models shared between tests --------------------------------------
def copy_run(src: str,
             dst: str,
             forget_experiment: bool = False,
             rewind: bool = False) -> str:
    """A copy of the run in ``src`` (the run records the paths inside its
    work dir relative to it: the copy continues on its own).

    Args:
        forget_experiment (bool): Drop the recorded fingerprint, so that a
            config with another selector may continue the copy (it records
            its own).
        rewind (bool): As it was before cycle 0's selection: the trained
            and evaluated cycle-0 model, nothing selected.
    """
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns('.done'))
    state_file = osp.join(dst, 'al_state.json')
    with open(state_file) as f:
        state = json.load(f)
    if forget_experiment:
        for key in ('experiment', 'settings', 'changes'):
            state['meta'].pop(key, None)
    if rewind:
        first = {
            k: v
            for k, v in state['cycles'][0].items()
            if k not in ('num_selected', 'selected_cost', 'selection_seconds')
        }
        first['done'] = ['train', 'evaluate']
        state['cycles'] = [first]
        state['meta'].pop('stop', None)
        state['pool']['labeled'] = {
            sid: c
            for sid, c in state['pool']['labeled'].items() if c == 0
        }
        sel = osp.join(dst, 'cycle_0', 'selection.json')
        if osp.exists(sel):
            os.remove(sel)
        for name in os.listdir(dst):
            if name.startswith('cycle_') and name != 'cycle_0':
                shutil.rmtree(osp.join(dst, name))
    with open(state_file, 'w') as f:
        json.dump(state, f)
    return dst


def with_class_quality(work_dir: str, quality=(0.1, 0.5, 0.9)) -> str:
    """A run's cycle-0 checkpoint with PPAL's class qualities (one per demo
    class, unequal by default), for a model trained without
    mmal.ClassQualityHook."""
    with open(osp.join(work_dir, 'al_state.json')) as f:
        path = osp.join(work_dir, json.load(f)['cycles'][0]['checkpoint'])
    ckpt = torch.load(path, map_location='cpu', weights_only=False)
    ckpt['state_dict']['bbox_head.class_quality'] = torch.tensor(quality)
    torch.save(ckpt, path)
    return work_dir


def run_quietly(cfg: Config, work_dir: str) -> str:
    """A whole run of ``cfg`` (its ``num_cycles``) in ``work_dir``, its
    console output dropped."""
    from mmal.engine import ActiveLearningRunner
    with contextlib.redirect_stdout(io.StringIO()):
        ActiveLearningRunner(copy.deepcopy(cfg), work_dir).run()
    return work_dir


def train_cycle0(cfg: Config, work_dir: str) -> str:
    """Train and evaluate cycle 0 of ``cfg`` (no selection) in
    ``work_dir``."""
    cfg = copy.deepcopy(cfg)
    cfg.al_cfg.num_cycles = 1
    return run_quietly(cfg, work_dir)


def select_cycle0(cfg: Config,
                  work_dir: str,
                  seed: Optional[int] = None) -> dict:
    """Cycle 0's selection by ``cfg``'s selector on the trained cycle-0
    model of ``work_dir`` (a :func:`copy_run` with ``rewind`` and, for
    another selector, ``forget_experiment``), as the driver makes it;
    returns ``selection.json``."""
    from mmal.engine import ActiveLearningRunner
    from mmal.utils.checkpoint import trusted_checkpoint_loading
    cfg = copy.deepcopy(cfg)
    cfg.al_cfg.num_cycles = max(2, cfg.al_cfg.get('num_cycles', 2))
    if seed is not None:
        cfg.al_cfg.seed = seed
    runner = ActiveLearningRunner(cfg, work_dir)
    with trusted_checkpoint_loading():
        state = runner.load_or_init_state()
        runner.select(state, 0)
    with open(osp.join(work_dir, 'cycle_0', 'selection.json')) as f:
        return json.load(f)


def cycle0_context(cfg: Config, work_dir: str, subset: Optional[int] = None):
    """Cycle 0's selection context rebuilt on the trained cycle-0 model of
    the run in ``work_dir``: the pool as it was before the selection, the
    seed and the adapter as the driver prepares them for cycle 0.

    Returns:
        SelectionContext: With ``model`` (eval mode) and ``adapter``.
    """
    from mmal.engine import ActiveLearningRunner
    from mmal.selectors import SelectionContext
    from mmal.structures import ALState, PoolState
    from mmal.utils.checkpoint import trusted_checkpoint_loading
    runner = ActiveLearningRunner(cfg, work_dir)
    state = ALState.load(osp.join(work_dir, 'al_state.json'))
    with trusted_checkpoint_loading():
        model = runner.load_model(runner.checkpoint_path(state, 0))
    seed = runner.al['seed'] * 1000  # cycle 0, as the driver seeds it
    runner.adapter.prepare(model, seed=seed)
    pool = PoolState(runner.pool_view.sample_ids,
                     {k: 0
                      for k in state.pool.ids_labeled_in(0)})
    return SelectionContext(
        runner.cfg,
        pool,
        0,
        seed=seed,
        work_dir=work_dir,
        model=model,
        adapter=runner.adapter,
        task=runner.task,
        num_workers=0,
        logger='silent',
        unlabeled_subset=subset)


@pytest.fixture(scope='session')
def fcos_cycle0(tmp_path_factory) -> str:
    """The tiny ISAL FCOS demo with cycle 0 trained and evaluated (the
    model of every FCOS demo config but learning loss's: they differ from
    ISAL's only in the selector, see test_configs)."""
    return shared_once(tmp_path_factory, 'fcos_cycle0',
                       lambda d: train_cycle0(tiny_config(), d))


@pytest.fixture(scope='session')
def cls_cycle0(tmp_path_factory) -> str:
    """The tiny ISAL classification demo with cycle 0 trained and
    evaluated."""
    return shared_once(tmp_path_factory, 'cls_cycle0',
                       lambda d: train_cycle0(tiny_cls_config(), d))


@pytest.fixture(scope='session')
def ll_fcos_cycle0(tmp_path_factory) -> str:
    """The tiny learning-loss FCOS demo (the wrapped model) with cycle 0
    trained and evaluated."""
    return shared_once(
        tmp_path_factory, 'll_fcos_cycle0',
        lambda d: train_cycle0(tiny_config('learning-loss_fcos_shapes.py'), d))


@pytest.fixture(scope='session')
def frcnn_run(tmp_path_factory) -> str:
    """Two cycles of the tiny ISAL Faster R-CNN demo (the model of the
    Faster R-CNN demo configs but learning loss's)."""
    return shared_once(
        tmp_path_factory, 'frcnn_run',
        lambda d: run_quietly(tiny_config('isal_faster-rcnn_shapes.py'), d))
