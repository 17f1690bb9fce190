"""Tests of mmal's classification datasets: CIFAR-10/100 read from local
batch files with stable ids, ``CustomDataset`` with relative ids, and the
synthetic shapes classification generator. All data are tiny and written
here (CIFAR: 2 images per batch file; PNGs of 8..16 px)."""
import hashlib
import os
import os.path as osp
import pickle
import shutil

import cv2
import numpy as np
import pytest

from mmal.datasets import (CIFAR10, CIFAR100, SHAPES_CLS_CLASSES,
                           CustomDataset, collect_sample_ids,
                           generate_shapes_classification)
from mmal.utils.errors import ConfigError, DataError, MissingFileError

CIFAR10_TRAIN = [
    'data_batch_1', 'data_batch_2', 'data_batch_3', 'data_batch_4',
    'data_batch_5'
]


def _dump(path, obj):
    with open(path, 'wb') as f:
        pickle.dump(obj, f)


def write_cifar10(root, per_batch=2, num_test=3, seed=0):
    """Write a tiny CIFAR-10 layout; returns ``{split: (rows, labels)}``,
    the raw ``(N, 3072)`` rows and labels in canonical order."""
    rng = np.random.default_rng(seed)
    folder = osp.join(root, 'cifar-10-batches-py')
    os.makedirs(folder)
    truth = {}
    for split, files, n in (('train', CIFAR10_TRAIN, per_batch),
                            ('test', ['test_batch'], num_test)):
        rows, labels = [], []
        for name in files:
            data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
            lab = [int(v) for v in rng.integers(0, 10, size=n)]
            _dump(
                osp.join(folder, name), {
                    'batch_label': name,
                    'data': data,
                    'labels': lab,
                    'filenames': [f'{name}_{i}.png' for i in range(n)]
                })
            rows.append(data)
            labels += lab
        truth[split] = (np.concatenate(rows), labels)
    _dump(
        osp.join(folder, 'batches.meta'), {
            'label_names': [f'c{i}' for i in range(10)],
            'num_cases_per_batch': per_batch
        })
    return truth


def write_cifar100(root, num_train=4, num_test=2, seed=1):
    """Write a tiny CIFAR-100 layout (fine and differing coarse labels)."""
    rng = np.random.default_rng(seed)
    folder = osp.join(root, 'cifar-100-python')
    os.makedirs(folder)
    truth = {}
    for split, n in (('train', num_train), ('test', num_test)):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        fine = [int(v) for v in rng.integers(20, 100, size=n)]
        coarse = [int(v) for v in rng.integers(0, 20, size=n)]
        _dump(
            osp.join(folder, split), {
                'data': data,
                'fine_labels': fine,
                'coarse_labels': coarse,
                'filenames': [f'{split}_{i}.png' for i in range(n)]
            })
        truth[split] = (data, fine)
    _dump(
        osp.join(folder, 'meta'), {
            'fine_label_names': [f'f{i}' for i in range(100)],
            'coarse_label_names': [f'k{i}' for i in range(20)]
        })
    return truth


def row_pixel(row, h, w, c):
    """Pixel ``(h, w, c)`` of a CIFAR row: channel planes of 32x32,
    row-major (the format's definition)."""
    return row[c * 1024 + h * 32 + w]


def assert_matches_rows(ds, split, rows, labels, positions):
    """Sample ``j`` of ``ds`` is image ``positions[j]`` of the split."""
    assert len(ds) == len(positions)
    for j, pos in enumerate(positions):
        info = ds.get_data_info(j)
        assert info['img_id'] == f'{split}/{pos:05d}'
        assert info['gt_label'] == labels[pos]
        img = info['img']
        assert img.shape == (32, 32, 3) and img.dtype == np.uint8
        for h, w, c in ((0, 0, 0), (31, 0, 1), (5, 17, 2), (31, 31, 2)):
            assert img[h, w, c] == row_pixel(rows[pos], h, w, c)


@pytest.fixture
def no_network_no_barrier(monkeypatch):
    """Fail the test if loading downloads or waits for other ranks."""
    import mmengine.dist
    import mmpretrain.datasets.cifar as mmpretrain_cifar

    def forbidden(*args, **kwargs):
        raise AssertionError('must not download or call dist.barrier')

    monkeypatch.setattr(mmengine.dist, 'barrier', forbidden)
    monkeypatch.setattr(mmpretrain_cifar.dist, 'barrier', forbidden)
    monkeypatch.setattr(mmpretrain_cifar, 'download_and_extract_archive',
                        forbidden)


# --------------------------------------------------------------- CIFAR-10


