"""Tests of mmal.datasets: stable ids, pool views, annotation checks and the
synthetic dataset. Data are tiny and made here (12 train / 4 val images of
64 px); the BCCD test runs only where the shared dataset is present."""
import json
import os
import os.path as osp
import pickle
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mmal.datasets import (SHAPES_CLASSES, PoolSubsetDataset,
                           check_annotations, collect_sample_ids, count_boxes,
                           generate_shapes_dataset, sample_id)

PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs')
]
TINY = dict(num_train=12, num_val=4, img_size=64, max_objects=4, seed=0)


@pytest.fixture(scope='module', autouse=True)
def mmdet_scope():
    pytest.importorskip('mmdet')
    from mmdet.utils import register_all_modules
    register_all_modules()  # default scope 'mmdet'


@pytest.fixture(scope='module')
def coco_data(tmp_path_factory):
    return generate_shapes_dataset(
        str(tmp_path_factory.mktemp('coco')), fmt='coco', **TINY)


@pytest.fixture(scope='module')
def voc_data(tmp_path_factory):
    return generate_shapes_dataset(
        str(tmp_path_factory.mktemp('voc')), fmt='voc', **TINY)


def coco_cfg(layout: dict, **kwargs) -> dict:
    cfg = dict(
        type='CocoDataset',
        metainfo=dict(classes=SHAPES_CLASSES),
        pipeline=PIPELINE,
        **layout)
    cfg.update(kwargs)
    return cfg


def voc_cfg(data_root: str, split: str = 'train', **kwargs) -> dict:
    cfg = dict(
        type='XMLDataset',
        metainfo=dict(classes=SHAPES_CLASSES),
        data_root=data_root,
        ann_file=f'VOC/ImageSets/Main/{split}.txt',
        data_prefix=dict(sub_data_root='VOC/'),
        pipeline=PIPELINE)
    cfg.update(kwargs)
    return cfg


def copy_voc(voc_data: dict, dst: Path) -> str:
    shutil.copytree(voc_data['out_dir'], dst)
    return str(dst)


def edit_xml(root: str, stem: str, fn) -> None:
    """Apply ``fn(first_object_element)`` to the XML of ``stem``."""
    path = osp.join(root, 'VOC', 'Annotations', f'{stem}.xml')
    tree = ET.parse(path)
    fn(tree.getroot().find('object'))
    tree.write(path)


def n_xml_objects(root: str, stem: str) -> int:
    path = osp.join(root, 'VOC', 'Annotations', f'{stem}.xml')
    return len(ET.parse(path).getroot().findall('object'))


def id_to_path(view) -> dict:
    return {
        sid: view.get_data_info(i)['img_path']
        for i, sid in enumerate(view.sample_ids)
    }


# --------------------------------------------------------------- sample ids
class _ListDataset:
    """The smallest dataset: a list of data infos."""

    def __init__(self, infos, classes=SHAPES_CLASSES):
        self.infos = infos
        self.metainfo = dict(classes=classes)

    def __len__(self):
        return len(self.infos)

    def get_data_info(self, i):
        return dict(self.infos[i])


def test_sample_id_and_duplicates():
    assert sample_id(dict(img_id=7, img_path='a/7.jpg')) == '7'
    assert sample_id(dict(img_id='2008_000002', img_path='x')) == \
        '2008_000002'
    assert sample_id(dict(img_path='a/b.jpg')) == 'a/b.jpg'
    with pytest.raises(KeyError):
        sample_id(dict(width=3))
    ds = _ListDataset([
        dict(img_id=1, img_path='a/one.jpg'),
        dict(img_id=2, img_path='a/two.jpg'),
        dict(img_id=1, img_path='b/one.jpg')
    ])
    with pytest.raises(ValueError, match='a/one.jpg.*b/one.jpg'):
        collect_sample_ids(ds)
    assert collect_sample_ids(_ListDataset(ds.infos[:2])) == ['1', '2']


