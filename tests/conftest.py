"""Shared fixtures: tiny configs and data made by the tests themselves."""
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def tiny_overrides(max_epochs: int = 2) -> dict:
    """Overrides that shrink the shapes demo to a few seconds per cycle."""
    loader = dict(batch_size=4, num_workers=0)
    return {
        'demo_data': dict(num_train=24, num_val=8, img_size=64,
                          max_objects=3, seed=0),
        'train_dataloader': loader,
        'val_dataloader': loader,
        'test_dataloader': loader,
        'train_cfg.max_epochs': max_epochs,
        'train_cfg.val_interval': max_epochs,
        'param_scheduler': [
            dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
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
