"""Configs that name only the selector run on the detectors people train
today, and so does every selector: two AL cycles of ISAL through the driver
(the adapter chosen from the model's type, θ by rule, LiSSA's scales from
the scale check; made once per session), then entropy, core-set and
localization stability each select on the same trained cycle-0 model, and
learning loss (its default feature_modules) trains one iteration and
selects; a family mmal cannot handle is refused before any training."""
import copy
import json
import math
import os.path as osp

import pytest
import torch

from mmal.engine import ActiveLearningRunner
from mmal.structures import ALState
from mmal.utils import ConfigError
from conftest import (REPO, copy_run, run_quietly, select_cycle0, shared_once,
                      tiny_cls_config, tiny_config, train_cycle0,
                      with_class_quality)

#: family -> its config
RUNS = {
    'retinanet': 'isal_retinanet_shapes.py',
    'atss': 'isal_atss_shapes.py',
    'gfl': 'isal_gfl_shapes.py',
    'rtmdet': 'isal_rtmdet_shapes.py',
    'yolox': 'isal_yolox_shapes.py',
    'cascade-rcnn': 'isal_cascade-rcnn_shapes.py',
}
#: the adapter each family gets from its model type
ADAPTERS = {
    'cascade-rcnn': 'TwoStageAdapter',
}
#: the baselines that read the trained model's predictions or embedding,
#: selected on each family's cycle-0 model: their arguments and whether
#: they score every unlabeled image (core-set scores its picks). Every box
#: is a reference box of localization stability (the barely trained
#: models' scores are low: YOLOX's ~1e-4)
BASELINES = {
    'EntropySelector': ({}, True),
    'CoresetSelector': ({}, False),
    'LocalizationStabilitySelector': (dict(score_thr=1e-5), True),
}
#: (family, baseline) whose scores are all the same on the barely trained
#: model: GFL's boxes are the whole 64x64 image (its box distribution
#: starts uniform, 8 strides from each point; clipped), found again at
#: every noise level, so every image's stability is 1
SAME_SCORES = {('gfl', 'LocalizationStabilitySelector')}


def _score_thr(family):
    return ('model.test_cfg.rcnn.score_thr'
            if family == 'cascade-rcnn' else 'model.test_cfg.score_thr')


def _isal_config(family):
    return tiny_config(
        RUNS[family],
        **{
            # one epoch: the run, not the model, is checked
            'train_cfg.max_epochs': 1,
            'train_cfg.val_interval': 1,
            # every box a pseudo box: the barely trained model's scores
            # are low, and ISAL must score images, not only order them
            _score_thr(family): 0.0,
            'al_cfg.selector.score_thr': 0.0,
        })


@pytest.fixture(scope='session', params=sorted(RUNS))
def family_run(request, tmp_path_factory):
    """``(family, config, work dir)``: two cycles of ISAL on the family,
    made once per session (read it, or copy it with ``copy_run``)."""
    family = request.param
    cfg = _isal_config(family)
    work_dir = shared_once(tmp_path_factory, f'isal_{family}_run',
                           lambda d: run_quietly(cfg, d))
    return family, cfg, work_dir


def _check_selection(sel, state, every_image=True, distinct=True):
    """The driver's cycle-0 selection ``sel`` (``selection.json``): the
    budget's count of distinct unlabeled pool ids; finite scores of every
    unlabeled image (``every_image``; else of the picks) that are not all
    the same (``distinct``)."""
    selected = sel['selected']
    assert len(selected) == 4 and len(set(selected)) == 4
    unlabeled = set(state.pool.pool_ids) - set(state.pool.ids_labeled_in(0))
    assert set(selected) <= unlabeled
    scores = sel['scores']
    assert set(scores) == (unlabeled if every_image else set(selected))
    assert all(math.isfinite(v) for v in scores.values())
    if distinct:
        assert max(scores.values()) > min(scores.values())


def test_two_cycles_of_isal(family_run):
    family, cfg, work_dir = family_run
    assert cfg.al_cfg.get('adapter') is None  # as a user's config
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


@pytest.mark.parametrize('baseline', sorted(BASELINES))
def test_a_baseline_selects_on_the_trained_model(family_run, baseline,
                                                 tmp_path):
    """Entropy, core-set and localization stability on the family's
    trained cycle-0 model (the ISAL run's), each through the driver."""
    family, cfg, work_dir = family_run
    kwargs, every_image = BASELINES[baseline]
    other = copy.deepcopy(cfg)
    other.al_cfg.selector = dict(type=f'mmal.{baseline}', **kwargs)
    rewound = copy_run(
        work_dir, str(tmp_path / 'run'), forget_experiment=True, rewind=True)
    sel = select_cycle0(other, rewound)
    assert sel['selector'] == baseline
    state = ALState.load(osp.join(work_dir, 'al_state.json'))
    _check_selection(
        sel,
        state,
        every_image,
        distinct=(family, baseline) not in SAME_SCORES)
    if baseline == 'LocalizationStabilitySelector':
        assert all(0 <= v <= 1 for v in sel['scores'].values())
        assert sel['info']['mean_reference_boxes'] >= 1


