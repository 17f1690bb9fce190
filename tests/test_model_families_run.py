"""Configs that name only the selector run on the detectors people train
today: two AL cycles of ISAL through the driver (the adapter chosen from
the model's type, θ by rule, LiSSA's scales from the scale check), then a
baseline's selection on the same trained cycle-0 model; a family mmal
cannot handle is refused before any training."""
import copy
import json
import os.path as osp

import pytest

from mmal.engine import ActiveLearningRunner
from mmal.structures import ALState
from mmal.utils import ConfigError
from conftest import (copy_run, run_quietly, select_cycle0, tiny_cls_config,
                      tiny_config)

#: family -> (config, baseline selected on its trained cycle-0 model)
RUNS = {
    'retinanet': ('isal_retinanet_shapes.py', 'mmal.EntropySelector'),
    'atss': ('isal_atss_shapes.py', 'mmal.LocalizationStabilitySelector'),
    'gfl': ('isal_gfl_shapes.py', 'mmal.CoresetSelector'),
    'rtmdet': ('isal_rtmdet_shapes.py', 'mmal.CoresetSelector'),
    'yolox': ('isal_yolox_shapes.py', 'mmal.EntropySelector'),
    'cascade-rcnn': ('isal_cascade-rcnn_shapes.py', 'mmal.EntropySelector'),
}
#: the adapter each family gets from its model type
ADAPTERS = {
    'cascade-rcnn': 'TwoStageAdapter',
}


@pytest.mark.parametrize('family', sorted(RUNS))
def test_two_cycles_of_isal_then_a_baseline(family, tmp_path):
    config, baseline = RUNS[family]
    thr = ('model.test_cfg.rcnn.score_thr'
           if family == 'cascade-rcnn' else 'model.test_cfg.score_thr')
    cfg = tiny_config(
        config,
        **{
            # one epoch: the run, not the model, is checked
            'train_cfg.max_epochs': 1,
            'train_cfg.val_interval': 1,
            # every box a pseudo box: the barely trained model's scores
            # are low, and ISAL must score images, not only order them
            thr: 0.0,
            'al_cfg.selector.score_thr': 0.0,
        })
    assert cfg.al_cfg.get('adapter') is None  # as a user's config
    work_dir = run_quietly(cfg, str(tmp_path / 'isal'))
    state = ALState.load(osp.join(work_dir, 'al_state.json'))
    assert [c['done']
            for c in state.cycles] == [['train', 'evaluate', 'select'],
                                       ['train', 'evaluate']]
    assert state.pool.num_labeled == 8 + 4
    with open(osp.join(work_dir, 'cycle_0', 'selection.json')) as f:
        scores = json.load(f)['scores']
    assert len(scores) == 16 and all(v is not None for v in scores.values())
    with open(osp.join(work_dir, 'al.log')) as f:
        log = f.read()
    adapter = ADAPTERS.get(family, 'SingleStageAdapter')
    assert f'al_cfg.adapter not set: mmal.{adapter}' in log
    other = copy.deepcopy(cfg)
    other.al_cfg.selector = dict(type=baseline)
    rewound = copy_run(
        work_dir,
        str(tmp_path / 'baseline'),
        forget_experiment=True,
        rewind=True)
    selected = select_cycle0(other, rewound)['selected']
    assert len(selected) == 4 and len(set(selected)) == 4
    assert set(selected) <= set(state.pool.pool_ids) - set(
        state.pool.ids_labeled_in(0))


@pytest.mark.parametrize('model_type', ['DETR', 'DINO'])
def test_a_detr_family_model_is_refused_before_training(model_type, tmp_path):
    cfg = tiny_config('isal_retinanet_shapes.py', **{'model.type': model_type})
    with pytest.raises(ConfigError, match=f'no adapter for {model_type}') \
            as err:
        ActiveLearningRunner(cfg, str(tmp_path))
    assert 'single-stage detectors' in str(err.value)
    assert not osp.exists(osp.join(str(tmp_path), 'cycle_0'))


@pytest.mark.parametrize(
    'config, feature_modules, channels',
    [
        ('isal_retinanet_shapes.py', ['neck'], [32, 32, 32]),
        ('isal_vit-tiny_shapes-cls.py', ['backbone'], None),  # no neck
        ('isal_mobilenet-v3-small_shapes-cls.py', ['neck'], None),
    ])
def test_learning_loss_defaults_its_features_per_family(
        config, feature_modules, channels):
    """Without feature_modules: the neck's outputs (an FPN's levels, a
    classifier's pooled vector); channels from the module's attributes or
    from one pass of a blank image."""
    import torch
    from mmengine.registry import DefaultScope

    from mmal.registry import MODELS
    cfg = tiny_config(config) if 'cls' not in config else \
        tiny_cls_config(config)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(
            dict(type='mmal.LearningLossModel', model=cfg.model))
    assert model.feature_modules == feature_modules
    found = model.loss_predictor.in_channels
    if channels is not None:
        assert found == channels
    else:  # one vector per image (a pooled map, ViT's class token)
        assert len(found) == 1 and found[0] > 0
    size = 64 if 'cls' not in config else 32
    with torch.no_grad():
        losses = model.predict_loss(torch.zeros(2, 3, size, size))
    assert losses.shape == (2, )


def test_learning_loss_runs_on_retinanet_with_its_defaults(tmp_path):
    cfg = tiny_config(
        'isal_retinanet_shapes.py', **{
            'train_cfg.max_epochs': 1,
            'train_cfg.val_interval': 1
        })
    cfg.model = dict(type='mmal.LearningLossModel', model=cfg.model)
    cfg.al_cfg.selector = dict(type='mmal.LearningLossSelector')
    work_dir = run_quietly(cfg, str(tmp_path))
    state = ALState.load(osp.join(work_dir, 'al_state.json'))
    assert state.record(0)['num_selected'] == 4
    assert state.pool.num_labeled == 12