def test_cifar10_ids_images_labels(tmp_path, no_network_no_barrier):
    truth = write_cifar10(str(tmp_path))
    rows, labels = truth['train']
    ds = CIFAR10(data_root=str(tmp_path), split='train', check_md5=False)
    assert_matches_rows(ds, 'train', rows, labels, range(10))
    assert ds.CLASSES == CIFAR10.METAINFO['classes']  # mmpretrain's names
    test_rows, test_labels = truth['test']
    test = CIFAR10(
        data_root=str(tmp_path), split='test', test_mode=True, check_md5=False)
    assert_matches_rows(test, 'test', test_rows, test_labels, range(3))
    assert collect_sample_ids(test) == [
        'test/00000', 'test/00001', 'test/00002'
    ]


def test_cifar10_ids_survive_indices(tmp_path):
    truth = write_cifar10(str(tmp_path))
    rows, labels = truth['train']
    picked = [7, 2, 9, 0]
    sub = CIFAR10(data_root=str(tmp_path), indices=picked, check_md5=False)
    assert_matches_rows(sub, 'train', rows, labels, picked)
    first = CIFAR10(data_root=str(tmp_path), indices=3, check_md5=False)
    assert_matches_rows(first, 'train', rows, labels, [0, 1, 2])


def test_cifar10_pipeline_and_data_prefix(tmp_path):
    from mmpretrain.datasets import PackInputs
    truth = write_cifar10(str(tmp_path / 'nested'))
    rows, labels = truth['train']
    ds = CIFAR10(
        data_root=str(tmp_path),
        data_prefix='nested',
        check_md5=False,
        pipeline=[PackInputs()])
    out = ds[4]
    assert tuple(out['inputs'].shape) == (3, 32, 32)
    assert int(out['inputs'][1, 5, 17]) == row_pixel(rows[4], 5, 17, 1)
    assert int(out['data_samples'].gt_label) == labels[4]


def test_cifar10_meta_classes_when_none_given(tmp_path, monkeypatch):
    write_cifar10(str(tmp_path))
    monkeypatch.setattr(CIFAR10, 'METAINFO', {})
    ds = CIFAR10(data_root=str(tmp_path), check_md5=False)
    assert ds.CLASSES == tuple(f'c{i}' for i in range(10))


def test_cifar10_md5(tmp_path, monkeypatch):
    write_cifar10(str(tmp_path))
    folder = tmp_path / 'cifar-10-batches-py'
    with pytest.raises(DataError) as err:
        CIFAR10(data_root=str(tmp_path))  # check_md5=True: official md5s
    assert str(folder / 'data_batch_1') in str(err.value)
    assert 'md5' in str(err.value)

    def md5(name):
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    # the right md5s pass; one changed byte fails, naming that file
    monkeypatch.setattr(CIFAR10, 'train_list',
                        [[n, md5(n)] for n in CIFAR10_TRAIN])
    assert len(CIFAR10(data_root=str(tmp_path))) == 10
    raw = bytearray((folder / 'data_batch_4').read_bytes())
    raw[-40] ^= 1
    (folder / 'data_batch_4').write_bytes(bytes(raw))
    with pytest.raises(DataError, match='data_batch_4'):
        CIFAR10(data_root=str(tmp_path))


def test_cifar10_missing_data(tmp_path, no_network_no_barrier):
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(MissingFileError) as err:
        CIFAR10(data_root=str(empty), check_md5=False)
    msg = str(err.value)
    assert str(empty / 'cifar-10-batches-py') in msg
    assert '--data-root' in msg
    assert isinstance(err.value, FileNotFoundError)

    write_cifar10(str(tmp_path / 'partial'))
    os.remove(tmp_path / 'partial' / 'cifar-10-batches-py' / 'data_batch_3')
    with pytest.raises(MissingFileError) as err:
        CIFAR10(data_root=str(tmp_path / 'partial'), check_md5=False)
    assert str(tmp_path / 'partial' / 'cifar-10-batches-py' /
               'data_batch_3') in str(err.value)
    # the test split does not need the train files
    assert len(
        CIFAR10(
            data_root=str(tmp_path / 'partial'), split='test',
            check_md5=False)) == 3


def test_cifar10_never_downloads(tmp_path, no_network_no_barrier):
    with pytest.raises(ConfigError, match='never downloads'):
        CIFAR10(data_root=str(tmp_path), download=True)
    with pytest.raises(ConfigError, match='data_root'):
        CIFAR10()


def test_cifar10_bad_label(tmp_path):
    write_cifar10(str(tmp_path))
    path = tmp_path / 'cifar-10-batches-py' / 'data_batch_2'
    with open(path, 'rb') as f:
        entry = pickle.load(f)
    entry['labels'][1] = 10
    _dump(str(path), entry)
    with pytest.raises(DataError) as err:
        CIFAR10(data_root=str(tmp_path), check_md5=False)
    assert str(path) in str(err.value)
    assert "'train/00003'" in str(err.value)  # batch 2, second image


