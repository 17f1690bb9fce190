"""The configs: composition from the 4-part bases, agreement with mmdet's
configs, ISAL/random pairs, shared data between detectors, paper settings.

Fast: configs are only loaded; the R-50 models are built without weights.
"""
import copy
import functools
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.hub import get_config
from mmengine.registry import DefaultScope

from mmal.engine import resolve_al_cfg
from mmal.engine.al_config import num_images
from mmal.models.auto_adapter import adapter_for
from mmal.registry import AL_ADAPTERS, MODELS, SELECTORS, TASKS
from mmal.selectors import InfluenceSelector, SelectionContext
from mmal.structures import PoolState
from conftest import REPO

CONFIGS = osp.join(REPO, 'configs')
TOP_LEVEL = sorted(
    osp.basename(p) for p in glob.glob(osp.join(CONFIGS, '*.py')))
# The keys on which a composed base must agree with mmdet's full config.
MMDET_KEYS = ('model', 'optim_wrapper', 'param_scheduler', 'train_cfg',
              'train_dataloader', 'val_dataloader', 'test_dataloader',
              'val_evaluator', 'test_evaluator', 'auto_scale_lr')


@functools.lru_cache(maxsize=None)
def _load_cached(name: str) -> Config:
    # Each `mmdet::` base costs ~0.5 s (mmengine parses mmdet's metafiles).
    return Config.fromfile(osp.join(CONFIGS, name))


def _load(name: str) -> Config:
    return copy.deepcopy(_load_cached(name))


def _plain(node):
    """A config value as plain data, without mmengine's ``_scope_`` marks
    (set on dicts inherited through ``mmdet::`` bases; the default scope is
    mmdet either way)."""
    if hasattr(node, 'to_dict'):
        node = node.to_dict()
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items() if k != '_scope_'}
    if isinstance(node, (list, tuple)):
        return type(node)(_plain(v) for v in node)
    return node


def _mmdet(rel_path: str) -> dict:
    return _plain(get_config(f'mmdet::{rel_path}'))


def test_fcos_coco_equals_mmdet_fcos_1x():
    ours = _plain(_load('_base_/fcos_coco.py'))
    ref = _mmdet('fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py')
    for key in MMDET_KEYS:
        assert ours[key] == ref[key], key


def test_faster_rcnn_coco_is_mmdet_1x_with_the_papers_batch_8_lr():
    ours = _plain(_load('_base_/faster-rcnn_coco.py'))
    ref = _mmdet('faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py')
    assert ours['optim_wrapper']['optimizer']['lr'] == 0.01
    assert ours['auto_scale_lr'] == dict(enable=False, base_batch_size=8)
    assert ref['optim_wrapper']['optimizer']['lr'] == 0.02
    ref['optim_wrapper']['optimizer']['lr'] = 0.01
    ref['auto_scale_lr']['base_batch_size'] = 8
    for key in MMDET_KEYS:
        assert ours[key] == ref[key], key


@pytest.mark.parametrize(
    'part', sorted(glob.glob(osp.join(CONFIGS, '_base_', 'models', '*.py'))))
def test_model_bases_hold_only_the_model(part):
    assert set(Config.fromfile(part).keys()) == {'model'}


#: Top-level config prefix -> selector type; every model and dataset has
#: one config per selector (localization stability: detection only).
SELECTOR_OF = {
    'isal': 'mmal.InfluenceSelector',
    'random': 'mmal.RandomSelector',
    'entropy': 'mmal.EntropySelector',
    'coreset': 'mmal.CoresetSelector',
    'learning-loss': 'mmal.LearningLossSelector',
    'stability': 'mmal.LocalizationStabilitySelector',
    'ppal': 'mmal.PPALSelector',
}
DETECTION_ONLY = ('stability', )
#: Selectors for dense (single-stage) detectors only: the FCOS settings.
DENSE_ONLY = ('ppal', )
#: PPAL's own settings (RetinaNet, the official code's): PPAL only.
PPAL_OWN = ('retinanet_voc.py', 'retinanet_coco.py')
#: Selectors whose configs differ from ISAL's only in ``al_cfg.selector``.
SAME_MODEL = ('random', 'entropy', 'coreset', 'stability')