def test_label_out_of_range_is_reported():
    ds = _ListDataset([
        dict(
            img_id=3,
            img_path=__file__,
            width=10,
            height=10,
            instances=[dict(bbox=[1, 1, 5, 5], bbox_label=7, ignore_flag=0)])
    ])
    with pytest.raises(ValueError, match=r"sample '3'.*label 7"):
        check_annotations(ds)


# -------------------------------------------------------------- generator
def test_generator_deterministic_and_skips(tmp_path, coco_data):
    kw = dict(num_train=5, num_val=2, img_size=48, seed=3)
    a = generate_shapes_dataset(str(tmp_path / 'a'), **kw)
    b = generate_shapes_dataset(str(tmp_path / 'b'), **kw)
    c = generate_shapes_dataset(str(tmp_path / 'c'), **dict(kw, seed=4))
    for split in ('train', 'val'):
        ja = (tmp_path / 'a' / 'annotations' / f'{split}.json').read_bytes()
        assert ja == (tmp_path / 'b' / 'annotations' /
                      f'{split}.json').read_bytes()
        assert ja != (tmp_path / 'c' / 'annotations' /
                      f'{split}.json').read_bytes()
    assert not a['skipped'] and not b['skipped'] and not c['skipped']
    ann = tmp_path / 'a' / 'annotations' / 'train.json'
    mtime = ann.stat().st_mtime_ns
    again = generate_shapes_dataset(str(tmp_path / 'a'), **kw)
    assert again['skipped'] and ann.stat().st_mtime_ns == mtime
    assert again['num_boxes'] == a['num_boxes']

    from mmal.datasets.synthetic import main
    cli = main([
        str(tmp_path / 'cli'), '--fmt', 'voc', '--num-train', '2', '--num-val',
        '1', '--img-size', '32'
    ])
    split_file = tmp_path / 'cli' / 'VOC' / 'ImageSets' / 'Main' / 'train.txt'
    assert split_file.read_text().split() == ['train_000001', 'train_000002']
    assert cli['num_images'] == dict(train=2, val=1)

    # the module fixture: COCO content as specified
    coco = json.loads(
        Path(coco_data['out_dir'], 'annotations', 'train.json').read_text())
    assert [im['id'] for im in coco['images']] == list(range(1, 13))
    assert [c['id'] for c in coco['categories']] == [1, 2, 3]
    per_image = {}
    for an in coco['annotations']:
        x, y, w, h = an['bbox']
        assert w > 0 and h > 0 and x >= 0 and y >= 0
        assert x + w <= 64 and y + h <= 64 and an['area'] == w * h
        per_image[an['image_id']] = per_image.get(an['image_id'], 0) + 1
    assert set(per_image) == set(range(1, 13))
    assert all(1 <= n <= TINY['max_objects'] for n in per_image.values())
    assert len(coco['annotations']) == coco_data['num_boxes']['train']


# ------------------------------------------------------------ pool views
def test_view_exposes_requested_ids_in_inner_order(coco_data):
    view = PoolSubsetDataset(
        coco_cfg(coco_data['train']), sample_ids=[9, '2', '5'])
    assert view.sample_ids == ['2', '5', '9']
    assert len(view) == 3
    assert [view.get_data_info(i)['img_id'] for i in range(3)] == [2, 5, 9]
    assert view.metainfo['classes'] == SHAPES_CLASSES
    assert view.ann_file.endswith('train.json')  # delegated to the inner
    item = view[0]
    assert tuple(item['inputs'].shape) == (3, 64, 64)
    assert item['data_samples'].img_id == 2
    assert sample_id(item['data_samples'].metainfo) == '2'
    # all samples, and an empty view
    assert len(PoolSubsetDataset(coco_cfg(coco_data['train']))) == 12
    assert len(PoolSubsetDataset(coco_cfg(coco_data['train']),
                                 sample_ids=[])) == 0