#: the families whose heads mmal.ClassQualityHook supports
PPAL_FAMILIES = ('retinanet', 'atss')


def test_ppal_selects_on_the_trained_model(family_run, tmp_path):
    """PPAL on the family's trained cycle-0 model (qualities written into
    its checkpoint: the ISAL run trained without the hook): DCUS over every
    unlabeled image, CCMS k-medoids among the candidates; a head the
    quality hook does not support is refused before any training."""
    family, cfg, work_dir = family_run
    other = copy.deepcopy(cfg)
    other.al_cfg.selector = dict(type='mmal.PPALSelector', score_thr=0.0)
    other.custom_hooks = [dict(type='mmal.ClassQualityHook')]
    if family not in PPAL_FAMILIES:
        other.work_dir = str(tmp_path / 'refused')
        with pytest.raises(ConfigError, match='ClassQualityHook'):
            ActiveLearningRunner(other).run()
        assert not osp.exists(
            osp.join(other.work_dir, 'cycle_0', 'epoch_1.pth'))
        return
    rewound = with_class_quality(
        copy_run(
            work_dir,
            str(tmp_path / 'run'),
            forget_experiment=True,
            rewind=True))
    sel = select_cycle0(other, rewound)
    assert sel['selector'] == 'PPALSelector'
    state = ALState.load(osp.join(work_dir, 'al_state.json'))
    _check_selection(sel, state, every_image=False, distinct=False)
    info = sel['info']
    assert info['num_candidates'] == 16 > len(sel['selected'])
    assert info['objects_per_candidate'] > 1
    assert info['quality'] == pytest.approx([0.1, 0.5, 0.9])


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
        # the standard RTMDet-tiny and YOLOX-tiny (a model type: the
        # benchmark's standard-size model): PAFPN necks, whose attributes
        # do not say how many maps they output (probed); YOLOX's Focus
        # stem's first conv reads 12 channels
        ('RTMDet', ['neck'], [96, 96, 96]),
        ('YOLOX', ['neck'], [96, 96, 96]),
        ('isal_vit-tiny_shapes-cls.py', ['backbone'], None),  # no neck
        ('isal_mobilenet-v3-small_shapes-cls.py', ['neck'], None),
    ])
def test_learning_loss_defaults_its_features_per_family(
        config, feature_modules, channels):
    """Without feature_modules: the neck's outputs (an FPN's or a PAFPN's
    levels, a classifier's pooled vector); channels from the module's
    attributes or from one pass of a blank image."""
    from mmengine.registry import DefaultScope

    from mmal.registry import MODELS
    from scenarios.influence_speed import standard_model
    if not config.endswith('.py'):
        model_cfg, _ = standard_model(
            osp.join(REPO, 'configs'), config, config)
        scope = 'mmdet'
    else:
        cfg = tiny_config(config) if 'cls' not in config else \
            tiny_cls_config(config)
        model_cfg, scope = cfg.model, cfg.default_scope
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(
            dict(type='mmal.LearningLossModel', model=model_cfg))
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


@pytest.mark.parametrize('family', sorted(RUNS))
def test_learning_loss_trains_and_selects_with_its_defaults(family, tmp_path):
    """The family's model wrapped in mmal.LearningLossModel without
    feature_modules (the neck's levels): one training iteration of cycle 0
    (4 labeled images, no evaluation), then the driver's selection."""
    cfg = tiny_config(
        RUNS[family],
        **{
            'al_cfg.initial_size': 4,  # one batch: one iteration
            'train_cfg.max_epochs': 1,
            'train_cfg.val_interval': 2,  # no validation
            'test_dataloader': None,  # no evaluation
            'test_evaluator': None,
            'test_cfg': None,
        })
    cfg.model = dict(type='mmal.LearningLossModel', model=cfg.model)
    cfg.al_cfg.selector = dict(type='mmal.LearningLossSelector')
    work_dir = train_cycle0(cfg, str(tmp_path))
    state = ALState.load(osp.join(work_dir, 'al_state.json'))
    ckpt = state.record(0)['checkpoint']
    weights = torch.load(
        osp.join(work_dir, ckpt), map_location='cpu', weights_only=False)
    assert weights['meta']['iter'] == 1
    # the module reads the neck's 3 levels
    levels = {
        k.split('.')[2]
        for k in weights['state_dict']
        if k.startswith('loss_predictor.levels.')
    }
    assert levels == {'0', '1', '2'}
    sel = select_cycle0(cfg, work_dir)
    assert sel['selector'] == 'LearningLossSelector'
    _check_selection(sel, state)