#: Settings shown as a config of the user's own: ISAL only, al_cfg without
#: an adapter (chosen from the model's type), θ or scale.
USER_STYLE = ('retinanet_shapes.py', 'atss_shapes.py', 'gfl_shapes.py',
              'rtmdet_shapes.py', 'yolox_shapes.py', 'cascade-rcnn_shapes.py',
              'mobilenet-v3-small_shapes-cls.py', 'vit-tiny_shapes-cls.py',
              'convnext-tiny_shapes-cls.py')
#: The paper's settings: one config per selector.
PAPER_TOP_LEVEL = [
    n for n in TOP_LEVEL if n.split('_', 1)[1] not in USER_STYLE + PPAL_OWN
]


def _is_detection(setting: str) -> bool:
    return setting.startswith(('fcos', 'faster-rcnn'))


def test_every_setting_has_a_config_per_selector():
    assert len(PAPER_TOP_LEVEL) >= 6 * 12 - 4
    assert all(f'isal_{s}' in TOP_LEVEL for s in USER_STYLE)
    for name in PAPER_TOP_LEVEL:
        kind, setting = name.split('_', 1)
        assert kind in SELECTOR_OF, name
        for other in SELECTOR_OF:
            if other in DENSE_ONLY and not setting.startswith('fcos'):
                assert f'{other}_{setting}' not in TOP_LEVEL
                continue
            if other in DETECTION_ONLY and not _is_detection(setting):
                assert f'{other}_{setting}' not in TOP_LEVEL
                continue
            assert f'{other}_{setting}' in TOP_LEVEL, \
                f'{name} has no {other}_{setting}'


@pytest.mark.parametrize('name', TOP_LEVEL)
def test_top_level_config_loads_and_resolves(name):
    cfg = _load(name)
    al = resolve_al_cfg(cfg, name)
    if name.split('_', 1)[1] in USER_STYLE + PPAL_OWN:
        assert al['adapter'] is None  # chosen from the model's type
        al['adapter'] = adapter_for(cfg.model, cfg.default_scope)
    assert al['adapter']['type'] in ('mmal.FCOSAdapter',
                                     'mmal.FasterRCNNAdapter',
                                     'mmal.SingleStageAdapter',
                                     'mmal.TwoStageAdapter',
                                     'mmal.ImageClassifierAdapter')
    assert al['selector']['type'] == SELECTOR_OF[name.split('_', 1)[0]]


@pytest.mark.parametrize(
    'name, other',
    [(n[len('isal_'):], other)
     for n in PAPER_TOP_LEVEL if n.startswith('isal_') for other in SAME_MODEL
     if other not in DETECTION_ONLY or _is_detection(n[len('isal_'):])])
def test_selector_configs_differ_from_isal_only_in_the_selector(name, other):
    isal = _load('isal_' + name).to_dict()
    alt = _load(f'{other}_{name}').to_dict()
    assert isal['al_cfg'].pop('selector') != alt['al_cfg'].pop('selector')
    assert isal == alt


@pytest.mark.parametrize('name', [
    n[len('ppal_'):] for n in TOP_LEVEL
    if n.startswith('ppal_') and n[len('ppal_'):] not in PPAL_OWN
])
def test_ppal_configs_add_the_quality_hook_to_the_isal_setting(name):
    isal = _load('isal_' + name).to_dict()
    ppal = _load('ppal_' + name).to_dict()
    assert ppal.pop('custom_hooks') == [dict(type='mmal.ClassQualityHook')]
    assert 'custom_hooks' not in isal
    assert ppal['al_cfg'].pop('selector')['type'] == 'mmal.PPALSelector'
    isal['al_cfg'].pop('selector')
    assert isal == ppal