def test_view_from_ids_file_and_registry(coco_data, tmp_path):
    from mmdet.registry import DATASETS as MMDET_DATASETS
    (tmp_path / 'list.json').write_text(json.dumps([3, 1]))
    (tmp_path / 'dict.json').write_text(json.dumps({'ids': ['3', '1']}))
    for name in ('list.json', 'dict.json'):
        view = MMDET_DATASETS.build(
            dict(
                type='mmal.PoolSubsetDataset',
                dataset=coco_cfg(coco_data['train']),
                ids_file=str(tmp_path / name)))
        assert isinstance(view, PoolSubsetDataset)
        assert view.sample_ids == ['1', '3']
    with pytest.raises(ValueError):
        PoolSubsetDataset(
            coco_cfg(coco_data['train']),
            sample_ids=['1'],
            ids_file=str(tmp_path / 'list.json'))


def test_unknown_id_raises_keyerror(coco_data):
    with pytest.raises(KeyError) as err:
        PoolSubsetDataset(
            coco_cfg(coco_data['train']), sample_ids=['1', '12345'])
    assert "'12345'" in str(err.value) and 'train.json' in str(err.value)
    with pytest.raises(KeyError, match='777'):
        view = PoolSubsetDataset(coco_cfg(coco_data['train']))
        count_boxes(view, ids=['1', '777'])


def test_ids_survive_reordering_and_filtering_coco(coco_data, tmp_path):
    """A view built from ids gives the same images when the inner dataset is
    reordered and filters an image out; positions do not."""
    root = coco_data['out_dir']
    coco = json.loads(Path(root, 'annotations', 'train.json').read_text())
    # reversed order + one image without objects at the front
    shutil.copy(
        osp.join(root, 'images', 'train', coco['images'][0]['file_name']),
        osp.join(root, 'images', 'train', 'empty.jpg'))
    empty = dict(id=999, file_name='empty.jpg', width=64, height=64)
    coco['images'] = [empty] + coco['images'][::-1]
    ann = tmp_path / 'train_reordered.json'
    ann.write_text(json.dumps(coco))
    wanted = ['4', '7', '11']
    base = PoolSubsetDataset(coco_cfg(coco_data['train']), sample_ids=wanted)
    moved_cfg = coco_cfg(
        dict(coco_data['train'], ann_file=str(ann)),
        filter_cfg=dict(filter_empty_gt=True))
    moved = PoolSubsetDataset(moved_cfg, sample_ids=wanted)
    assert base.sample_ids == ['4', '7', '11']
    assert moved.sample_ids == ['11', '7', '4']  # the inner order
    assert id_to_path(base) == id_to_path(moved)
    assert (base[0]['inputs'] == moved[2]['inputs']).all()
    # positions did move: the full, filtered inner dataset
    full = PoolSubsetDataset(moved_cfg)
    assert '999' not in full.sample_ids and len(full) == 12
    assert full.sample_ids.index('4') != 3
    with pytest.raises(KeyError, match='999'):
        PoolSubsetDataset(moved_cfg, sample_ids=['999'])
    # unfiltered, the empty image is a sample like any other
    assert '999' in PoolSubsetDataset(
        coco_cfg(dict(coco_data['train'], ann_file=str(ann)))).sample_ids


def test_ids_survive_reordering_and_filtering_voc(voc_data, tmp_path):
    root = copy_voc(voc_data, tmp_path / 'voc')
    main = Path(root, 'VOC', 'ImageSets', 'Main')
    stems = main.joinpath('train.txt').read_text().split()
    shutil.copy(
        osp.join(root, 'VOC', 'JPEGImages', f'{stems[0]}.jpg'),
        osp.join(root, 'VOC', 'JPEGImages', 'empty.jpg'))
    tree = ET.parse(osp.join(root, 'VOC', 'Annotations', f'{stems[0]}.xml'))
    for obj in tree.getroot().findall('object'):
        tree.getroot().remove(obj)
    tree.write(osp.join(root, 'VOC', 'Annotations', 'empty.xml'))
    main.joinpath('shuffled.txt').write_text('\n'.join(['empty'] +
                                                       stems[::-1]) + '\n')
    wanted = [stems[1], stems[6]]
    base = PoolSubsetDataset(voc_cfg(root), sample_ids=wanted)
    moved = PoolSubsetDataset(
        voc_cfg(root, 'shuffled', filter_cfg=dict(filter_empty_gt=True)),
        sample_ids=wanted)
    assert base.sample_ids == wanted and moved.sample_ids == wanted[::-1]
    assert id_to_path(base) == id_to_path(moved)
    assert tuple(moved[0]['inputs'].shape) == (3, 64, 64)


