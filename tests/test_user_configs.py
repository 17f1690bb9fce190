"""A user's own mmdet or mmpretrain config, as it is, plus an ``al_cfg``.

* configs/upstream/: each family's full upstream config (``_base_ =
  'mmdet::...'``, R-50 or the model's own backbone, its own data pipeline
  and hooks) with an ``al_cfg`` naming the selector and the sizes gets its
  adapter from the model's type and θ by rule.
* Training wrappers that draw samples (YOLOX's ``MultiImageMixDataset`` for
  Mosaic and MixUp, ``RepeatDataset``) keep their place: the pool is the
  dataset they wrap, and each cycle's labeled view is wrapped in them again,
  so a mosaic never mixes an unlabeled image in.
* YOLOX-tiny's full config (mosaic wrapper, EMA, mode switch) runs two ISAL
  cycles through the driver on generated data.
"""
import json
import os
import os.path as osp
import re
import sys

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmal.datasets.pool_data import (pool_dataset_cfg, replace_pool_dataset,
                                     rewrap, split_wrappers)
from mmal.datasets.synthetic import generate_shapes_dataset
from mmal.engine.al_config import resolve_al_cfg
from mmal.models.auto_adapter import adapter_for
from mmal.registry import AL_ADAPTERS, DATASETS, MODELS
from conftest import REPO

UPSTREAM = osp.join(REPO, 'configs', 'upstream')

#: configs/upstream/<name> -> (adapter, θ's parameter names)
EXPECTED = {
    'isal_retinanet_r50_coco.py': ('SingleStageAdapter', [
        'bbox_head.retina_cls.weight', 'bbox_head.retina_reg.weight'
    ]),
    'isal_atss_r50_coco.py': ('SingleStageAdapter', [
        'bbox_head.atss_cls.weight', 'bbox_head.atss_reg.weight',
        'bbox_head.atss_centerness.weight'
    ]),
    'isal_gfl_r50_coco.py': ('SingleStageAdapter', [
        'bbox_head.gfl_cls.weight', 'bbox_head.gfl_reg.weight'
    ]),
    'isal_rtmdet-tiny_coco.py': ('SingleStageAdapter', [
        f'bbox_head.rtm_{b}.{i}.weight' for b in ('cls', 'reg')
        for i in range(3)
    ]),
    'isal_yolox-tiny_coco.py': ('SingleStageAdapter', [
        f'bbox_head.multi_level_conv_{b}.{i}.weight'
        for b in ('cls', 'reg', 'obj') for i in range(3)
    ]),
    'isal_cascade-rcnn_r50_coco.py': (
        'TwoStageAdapter',
        ['rpn_head.rpn_cls.weight', 'rpn_head.rpn_reg.weight'] + [
            f'roi_head.bbox_head.{s}.fc_{b}.weight' for s in range(3)
            for b in ('cls', 'reg')
        ]),
    'isal_resnet18_in1k.py': ('ImageClassifierAdapter', ['head.fc.weight']),
    'isal_mobilenet-v3-small_in1k.py': ('ImageClassifierAdapter',
                                        ['head.layers.1.fc.weight']),
    'isal_convnext-tiny_in1k.py': ('ImageClassifierAdapter',
                                   ['head.fc.weight']),
    'isal_vit-base-p16_in1k.py': ('ImageClassifierAdapter',
                                  ['head.layers.head.weight']),
}


def _user_config(tmp_path, base: str, body: str) -> Config:
    path = tmp_path / 'my_config.py'
    path.write_text(f'_base_ = {base!r}\n' + body)
    return Config.fromfile(str(path))


def test_every_upstream_config_is_checked():
    assert sorted(os.listdir(UPSTREAM)) == sorted(EXPECTED)


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_an_upstream_config_needs_only_the_selector(name):
    """The file is the upstream config and an ``al_cfg`` without adapter,
    θ or scale; the adapter and θ come from the model (random weights,
    nothing downloaded)."""
    path = osp.join(UPSTREAM, name)
    with open(path) as f:
        code = [
            line for line in f.read().splitlines()
            if line and not line.startswith('#')
        ]
    assert re.fullmatch(r"_base_ = 'mm(det|pretrain)::[\w/.-]+\.py'",
                        code[0]), code[0]
    assert code[1].startswith('al_cfg = dict(')
    cfg = Config.fromfile(path)
    al = resolve_al_cfg(cfg, name)
    assert al['adapter'] is None
    assert set(
        cfg.al_cfg) == {'selector', 'initial_size', 'budget', 'num_cycles'}
    adapter_cfg = adapter_for(cfg.model, cfg.default_scope)
    adapter, theta = EXPECTED[name]
    assert adapter_cfg == dict(type=f'mmal.{adapter}')
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)  # random weights: no download
    assert AL_ADAPTERS.build(adapter_cfg).resolve_param_names(
        model.eval()) == theta


def test_an_upstream_detr_config_is_refused_naming_what_works(tmp_path):
    cfg = _user_config(tmp_path, 'mmdet::detr/detr_r50_8xb2-150e_coco.py', '')
    with pytest.raises(ValueError, match='DETR') as err:
        adapter_for(cfg.model, cfg.default_scope)
    assert 'single-stage' in str(err.value).lower()