@pytest.mark.parametrize('name', PPAL_OWN)
def test_ppal_official_settings(name):
    """RetinaNet R-50 as the official code trains it, the official sizes
    and inference settings."""
    cfg = _load('ppal_' + name)
    voc = name.startswith('retinanet_voc')
    assert cfg.model.backbone.depth == 50
    assert cfg.train_cfg.max_epochs == 26
    assert cfg.param_scheduler[1].milestones == [20]
    assert cfg.optim_wrapper.optimizer.lr == (0.002 if voc else 0.01)
    assert cfg.model.bbox_head.loss_cls.gamma == (1.5 if voc else 2.0)
    al = cfg.al_cfg
    assert (al.initial_size, al.budget,
            al.num_cycles) == ((827, 414, 7) if voc else (2365, 2365, 5))
    assert cfg.custom_hooks == [dict(type='mmal.ClassQualityHook')]
    nms = (0.5, 0.4) if voc else (0.6, 0.5)
    selector = SELECTORS.build(al.selector)
    assert (selector.uncertainty_cfg['nms']['iou_threshold'],
            selector.diversity_cfg['nms']['iou_threshold']) == nms
    assert selector.candidate_multiple == 8


@pytest.mark.parametrize(
    'name',
    [n[len('isal_'):] for n in PAPER_TOP_LEVEL if n.startswith('isal_')])
def test_learning_loss_configs_wrap_the_isal_model_and_add_the_hook(name):
    """Learning loss differs from ISAL in ``model`` (the same target model,
    wrapped), ``custom_hooks`` (the stop-gradient), the selector and, on
    CIFAR, the paper's random subset of 10,000 unlabeled images."""
    isal = _load('isal_' + name).to_dict()
    ll = _load('learning-loss_' + name).to_dict()  # name ends with .py
    wrapped = ll.pop('model')
    assert wrapped.pop('type') == 'mmal.LearningLossModel'
    assert wrapped.pop('model') == isal.pop('model')
    hooks = ll.pop('custom_hooks')
    assert [h['type'] for h in hooks] == ['mmal.LearningLossStopGradHook']
    assert 'custom_hooks' not in isal
    features = wrapped.pop('feature_modules')
    assert wrapped == {}  # the paper's module: every other default
    epochs = ll['train_cfg']['max_epochs']
    if _is_detection(name):
        assert features == ['neck'] and hooks[0]['detach_epoch'] == 0
    else:  # from epoch 120 of 200 (30 of the demo's 50)
        assert features == [f'backbone.layer{i}' for i in range(1, 5)]
        assert hooks[0]['detach_epoch'] * 200 == 120 * epochs
    subset = ll['al_cfg'].pop('unlabeled_subset', None)
    assert subset == (10000 if name.startswith('resnet18_cifar') else None)
    assert ll['al_cfg'].pop('selector') == dict(
        type='mmal.LearningLossSelector')
    isal['al_cfg'].pop('selector')
    assert isal == ll


@pytest.mark.parametrize('name, levels', [('fcos_voc', 5), ('fcos_shapes', 3),
                                          ('faster-rcnn_coco', 5),
                                          ('resnet18_cifar10', 4)])
def test_learning_loss_modules_read_every_level(name, levels):
    """The module has one FC per FPN level (5 for FCOS R-50, 3 for the
    demo) or per ResNet stage, with the channels of the model."""
    cfg = _load(f'learning-loss_{name}.py')
    scope = 'mmpretrain' if name.startswith('resnet') else 'mmdet'
    model_cfg = cfg.model.to_dict()
    model_cfg['model'].get('backbone', {}).pop('init_cfg', None)
    if 'data_preprocessor' in cfg:
        model_cfg['data_preprocessor'] = cfg.data_preprocessor.to_dict()
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(ConfigDict(model_cfg))
    channels = model.loss_predictor.in_channels
    assert len(channels) == levels
    if scope == 'mmpretrain':
        assert channels == [64, 128, 256, 512]
    else:
        assert set(channels) == {cfg.model.model.neck.out_channels}