def test_view_pickles_for_dataloader_workers(coco_data):
    view = PoolSubsetDataset(
        coco_cfg(coco_data['train']), sample_ids=['2', '3'])
    clone = pickle.loads(pickle.dumps(view))
    assert clone.sample_ids == ['2', '3'] and len(clone) == 2
    assert clone[1]['data_samples'].img_id == 3
    bare = PoolSubsetDataset.__new__(PoolSubsetDataset)
    assert getattr(bare, 'ann_file', None) is None  # no recursion
    lazy = PoolSubsetDataset(
        coco_cfg(coco_data['train']), sample_ids=['2'], lazy_init=True)
    assert lazy.sample_ids == ['2'] and len(lazy) == 1


# ------------------------------------------------------- annotation checks
def _zero_area(obj):
    box = obj.find('bndbox')
    box.find('xmax').text = box.find('xmin').text


def _outside(obj):
    obj.find('bndbox').find('xmax').text = '80'


def _unknown_class(obj):
    obj.find('name').text = 'hexagon'


@pytest.mark.parametrize('corrupt, expected', [
    (_zero_area, 'zero or negative area'),
    (_outside, 'outside the image'),
    (_unknown_class, "'hexagon'"),
    (None, 'does not exist'),
])
def test_check_annotations_errors_name_file_and_id(voc_data, tmp_path, corrupt,
                                                   expected):
    root = copy_voc(voc_data, tmp_path / 'voc')
    stem = 'train_000003'
    if corrupt is None:
        os.remove(osp.join(root, 'VOC', 'JPEGImages', f'{stem}.jpg'))
    else:
        edit_xml(root, stem, corrupt)
    with pytest.raises(ValueError) as err:
        PoolSubsetDataset(voc_cfg(root), annotation_policy='error')
    msg = str(err.value)
    assert expected in msg and f"sample '{stem}'" in msg
    assert f'{stem}.xml' in msg and '1 annotation problem' in msg
    if corrupt is None:  # a missing image is an error under 'drop' too
        with pytest.raises(ValueError, match='does not exist'):
            PoolSubsetDataset(voc_cfg(root), annotation_policy='drop')


def test_check_annotations_outside_box_coco(coco_data, tmp_path):
    coco = json.loads(
        Path(coco_data['out_dir'], 'annotations', 'train.json').read_text())
    coco['annotations'].append(
        dict(
            id=10_000,
            image_id=6,
            category_id=1,
            bbox=[50, 50, 30, 30],
            area=900,
            iscrowd=0))
    ann = tmp_path / 'bad.json'
    ann.write_text(json.dumps(coco))
    cfg = coco_cfg(dict(coco_data['train'], ann_file=str(ann)))
    with pytest.raises(ValueError, match=r"bad\.json: sample '6'.*outside"):
        PoolSubsetDataset(cfg)
    view = PoolSubsetDataset(cfg, annotation_policy='drop')
    assert len(view.annotation_problems) == 1
    assert count_boxes(view) == coco_data['num_boxes']['train']