# -------------------------------------------------------------- CIFAR-100


def test_cifar100_fine_labels_and_ids(tmp_path, no_network_no_barrier):
    truth = write_cifar100(str(tmp_path))
    for split, n in (('train', 4), ('test', 2)):
        rows, fine = truth[split]
        ds = CIFAR100(data_root=str(tmp_path), split=split, check_md5=False)
        assert_matches_rows(ds, split, rows, fine, range(n))
        assert len(ds.CLASSES) == 100
    rows, fine = truth['train']
    sub = CIFAR100(data_root=str(tmp_path), indices=[3, 1], check_md5=False)
    assert_matches_rows(sub, 'train', rows, fine, [3, 1])
    with pytest.raises(DataError) as err:
        CIFAR100(data_root=str(tmp_path))
    assert str(tmp_path / 'cifar-100-python' / 'train') in str(err.value)
    with pytest.raises(MissingFileError, match='cifar-100-python'):
        CIFAR100(data_root=str(tmp_path / 'nowhere'), check_md5=False)


def test_registered_as_mmal_types(tmp_path):
    from mmengine.registry import DATASETS, DefaultScope
    write_cifar10(str(tmp_path))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        ds = DATASETS.build(
            dict(
                type='mmal.CIFAR10', data_root=str(tmp_path), check_md5=False))
    assert isinstance(ds, CIFAR10) and len(ds) == 10
    assert DATASETS.get('mmal.CustomDataset') is CustomDataset
    assert DATASETS.get('mmal.CIFAR100') is CIFAR100


# ---------------------------------------------------------- CustomDataset

FILES = ['a/x0.png', 'a/sub/x1.png', 'b/y0.png', 'b/y1.png', 'c/z0.png']


def write_folder(root):
    """Tiny PNGs in folder-per-class layout under ``root/train``."""
    for i, rel in enumerate(FILES):
        path = osp.join(root, 'train', rel)
        os.makedirs(osp.dirname(path), exist_ok=True)
        cv2.imwrite(path, np.full((8, 8, 3), 20 * i, np.uint8))


def ids_and_labels(ds):
    return [(ds.get_data_info(i)['img_id'], ds.get_data_info(i)['gt_label'])
            for i in range(len(ds))]


def test_custom_dataset_folder_mode(tmp_path):
    from mmpretrain.datasets import CustomDataset as MMPretrainCustom
    write_folder(str(tmp_path / 'data'))
    kwargs = dict(data_root=str(tmp_path / 'data'), data_prefix='train')
    ds = CustomDataset(**kwargs)
    expected = {'train/' + rel: 'abc'.index(rel[0]) for rel in FILES}
    assert dict(ids_and_labels(ds)) == expected
    assert len(ds) == len(FILES)
    # same samples, order and labels as mmpretrain's
    ref = MMPretrainCustom(**kwargs)

    def items(d):
        return [(d.get_data_info(i)['img_path'],
                 d.get_data_info(i)['gt_label']) for i in range(len(d))]

    assert items(ref) == items(ds)
    before = ids_and_labels(ds)

    shutil.move(str(tmp_path / 'data'), str(tmp_path / 'moved'))
    moved = CustomDataset(
        data_root=str(tmp_path / 'moved'), data_prefix='train')
    assert ids_and_labels(moved) == before
    assert moved.get_data_info(0)['img_path'] != ds.get_data_info(
        0)['img_path']
    # no data_root: relative to the image prefix
    bare = CustomDataset(data_prefix=str(tmp_path / 'moved' / 'train'))
    assert [i for i, _ in ids_and_labels(bare)] == \
        [i[len('train/'):] for i, _ in before]


def test_custom_dataset_annotation_file(tmp_path):
    write_folder(str(tmp_path / 'data'))
    os.makedirs(tmp_path / 'data' / 'meta')
    listed = [('b/y1.png', 4), ('a/sub/x1.png', 2), ('c/z0.png', 0)]
    (tmp_path / 'data' / 'meta' / 'train.txt').write_text(''.join(
        f'{p} {lab}\n' for p, lab in listed))
    kwargs = dict(
        data_prefix='train',
        ann_file='meta/train.txt',
        metainfo=dict(classes=tuple('abcde')))
    ds = CustomDataset(data_root=str(tmp_path / 'data'), **kwargs)
    expected = [('train/' + p, lab) for p, lab in listed]
    assert ids_and_labels(ds) == expected
    shutil.move(str(tmp_path / 'data'), str(tmp_path / 'moved'))
    moved = CustomDataset(data_root=str(tmp_path / 'moved'), **kwargs)
    assert ids_and_labels(moved) == expected
    sub = CustomDataset(
        data_root=str(tmp_path / 'moved'), indices=[2, 0], **kwargs)
    assert ids_and_labels(sub) == [expected[2], expected[0]]

    (tmp_path / 'moved' / 'meta' /
     'bad.txt').write_text('a/x0.png 0\n../../outside.png 1\n')
    with pytest.raises(DataError) as err:
        CustomDataset(
            data_root=str(tmp_path / 'moved'),
            data_prefix='train',
            ann_file='meta/bad.txt')
    assert 'outside.png' in str(err.value) and 'bad.txt' in str(err.value)


