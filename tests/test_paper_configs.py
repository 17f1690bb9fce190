"""The paper's VOC configs: cycle 0 trained, evaluated and selected on a tiny
VOC2012-layout folder.

Same models (FCOS R-50 caffe GN head; Faster R-CNN R-50 FPN; 20 classes),
dataset class, metric and selector as ``configs/isal_fcos_voc.py`` and
``configs/isal_faster-rcnn_voc.py``; only sizes shrink: 64-pixel images, one
epoch, a few images, no pretrained download.
"""
import glob
import os.path as osp
import shutil

import pytest
from mmengine.config import Config

from mmal.datasets import generate_shapes_dataset
from mmal.structures import ALState
from mmal.utils.config_utils import override_data_root
from conftest import REPO, select_cycle0, train_cycle0

# The generated shapes, renamed to Pascal VOC classes.
VOC_NAMES = dict(square='car', circle='dog', triangle='person')


def _voc2012_folder(root: str) -> str:
    generate_shapes_dataset(
        osp.join(root, 'gen'),
        num_train=10,
        num_val=4,
        img_size=64,
        max_objects=2,
        seed=1,
        fmt='voc')
    voc = osp.join(root, 'VOCdevkit', 'VOC2012')
    shutil.move(osp.join(root, 'gen', 'VOC'), voc)
    for xml in glob.glob(osp.join(voc, 'Annotations', '*.xml')):
        with open(xml) as f:
            text = f.read()
        for old, new in VOC_NAMES.items():
            text = text.replace(f'<name>{old}</name>', f'<name>{new}</name>')
        with open(xml, 'w') as f:
            f.write(text)
    return osp.join(root, 'VOCdevkit')


@pytest.mark.parametrize('name',
                         ['isal_fcos_voc.py', 'isal_faster-rcnn_voc.py'])
def test_isal_voc_trains_evaluates_and_selects(tmp_path, name):
    """Cycle 0 (training, Pascal VOC mAP) and its ISAL selection; the
    cycles after it are the same driver code (test_al_runner)."""
    data_root = _voc2012_folder(str(tmp_path))
    cfg = Config.fromfile(osp.join(REPO, 'configs', name))
    override_data_root(cfg, data_root)
    small = (96, 64)
    cfg.merge_from_dict({
        'model.backbone.init_cfg': None,
        'train_dataloader.dataset.pipeline.2.scale': small,
        'val_dataloader.dataset.pipeline.1.scale': small,
        'test_dataloader.dataset.pipeline.1.scale': small,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'val_dataloader.num_workers': 0,
        'val_dataloader.persistent_workers': False,
        'test_dataloader.num_workers': 0,
        'test_dataloader.persistent_workers': False,
        'train_cfg.max_epochs': 1,
        'param_scheduler': [],
        'al_cfg.initial_size': 4,
        'al_cfg.budget': 2,
        'al_cfg.num_cycles': 2,
        'al_cfg.num_workers': 0,
        'al_cfg.selector.solver': dict(type='mmal.LiSSA', depth=2, repeats=1),
    })
    work_dir = train_cycle0(cfg, str(tmp_path / 'work'))
    selection = select_cycle0(cfg, work_dir)
    state = ALState.load(osp.join(work_dir, 'al_state.json'))
    assert [c['done']
            for c in state.cycles] == [['train', 'evaluate', 'select']]
    assert state.cycles[0]['metric_key'] == 'pascal_voc/mAP'
    assert state.pool.num_labeled == 6
    selected = state.pool.ids_labeled_in(1)
    assert len(selected) == 2 and all(i.startswith('train_') for i in selected)
    assert sorted(selection['selected']) == sorted(selected)
