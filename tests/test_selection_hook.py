"""``mmal.SelectionHook`` in a plain mmengine Runner (an mmdet training
without mmal's driver): after training it exports the next images to label
from the images of the training folder that the training file lacks."""
import json
import os
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from mmal.tasks import DetectionTask
from mmal.utils.checkpoint import trusted_checkpoint_loading
from conftest import tiny_config


def _read(path):
    with open(path) as f:
        return json.load(f)


def _plain_mmdet_config(tmp_path) -> Config:
    """The tiny demo as a plain mmdet config: 8 of the 24 training images
    labeled (train_labeled.json), no al_cfg, 1 epoch, the hook."""
    data = str(tmp_path / 'data')
    DetectionTask().generate_demo_data(
        data, num_train=24, num_val=8, img_size=64, max_objects=3, seed=0)
    gt = _read(osp.join(data, 'annotations', 'train.json'))
    keep = {im['id'] for im in gt['images'][:8]}
    labeled = dict(
        gt,
        images=[im for im in gt['images'] if im['id'] in keep],
        annotations=[a for a in gt['annotations'] if a['image_id'] in keep])
    with open(osp.join(data, 'annotations', 'train_labeled.json'), 'w') as f:
        json.dump(labeled, f)
    cfg = tiny_config(
        'entropy_fcos_shapes.py', **{
            'train_cfg.max_epochs': 1,
            'train_cfg.val_interval': 1,
            'model.test_cfg.score_thr': 0.001
        })  # a 1-epoch model scores low
    cfg.merge_from_dict({'data_root': data + '/'})
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = data + '/'
    cfg.val_evaluator.ann_file = osp.join(data, 'annotations', 'val.json')
    cfg.test_evaluator = cfg.val_evaluator
    cfg.train_dataloader.dataset.ann_file = 'annotations/train_labeled.json'
    for key in ('al_cfg', 'demo_data'):
        cfg.pop(key)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.custom_hooks = [
        dict(
            type='mmal.SelectionHook',
            selector=dict(type='mmal.EntropySelector'),
            adapter=dict(type='mmal.FCOSAdapter'),
            budget=5,
            pre_annotation_score_thr=0.02,
            num_workers=0)
    ]
    return cfg, gt, keep


def test_the_hook_exports_the_next_images_from_a_plain_runner(tmp_path):
    cfg, gt, labeled = _plain_mmdet_config(tmp_path)
    with DefaultScope.overwrite_default_scope('mmdet'), \
            trusted_checkpoint_loading():
        runner = Runner.from_cfg(cfg)
        runner.train()
    out = osp.join(cfg.work_dir, 'to_annotate')
    manifest = _read(osp.join(out, 'manifest.json'))
    assert manifest['selector'] == 'EntropySelector'
    selected = [int(i) for i in manifest['selected']]
    assert len(selected) == 5 and not set(selected) & labeled
    names = {im['id']: im['file_name'] for im in gt['images']}
    assert manifest['file_names'] == [names[i] for i in selected]
    # entropy, highest first: the scores in the order of the export
    with open(osp.join(out, 'scores.csv')) as f:
        rows = [r.split(',') for r in f.read().split()[1:]]
    scores = [float(r[3]) for r in rows if r[3]]
    assert scores == sorted(scores, reverse=True) and scores
    pool = _read(osp.join(out, 'pool.json'))
    assert len(pool['images']) == 24  # labeled + the rest of the folder
    coco = _read(osp.join(out, 'annotations_coco.json'))
    assert [im['id'] for im in coco['images']] == selected
    tasks = _read(osp.join(out, 'label_studio_tasks.json'))
    assert len(tasks) == 5
    with pytest.raises(Exception, match='budget must be a positive'):
        from mmal.engine import SelectionHook
        SelectionHook(
            selector=dict(type='mmal.RandomSelector'),
            adapter=dict(type='mmal.FCOSAdapter'),
            budget=0)


def test_the_hook_in_a_plain_mmpretrain_training(tmp_path):
    """A plain mmpretrain training on a ``path class_index`` list (as
    mmpretrain's CustomDataset reads it), the unlabeled images given as a
    list: the hook exports core-set's picks with the predicted classes."""
    from mmal.tasks import ClassificationTask
    from conftest import tiny_cls_config
    data = str(tmp_path / 'data')
    ClassificationTask().generate_demo_data(
        data, num_train=32, num_test=12, img_size=32, seed=0)
    classes = ['circle', 'cross', 'square', 'triangle']
    train = sorted(
        osp.relpath(osp.join(root, f), osp.join(data, 'train'))
        for root, _, files in os.walk(osp.join(data, 'train')) for f in files
        if f.endswith('.png'))
    labeled, unlabeled = train[::3], [p for p in train if p not in train[::3]]
    with open(tmp_path / 'labeled.txt', 'w') as f:
        f.writelines(f'{p} {classes.index(p.split("/")[0])}\n'
                     for p in labeled)
    with open(tmp_path / 'unlabeled.txt', 'w') as f:
        f.writelines(f'{p}\n' for p in unlabeled)
    cfg = tiny_cls_config(
        'coreset_resnet18-small_shapes-cls.py', **{
            'train_cfg.max_epochs': 1,
            'train_cfg.val_interval': 1
        })
    for key in ('al_cfg', 'demo_data'):
        cfg.pop(key)
    cfg.train_dataloader.dataset.update(
        data_root=data,
        data_prefix='train',
        ann_file=str(tmp_path / 'labeled.txt'),
        metainfo=dict(classes=classes))
    for key in ('val_dataloader', 'test_dataloader'):
        cfg[key].dataset.update(data_root=data, data_prefix='test')
    cfg.work_dir = str(tmp_path / 'work')
    cfg.custom_hooks = [
        dict(
            type='mmal.SelectionHook',
            selector=dict(type='mmal.CoresetSelector'),
            budget=6,  # no adapter: the classifier's, from the model type
            unlabeled_ann_file=str(tmp_path / 'unlabeled.txt'),
            num_workers=0)
    ]
    with DefaultScope.overwrite_default_scope('mmpretrain'), \
            trusted_checkpoint_loading():
        Runner.from_cfg(cfg).train()
    out = osp.join(cfg.work_dir, 'to_annotate')
    manifest = _read(osp.join(out, 'manifest.json'))
    assert manifest['selector'] == 'CoresetSelector'
    assert len(manifest['selected']) == 6
    assert set(manifest['selected']) <= set(unlabeled)
    with open(osp.join(out, 'labels_predicted.txt')) as f:
        lines = [ln.split() for ln in f.read().splitlines()]
    assert [p for p, _ in lines] == manifest['selected']
    assert all(c in classes for _, c in lines)
    with open(osp.join(out, 'scores.csv')) as f:  # core-set: the distance
        rows = [r.split(',') for r in f.read().split()[1:]]  # when picked
    radii = [float(r[3]) for r in rows]
    assert radii == sorted(radii, reverse=True) and radii[0] > 0