def test_large_scale_coco_is_the_papers_table_6():
    """10 % of the pool at random, +10 % per step, 10 trainings: the whole
    pool by the last one, with FCOS as on COCO."""
    large = _load('isal_fcos_coco-large.py').to_dict()
    coco = _load('isal_fcos_coco.py').to_dict()
    al = resolve_al_cfg(Config(large))
    assert (al['initial_size'], al['budget'], al['num_cycles']) == (0.1, 0.1,
                                                                    10)
    for key in ('initial_size', 'budget', 'num_cycles'):
        large['al_cfg'].pop(key)
        coco['al_cfg'].pop(key)
    assert large == coco
    pool = 117266  # train2017 images with a box
    step = num_images(al['budget'], pool)
    assert step == num_images(al['initial_size'], pool) == 11727
    assert 9 * step < pool <= 10 * step


# al_cfg keys that may differ between the FCOS and the Faster R-CNN config
# of one dataset: the adapter; on COCO the paper's stop rule (target AP,
# with num_cycles as a cap).
DETECTOR_AL_KEYS = {
    'coco': {'adapter', 'num_cycles', 'target_metric', 'target_tolerance'},
    'voc': {'adapter'},
    'shapes': {'adapter'},
}


@pytest.mark.parametrize('name',
                         [n for n in TOP_LEVEL if n.startswith('isal_')])
def test_no_config_tunes_lissa_scales_by_hand(name):
    """Every ISAL config takes the adapter's scales, raised per block by
    the scale check where the measured curvature needs it (mode 'auto')."""
    selector = resolve_al_cfg(_load(name))['selector']
    assert 'scale' not in selector.get('solver', {})
    assert 'scale_check' not in selector
    built = InfluenceSelector(**{
        k: v
        for k, v in selector.items() if k != 'type'
    })
    assert built.scale_check.mode == 'auto'
    assert built.scale_check.margin == 1.5


@pytest.mark.parametrize('dataset', sorted(DETECTOR_AL_KEYS))
def test_fcos_and_faster_rcnn_share_the_data_settings(dataset):
    fcos = _load(f'isal_fcos_{dataset}.py')
    frcnn = _load(f'isal_faster-rcnn_{dataset}.py')
    data_keys = set(_load(f'_base_/datasets/al_{dataset}.py').keys())
    assert {
        'train_dataloader', 'val_dataloader', 'test_dataloader',
        'val_evaluator', 'test_evaluator', 'al_cfg'
    } <= data_keys
    for key in data_keys - {'al_cfg'}:
        assert _plain(fcos[key]) == _plain(frcnn[key]), key
    a, b = resolve_al_cfg(fcos), resolve_al_cfg(frcnn)
    differ = {k for k in a if a[k] != b[k]}
    assert differ == DETECTOR_AL_KEYS[dataset]


def _paper_selector(cfg, epochs=12, depth=500):
    """Model (no weights), adapter, parameter shapes and LiSSA solver."""
    al = resolve_al_cfg(cfg)
    assert al['selector']['type'] == 'mmal.InfluenceSelector'
    assert cfg.train_cfg.max_epochs == epochs and al['train_from_scratch']
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(copy.deepcopy(cfg.model))
    adapter = AL_ADAPTERS.build(al['adapter'])
    adapter.prepare(model)
    shapes = [tuple(p.shape) for _, p in adapter.parameters(model)]
    selector = InfluenceSelector(**{
        k: v
        for k, v in al['selector'].items() if k != 'type'
    })
    solver = selector.build_solver(
        SelectionContext(cfg, PoolState(['a']), 0, 0, '',
                         TASKS.build(dict(type=adapter.task_type)), model,
                         adapter))
    assert (solver.damp, solver.depth, solver.repeats) == (0.01, depth, 4)
    assert selector.score_thr == 0.1 and selector.reference == 'val'
    return al, shapes, solver