def test_drop_removes_only_the_bad_instances(voc_data, tmp_path):
    root = copy_voc(voc_data, tmp_path / 'voc')
    edit_xml(root, 'train_000002', _zero_area)
    edit_xml(root, 'train_000004', _outside)
    edit_xml(root, 'train_000005', _unknown_class)
    view = PoolSubsetDataset(voc_cfg(root), annotation_policy='drop')
    problems = view.annotation_problems
    assert len(problems) == 3
    assert sum('hexagon' in p for p in problems) == 1
    assert len(view) == 12  # no image is dropped
    n_objects = {s: n_xml_objects(root, s) for s in view.sample_ids}
    for i, sid in enumerate(view.sample_ids):
        n = len(view.get_data_info(i)['instances'])
        # one instance less where a box was bad or the class unknown
        bad = sid in ('train_000002', 'train_000004', 'train_000005')
        assert n == n_objects[sid] - bad
    assert count_boxes(view) == voc_data['num_boxes']['train'] - 3
    assert view[view.sample_ids.index('train_000002')]['inputs'].shape[0] == 3


def test_drop_with_serialized_data(voc_data, tmp_path):
    from mmdet.registry import DATASETS as MMDET_DATASETS
    root = copy_voc(voc_data, tmp_path / 'voc')
    edit_xml(root, 'train_000002', _zero_area)
    inner = MMDET_DATASETS.build(voc_cfg(root, serialize_data=True))
    inner.full_init()
    before = len(inner.get_data_info(1)['instances'])
    problems = check_annotations(inner, policy='drop')
    assert len(problems) == 1 and 'train_000002' in problems[0]
    assert len(inner.get_data_info(1)['instances']) == before - 1
    assert len(inner) == 12 and len(inner.data_list) == 0  # still packed
    # an instance is copied, not restricted in place
    view = PoolSubsetDataset(inner, sample_ids=['train_000002'])
    assert len(view) == 1 and len(inner) == 12
    assert view.get_data_info(0)['img_id'] == 'train_000002'


def test_count_boxes_matches_written_objects(coco_data, voc_data):
    coco = json.loads(
        Path(coco_data['out_dir'], 'annotations', 'train.json').read_text())
    view = PoolSubsetDataset(coco_cfg(coco_data['train']))
    assert count_boxes(view) == len(coco['annotations'])
    ids = [2, 5, 8]
    assert count_boxes(view, ids) == sum(a['image_id'] in ids
                                         for a in coco['annotations'])
    voc_view = PoolSubsetDataset(voc_cfg(voc_data['out_dir'], 'val'))
    assert count_boxes(voc_view) == voc_data['num_boxes']['val']
    assert count_boxes(voc_view, ['val_000001']) == n_xml_objects(
        voc_data['out_dir'], 'val_000001')


# ------------------------------------------------------------------- BCCD
def _bccd_root():
    repo = Path(__file__).resolve().parents[1]
    for cand in (repo.parent / 'shared' / 'datasets' / 'bccd',
                 Path('/work/shared/datasets/bccd')):
        if (cand / 'BCCD' / 'Annotations').is_dir():
            return cand
    return None


BCCD = _bccd_root()
BCCD_ZERO_AREA = ('BloodImage_00338', 'BloodImage_00343')


@pytest.mark.skipif(BCCD is None, reason='shared BCCD dataset not present')
@pytest.mark.parametrize('split', ['train', 'trainval'])
def test_bccd_zero_area_boxes_are_dropped(split):
    stems = (BCCD / 'BCCD' / 'ImageSets' / 'Main' /
             f'{split}.txt').read_text().split()
    expected = sorted(s for s in BCCD_ZERO_AREA if s in stems)
    cfg = dict(
        type='XMLDataset',
        metainfo=dict(classes=('RBC', 'WBC', 'Platelets')),
        data_root=str(BCCD),
        ann_file=f'BCCD/ImageSets/Main/{split}.txt',
        data_prefix=dict(sub_data_root='BCCD/'),
        pipeline=PIPELINE)
    with pytest.raises(ValueError, match='zero or negative area'):
        PoolSubsetDataset(cfg)
    view = PoolSubsetDataset(cfg, annotation_policy='drop')
    problems = view.annotation_problems
    assert len(problems) == len(expected)
    for stem, msg in zip(expected, sorted(problems)):
        assert f'{stem}.xml' in msg and 'zero or negative area' in msg
    assert len(view) == len(stems)
    assert tuple(view[0]['inputs'].shape) == (3, 480, 640)
