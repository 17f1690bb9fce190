"""Images the pipeline cannot decode are found before cycle 0."""
import json
import os
import os.path as osp

import cv2
import mmcv
import numpy as np
import pytest

from mmal.datasets import UndecodableImageError, check_images, image_load_cfg
from mmal.structures import ALState
from conftest import record_training, tiny_config

LOAD = image_load_cfg([dict(type='LoadImageFromFile')])


def _write_jpeg(path: str, seed: int = 0) -> None:
    img = np.random.default_rng(seed).integers(
        0, 256, (64, 64, 3), dtype=np.uint8)
    ok, buf = cv2.imencode('.jpg', img)
    assert ok
    with open(path, 'wb') as f:
        f.write(buf.tobytes())


def _truncate(path: str) -> None:
    """Keep the first 60% of the bytes, as a broken download does."""
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:int(0.6 * len(data))])


def _data_list(tmp_path, bad=('b', 'c')) -> list:
    infos = []
    for k, name in enumerate('abc'):
        path = str(tmp_path / f'{name}.jpg')
        _write_jpeg(path, k)
        if name in bad:
            _truncate(path)
        infos.append(dict(img_id=k, img_path=path))
    return infos


@pytest.fixture
def decodes(monkeypatch) -> list:
    """The paths' byte counts mmcv.imfrombytes is called on."""
    calls = []
    original = mmcv.imfrombytes

    def counting(content, *args, **kwargs):
        calls.append(len(content))
        return original(content, *args, **kwargs)

    monkeypatch.setattr(mmcv, 'imfrombytes', counting)
    return calls


def test_a_truncated_jpeg_decodes_to_none_on_mmcvs_path(tmp_path):
    path = str(tmp_path / 'x.jpg')
    _write_jpeg(path)
    _truncate(path)
    with open(path, 'rb') as f:
        assert mmcv.imfrombytes(f.read()) is None  # what LoadImageFromFile
    assert cv2.imread(path) is not None  # what a naive check sees


def test_error_names_every_bad_image_in_one_message(tmp_path):
    infos = _data_list(tmp_path)
    with pytest.raises(UndecodableImageError) as e:
        check_images(infos, LOAD, policy='error', what='pool')
    msg = str(e.value)
    assert msg.startswith('2 image(s) cannot be loaded')
    for name, sid in (('b', "'1'"), ('c', "'2'")):
        assert f'pool: sample {sid}: {tmp_path / name}.jpg' in msg
    assert 'a.jpg' not in msg
    assert msg.count('returned no image') == 2


def test_drop_returns_the_bad_images(tmp_path):
    infos = _data_list(tmp_path)
    bad = check_images(infos, LOAD, policy='drop')
    assert [(b.sample_id, b.path)
            for b in bad] == [('1', str(tmp_path / 'b.jpg')),
                              ('2', str(tmp_path / 'c.jpg'))]


def test_the_cache_decodes_only_new_or_changed_files(tmp_path, decodes):
    infos = _data_list(tmp_path)
    cache = str(tmp_path / 'work' / 'image_checks.json')
    assert len(check_images(infos, LOAD, cache)) == 2
    assert len(decodes) == 3
    assert len(check_images(infos, LOAD, cache)) == 2
    assert len(decodes) == 3  # nothing decoded again
    _write_jpeg(infos[1]['img_path'], 1)  # b.jpg repaired
    bad = check_images(infos, LOAD, cache)
    assert [b.sample_id for b in bad] == ['2']
    assert len(decodes) == 4  # only the changed file
    # another way of loading (grayscale) is another check
    check_images(infos, dict(LOAD, color_type='grayscale'), cache)
    assert len(decodes) == 7


def _dist_worker(rank: int, world: int, init_file: str, root: str) -> None:
    import torch.distributed as dist
    dist.init_process_group(
        'gloo', init_method=f'file://{init_file}', rank=rank, world_size=world)
    calls = []
    original = mmcv.imfrombytes
    mmcv.imfrombytes = lambda c, *a, **k: calls.append(1) or original(
        c, *a, **k)
    infos = [
        dict(img_id=k, img_path=osp.join(root, f'{n}.jpg'))
        for k, n in enumerate('abc')
    ]
    bad = check_images(infos, LOAD, osp.join(root, 'cache.json'))
    with open(osp.join(root, f'rank{rank}.json'), 'w') as f:
        json.dump(dict(bad=[list(b) for b in bad], decoded=len(calls)), f)
    dist.destroy_process_group()


@pytest.mark.two_processes
def test_ranks_share_the_decoding_and_agree(tmp_path):
    import torch.multiprocessing as mp
    _data_list(tmp_path)
    mp.spawn(
        _dist_worker,
        args=(2, str(tmp_path / 'init'), str(tmp_path)),
        nprocs=2)
    out = []
    for r in range(2):
        with open(tmp_path / f'rank{r}.json') as f:
            out.append(json.load(f))
    assert [o['decoded'] for o in out] == [2, 1]  # a, c | b
    assert out[0]['bad'] == out[1]['bad']
    assert [b[0] for b in out[0]['bad']] == ['1', '2']
    with open(tmp_path / 'cache.json') as f:
        assert len(next(iter(json.load(f)['checks'].values()))) == 3


