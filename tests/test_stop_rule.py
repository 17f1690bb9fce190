"""``al_cfg.target_metric``: stop once the evaluated metric reaches a
target."""
import os.path as osp

import pytest

from mmal.engine import ActiveLearningRunner, resolve_al_cfg
from conftest import record_training, tiny_config


def _runner(tmp_path, **al):
    """The random demo, one epoch a cycle (any mAP meets a target of 0)."""
    cfg = tiny_config(
        'random_fcos_shapes.py', **{
            'train_cfg.max_epochs': 1,
            'train_cfg.val_interval': 1,
            **{
                f'al_cfg.{k}': v
                for k, v in al.items()
            }
        })
    return ActiveLearningRunner(cfg, str(tmp_path))


@pytest.mark.parametrize('mAP, reached', [(0.220, True), (0.217, True),
                                          (0.2169, False), (0.5, True),
                                          (0.0, False)])
def test_target_with_tolerance(tmp_path, mAP, reached):
    """The paper's 22 +- 0.3 AP: 0.217 counts, 0.2169 does not."""
    runner = _runner(tmp_path, target_metric=0.22, target_tolerance=0.003)
    assert runner.target_reached(dict(metric=mAP)) is reached
    assert not runner.target_reached(dict())  # not evaluated yet


def test_no_target_never_stops_early(tmp_path):
    runner = _runner(tmp_path)
    assert not runner.target_reached(dict(metric=1.0))


@pytest.mark.parametrize('key, value', [('target_metric', '22'),
                                        ('target_tolerance', -0.1),
                                        ('target_tolerance', None)])
def test_bad_target_values_are_refused(key, value):
    cfg = tiny_config('random_fcos_shapes.py', **{f'al_cfg.{key}': value})
    with pytest.raises(ValueError, match=f'al_cfg.{key}'):
        resolve_al_cfg(cfg)


def test_run_stops_at_the_target_and_continues_when_it_is_raised(
        tmp_path, monkeypatch):
    # any mAP meets a target of 0: the run stops at cycle 0
    state = _runner(tmp_path, target_metric=0.0, num_cycles=3).run()
    assert [r['cycle'] for r in state.cycles] == [0]
    assert 'select' not in state.record(0)['done']
    assert state.pool.num_labeled == 8
    with open(osp.join(str(tmp_path), 'al.log')) as f:
        assert 'reached the target' in f.read()

    trained = record_training(monkeypatch)
    # rerun, same target: nothing to do
    state = _runner(tmp_path, target_metric=0.0, num_cycles=3).run()
    assert trained == [] and len(state.cycles) == 1
    # a target out of reach: the run goes on from cycle 0's selection
    state = _runner(tmp_path, target_metric=1.0, num_cycles=2).run()
    assert trained == ['cycle_1']
    assert [r['cycle'] for r in state.cycles] == [0, 1]
    assert state.pool.num_labeled == 12
    with open(osp.join(str(tmp_path), 'al.log')) as f:
        assert 'was not reached in 2 cycles' in f.read()