@pytest.mark.parametrize('name', ['isal_fcos_voc.py', 'isal_fcos_coco.py'])
def test_paper_configs_select_the_r50_head_with_official_scales(name):
    cfg = _load(name)
    al, shapes, solver = _paper_selector(cfg)
    classes = cfg.model.bbox_head.num_classes
    assert shapes == [(classes, 256, 3, 3), (4, 256, 3, 3), (1, 256, 3, 3)]
    assert solver.scale == [100.0, 8000.0, 5000.0]


@pytest.mark.parametrize('name, classes, initial', [
    ('isal_resnet18_cifar10.py', 10, 1000),
    ('isal_resnet18_cifar100.py', 100, 1000),
    ('isal_resnet18_cifar10-large.py', 10, 5000),
])
def test_cifar_configs_have_the_official_settings(name, classes, initial):
    """The official ISAL code's CIFAR protocol (DESIGN §6), not mmpretrain's
    CIFAR schedule."""
    cfg = _load(name)
    al, shapes, solver = _paper_selector(cfg, epochs=200, depth=250)
    assert cfg.default_scope == 'mmpretrain'
    assert cfg.model.backbone.type == 'ResNet_CIFAR'
    assert cfg.model.backbone.depth == 18
    assert cfg.model.head.num_classes == classes
    assert cfg.data_preprocessor.num_classes == classes
    # every conv and linear weight, no BN, no bias: 11.2 M entries
    n = sum(int(torch.Size(s).numel()) for s in shapes)
    assert 11.1e6 < n < 11.3e6 and len(shapes) == 21
    assert all(len(s) in (2, 4) for s in shapes)
    assert solver.scale == [10000.0]
    assert (al['initial_size'], al['budget'],
            al['num_cycles']) == (initial, initial, 10)
    assert cfg.optim_wrapper.optimizer == dict(
        type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4)
    assert _plain(cfg.param_scheduler) == dict(
        type='MultiStepLR', by_epoch=True, milestones=[160], gamma=0.1)
    loader = cfg.train_dataloader
    assert (loader.batch_size, loader.drop_last) == (128, True)
    assert _plain(loader.dataset.pipeline) == [
        dict(type='RandomCrop', crop_size=32, padding=4),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='PackInputs')
    ]
    dataset = 'mmal.CIFAR100' if classes == 100 else 'mmal.CIFAR10'
    assert loader.dataset.type == dataset and loader.dataset.split == 'train'
    # the reference set is the test split, as in the official code
    assert cfg.val_dataloader.dataset.split == 'test'
    assert cfg.val_dataloader.dataset.type == dataset
    assert _plain(cfg.test_evaluator) == dict(type='Accuracy', topk=(1, ))


@pytest.mark.parametrize('name, classes, target', [
    ('isal_faster-rcnn_coco.py', 80, (0.22, 0.003)),
    ('isal_faster-rcnn_voc.py', 20, (None, 0.0)),
])
def test_faster_rcnn_paper_configs_select_rpn_and_roi_head_weights(
        name, classes, target):
    cfg = _load(name)
    al, shapes, solver = _paper_selector(cfg)
    assert cfg.model.roi_head.bbox_head.num_classes == classes
    # RPN: 3 anchors per location (one sigmoid score, 4 deltas each);
    # RoI head: C classes + background, class-specific boxes.
    assert shapes == [(3, 256, 1, 1), (12, 256, 1, 1), (classes + 1, 1024),
                      (4 * classes, 1024)]
    assert solver.scale == [1000.0, 1000.0, 5000.0, 1000.0]
    assert (al['target_metric'], al['target_tolerance']) == target
    assert cfg.optim_wrapper.optimizer.lr == 0.01
