"""Pool data plumbing: pipelines, paths, data_root overrides, bad images."""
import os.path as osp

import pytest
from mmengine.config import Config

from mmal.datasets import PoolSubsetDataset, generate_shapes_dataset
from mmal.datasets.pool_data import (check_data_paths, data_paths, id_loader,
                                     replace_pipeline)
from mmal.tasks import DetectionTask
from mmal.utils.config_utils import override_data_root
from conftest import REPO

strip_annotations = DetectionTask().unannotated_pipeline
with_annotations = DetectionTask().annotated_pipeline

PIPE = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale_factor=1.0),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs')
]


def test_pipelines_with_and_without_annotations():
    stripped = strip_annotations(PIPE)
    assert [t['type'] for t in stripped
            ] == ['LoadImageFromFile', 'Resize', 'PackDetInputs']
    restored = with_annotations(stripped)
    assert [t['type'] for t in restored] == [
        'LoadImageFromFile', 'LoadAnnotations', 'Resize', 'PackDetInputs'
    ]
    assert with_annotations(PIPE) == PIPE
    assert PIPE[2]['type'] == 'LoadAnnotations'  # inputs untouched


def test_replace_pipeline_and_paths_reach_wrapped_datasets():
    cfg = dict(
        type='ConcatDataset',
        datasets=[
            dict(
                type='CocoDataset',
                data_root='/a/',
                ann_file='x.json',
                pipeline=[]),
            dict(
                type='RepeatDataset',
                times=2,
                dataset=dict(
                    type='CocoDataset',
                    data_root='/b/',
                    ann_file='y.json',
                    pipeline=[]))
        ])
    out = replace_pipeline(cfg, PIPE)
    assert out['datasets'][0]['pipeline'] == PIPE
    assert out['datasets'][1]['dataset']['pipeline'] == PIPE
    assert 'pipeline' not in out and 'pipeline' not in out['datasets'][1]
    paths = data_paths(cfg)
    assert paths['datasets[0].ann_file'] == '/a/x.json'
    assert paths['datasets[1].dataset[0].ann_file'] == '/b/y.json'


def test_override_data_root_moves_every_path(tmp_path):
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'isal_fcos_coco.py'))
    override_data_root(cfg, str(tmp_path))
    root = str(tmp_path) + '/'
    assert cfg.train_dataloader.dataset.data_root == root
    assert cfg.val_evaluator.ann_file == root + \
        'annotations/instances_val2017.json'
    with pytest.raises(FileNotFoundError) as err:
        check_data_paths(cfg, ('train_dataloader', 'val_dataloader'))
    msg = str(err.value)
    assert root + 'annotations/instances_train2017.json' in msg
    assert 'train_dataloader.dataset.ann_file' in msg


def test_unreadable_image_is_named_with_its_id(tmp_path):
    info = generate_shapes_dataset(
        str(tmp_path), num_train=4, num_val=1, img_size=32, seed=0)
    ds = dict(
        type='CocoDataset',
        metainfo=dict(classes=info['classes']),
        test_mode=True,
        pipeline=strip_annotations(PIPE),
        **info['train'])
    view = PoolSubsetDataset(ds)
    bad = view.get_data_info(2)['img_path']
    with open(bad, 'wb') as f:
        f.write(b'not a jpeg')
    loader = id_loader(view, num_workers=0)
    with pytest.raises(RuntimeError) as err:
        list(loader)
    assert repr(view.sample_ids[2]) in str(err.value)
    assert bad in str(err.value)