def test_sampling_wrappers_are_split_off_and_put_back():
    coco = dict(type='CocoDataset', ann_file='a.json', pipeline=[1])
    cfg = dict(
        type='RepeatDataset',
        times=3,
        dataset=dict(type='MultiImageMixDataset', dataset=coco, pipeline=[2]))
    wrappers, inner = split_wrappers(cfg)
    assert inner == coco
    assert wrappers == [
        dict(type='RepeatDataset', times=3),
        dict(type='MultiImageMixDataset', pipeline=[2])
    ]
    assert rewrap(wrappers, inner) == cfg
    concat = dict(type='ConcatDataset', datasets=[coco, coco])
    assert split_wrappers(concat) == ([], concat)  # a pool of its own
    subset = dict(type='mmal.PoolSubsetDataset', dataset=coco)
    assert split_wrappers(subset) == ([], subset)


@pytest.fixture(scope='module')
def user_data(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('user_data'))
    generate_shapes_dataset(
        root, num_train=16, num_val=2, img_size=64, max_objects=3, seed=0)
    return root


def _yolox_user_config(tmp_path, root: str) -> Config:
    """YOLOX-tiny's own config on the user's (generated) COCO data: what
    mmdet's "train with a customized dataset" guide has users write, plus
    the selector and the run's sizes."""
    return _user_config(
        tmp_path, 'mmdet::yolox/yolox_tiny_8xb8-300e_coco.py', f"""
data_root = {root + '/'!r}
metainfo = dict(classes=('square', 'circle', 'triangle'))
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(dataset=dict(
        data_root=data_root, metainfo=metainfo,
        ann_file='annotations/train.json',
        data_prefix=dict(img='images/train/'))))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(
        data_root=data_root, metainfo=metainfo,
        ann_file='annotations/val.json', data_prefix=dict(img='images/val/')))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/val.json')
test_evaluator = val_evaluator
model = dict(bbox_head=dict(num_classes=3))
train_cfg = dict(max_epochs=1)
default_hooks = dict(logger=dict(interval=1))
al_cfg = dict(selector=dict(type='mmal.InfluenceSelector'),
              initial_size=4, budget=2, num_cycles=2)
""")


def test_a_mosaic_wrapper_mixes_only_labeled_images(tmp_path, user_data):
    cfg = _yolox_user_config(tmp_path, user_data)
    pool = pool_dataset_cfg(cfg)
    assert pool['type'] == 'CocoDataset'
    init_default_scope('mmdet')
    all_ids = [str(i) for i in range(1, 17)]  # COCO image ids
    labeled = all_ids[3:7]
    train = replace_pool_dataset(
        cfg, lambda ds: dict(
            type='mmal.PoolSubsetDataset', dataset=ds, sample_ids=labeled))
    assert train['type'] == 'MultiImageMixDataset'
    dataset = DATASETS.build(train)
    # Mosaic and MixUp draw their extra images from the wrapped dataset
    assert sorted(dataset.dataset.sample_ids, key=int) == labeled
    assert len(dataset) == len(labeled)


def test_a_concatenated_pool_is_restricted_part_by_part(user_data):
    """A pool of two datasets (as VOC2007 + VOC2012 trainval): the view of
    some ids of each keeps exactly those, and each part only its own."""
    from mmal.datasets import PoolSubsetDataset
    init_default_scope('mmdet')
    parts = [
        dict(
            type='CocoDataset',
            data_root=user_data + '/',
            ann_file=f'annotations/{split}.json',
            data_prefix=dict(img=f'images/{split}/'),
            metainfo=dict(classes=('square', 'circle', 'triangle')),
            filter_cfg=None,
            pipeline=[]) for split in ('train', 'val')
    ]
    wanted = ['3', '5', '16', '17', '18']  # train ids 1-16, val 17-18
    view = PoolSubsetDataset(
        dict(type='ConcatDataset', datasets=parts), sample_ids=wanted)
    assert view.sample_ids == wanted and len(view) == 5
    assert [len(d) for d in view.dataset.datasets] == [3, 2]
    assert [view[i]['img_id'] for i in range(5)] == [3, 5, 16, 17, 18]


def test_yolox_full_config_runs_two_isal_cycles(tmp_path, user_data):
    cfg = _yolox_user_config(tmp_path, user_data)
    from mmal.engine import ActiveLearningRunner
    work_dir = str(tmp_path / 'run')
    cfg.work_dir = work_dir
    ActiveLearningRunner(cfg).run()
    with open(osp.join(work_dir, 'al_state.json')) as f:
        state = json.load(f)
    labeled = state['pool']['labeled']
    cycles = {int(c) for c in labeled.values()}
    assert cycles == {0, 1} and len(labeled) == 4 + 2
    assert set(labeled) <= {str(i) for i in range(1, 17)}
    # the config mmengine's Runner dumped for cycle 1's training
    ds = Config.fromfile(osp.join(work_dir, 'cycle_1',
                                  'my_config.py')).train_dataloader.dataset
    assert ds.type == 'MultiImageMixDataset'
    assert ds.dataset.type == 'mmal.PoolSubsetDataset'


if __name__ == '__main__':
    sys.exit(pytest.main([__file__, '-q', '--rootdir', REPO]))