# ---------------------------------------------------- shapes generator

TINY = dict(num_train=8, num_test=4, img_size=16)


def all_files(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            if name.endswith('.png'):
                path = osp.join(dirpath, name)
                with open(path, 'rb') as f:
                    out[osp.relpath(path, root)] = f.read()
    return out


def test_generator_seeded(tmp_path):
    a = generate_shapes_classification(str(tmp_path / 'a'), seed=3, **TINY)
    b = generate_shapes_classification(str(tmp_path / 'b'), seed=3, **TINY)
    c = generate_shapes_classification(str(tmp_path / 'c'), seed=4, **TINY)
    files_a, files_b = all_files(a['out_dir']), all_files(b['out_dir'])
    assert len(files_a) == 12
    assert files_a == files_b
    assert all_files(c['out_dir']) != files_a
    assert a['classes'] == SHAPES_CLS_CLASSES
    assert a['num_images'] == {'train': 8, 'test': 4}
    assert a['num_per_class'] == {
        'train': dict.fromkeys(a['classes'], 2),
        'test': dict.fromkeys(a['classes'], 1)
    }
    # images differ from one another and are not flat
    imgs = [
        cv2.imdecode(np.frombuffer(v, np.uint8), cv2.IMREAD_COLOR)
        for v in files_a.values()
    ]
    assert all(img.shape == (16, 16, 3) and img.std() > 5 for img in imgs)
    assert len({img.tobytes() for img in imgs}) == len(imgs)


def test_generator_idempotent_and_regenerates(tmp_path):
    out = str(tmp_path / 'shapes')
    first = generate_shapes_classification(out, **TINY)
    assert not first['skipped']
    stamps = {p: os.stat(osp.join(out, p)).st_mtime_ns for p in all_files(out)}
    again = generate_shapes_classification(out, **TINY)
    assert again['skipped'] and again == dict(first, skipped=True)
    assert {
        p: os.stat(osp.join(out, p)).st_mtime_ns
        for p in all_files(out)
    } == stamps
    # other arguments: rewritten, no stale image left behind
    small = generate_shapes_classification(
        out, num_train=4, num_test=4, img_size=16)
    assert not small['skipped']
    assert sum(p.startswith('train') for p in all_files(out)) == 4
    # an image deleted by hand: incomplete, rewritten
    os.remove(osp.join(out, next(iter(all_files(out)))))
    assert not generate_shapes_classification(
        out, num_train=4, num_test=4, img_size=16)['skipped']
    assert len(all_files(out)) == 8


def test_generator_refuses_foreign_folder(tmp_path):
    os.makedirs(tmp_path / 'train' / 'mine')
    (tmp_path / 'train' / 'mine' / 'keep.png').write_bytes(b'x')
    with pytest.raises(DataError, match='train'):
        generate_shapes_classification(str(tmp_path), **TINY)
    assert (tmp_path / 'train' / 'mine' / 'keep.png').exists()
    with pytest.raises(ConfigError):
        generate_shapes_classification(
            str(tmp_path / 'x'), classes=('blob', 'cross'))


def test_generated_folder_loads(tmp_path):
    info = generate_shapes_classification(
        str(tmp_path / 'shapes'),
        classes=('triangle', 'cross', 'circle'),
        num_train=9,
        num_test=6,
        img_size=16)
    assert info['classes'] == ('circle', 'cross', 'triangle')
    for split, n in (('train', 9), ('test', 6)):
        ds = CustomDataset(**info[split])
        assert len(ds) == n
        assert ds.CLASSES == info['classes']
        ids = collect_sample_ids(ds)
        assert len(set(ids)) == n
        for i, sid in enumerate(ids):
            part, name, _ = sid.split('/')
            assert part == split
            assert ds.CLASSES[ds.get_data_info(i)['gt_label']] == name
        counts = np.bincount(ds.get_gt_labels(), minlength=3)
        assert counts.tolist() == [n // 3] * 3