def _demo_runner(work_dir: str, policy: str, **extra):
    from mmal.engine import ActiveLearningRunner
    cfg = tiny_config(
        'random_fcos_shapes.py', **{
            'al_cfg.num_cycles': 1,
            'train_cfg.max_epochs': 1,
            'al_cfg.annotation_policy': policy,
            **extra
        })
    return ActiveLearningRunner(cfg, work_dir)  # writes the demo data


def _first_val_image(work_dir: str):
    with open(osp.join(work_dir, 'data', 'annotations', 'val.json')) as f:
        image = json.load(f)['images'][0]
    return str(image['id']), osp.join(work_dir, 'data', 'images', 'val',
                                      image['file_name'])


def test_drop_keeps_undecodable_images_out_of_the_run(tmp_path, monkeypatch):
    work_dir = str(tmp_path / 'run')
    pool = _demo_runner(work_dir, 'drop').pool_view
    pool_id, pool_path = pool.sample_ids[0], pool.get_data_info(0)['img_path']
    val_id, val_path = _first_val_image(work_dir)
    _truncate(pool_path)
    _truncate(val_path)
    # every other image labeled: the training would load the bad one
    labeled = {'al_cfg.initial_size': len(pool) - 1}
    runner = _demo_runner(work_dir, 'drop', **labeled)
    trained = record_training(monkeypatch)
    state = runner.run()
    assert trained == ['cycle_0'] and 'metric' in state.record(0)
    dropped = state.meta['dropped_images']
    assert [(r['id'], r['path'])
            for r in dropped['pool']] == [(pool_id, pool_path)]
    assert 'returned no image' in dropped['pool'][0]['reason']
    for split in ('val', 'test'):  # the demo tests on its val split
        assert [(r['id'], r['path'])
                for r in dropped[split]] == [(val_id, val_path)]
    assert pool_id not in state.pool.pool_ids
    assert len(state.pool.labeled_ids) == len(pool) - 1
    with open(osp.join(work_dir, 'cycle_0', 'labeled_ids.json')) as f:
        assert pool_id not in json.load(f)
    # the test split and its COCO file leave the image out
    cfg = runner._runner_cfg(0, 'eval')
    assert cfg.test_dataloader.dataset['exclude_ids'] == [val_id]
    with open(cfg.test_evaluator['ann_file']) as f:
        coco = json.load(f)
    assert val_id not in {str(i['id']) for i in coco['images']}
    assert val_id not in {str(a['image_id']) for a in coco['annotations']}
    assert osp.isfile(osp.join(work_dir, 'image_checks.json'))

    # a labeled image that breaks later stops the rerun, naming it
    labeled_id = state.pool.labeled_ids[0]
    _truncate(
        pool.get_data_info(pool.sample_ids.index(labeled_id))['img_path'])
    with pytest.raises(
            ValueError, match=f"sample '{labeled_id}'.*labeled "
            'in cycle 0'):
        _demo_runner(work_dir, 'drop', **labeled).run()
    assert trained == ['cycle_0']


def test_an_unlabeled_image_that_breaks_later_leaves_the_pool(tmp_path):
    from mmal.engine.image_drops import check_run_images
    work_dir = str(tmp_path / 'run')
    runner = _demo_runner(work_dir, 'drop')
    state = runner.load_or_init_state()  # no check: nothing is broken
    sid = state.pool.unlabeled_ids[0]
    pool = runner.pool_view
    _truncate(pool.get_data_info(pool.sample_ids.index(sid))['img_path'])
    drops = check_run_images(runner.cfg, work_dir, runner.state_path, 'drop')
    assert drops.ids('pool') == [sid]
    saved = ALState.load(runner.state_path)
    assert sid not in saved.pool.pool_ids
    assert saved.pool.labeled_ids == state.pool.labeled_ids
    assert saved.meta['dropped_images']['pool'][0]['id'] == sid


def test_error_stops_before_any_training(tmp_path, monkeypatch):
    work_dir = str(tmp_path / 'run')
    runner = _demo_runner(work_dir, 'error')
    pool_path = runner.pool_view.get_data_info(0)['img_path']
    _, val_path = _first_val_image(work_dir)
    _truncate(pool_path)
    _truncate(val_path)
    trained = record_training(monkeypatch)
    with pytest.raises(UndecodableImageError) as e:
        runner.run()
    msg = str(e.value)
    assert f': {pool_path}: ' in msg and f': {val_path}: ' in msg
    assert 'annotation_policy="drop"' in msg
    assert trained == []
    assert not os.path.exists(runner.state_path)
