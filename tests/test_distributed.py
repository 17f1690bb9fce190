"""Several processes (gloo on CPU) against one process.

The selection claims run on one trained cycle-0 model per task (the
session's, see conftest): its work dir is copied as it was before cycle 0's
selection, one process selects on one copy, and two processes
(``torch.multiprocessing``, joined as torchrun's processes join with
``init_distributed('pytorch')``) select on another. One launch makes every
selector's 2-process selection. Inference runs one image at a time
(``batch_size=1``) and one thread per process, so every score is computed
alike whatever the sharding; the picks are compared exactly.

Through ``tools/dist_al_train.sh`` (torchrun), as a user starts it: a run
whose rank dies while scoring and then while training under DDP, resumed
until it finishes; annotation mode; an experiment of two configs.
"""
import json
import os
import os.path as osp
import socket
import subprocess

import pytest
import torch

from conftest import (REPO, TESTS, copy_run, select_cycle0, tiny_cls_config,
                      tiny_config, with_class_quality)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _read(path):
    with open(path) as f:
        return json.load(f)


def _frozen_bn(name: str) -> dict:
    """No per-rank batch statistics (learning loss wraps the model)."""
    model = 'model.model' if name.startswith('learning-loss_') else 'model'
    return {f'{model}.backbone.norm_eval': True}


def _one_image_batches(cfg) -> None:
    """Selection passes one image at a time (random has no passes): each
    image's score is then computed alike whatever the sharding."""
    if cfg.al_cfg.selector.type != 'mmal.RandomSelector':
        cfg.al_cfg.selector.setdefault('batch_size', 1)


def _write_config(path: str,
                  name: str = 'isal_fcos_shapes.py',
                  **extra) -> str:
    cfg = tiny_config(
        name, **{
            **_frozen_bn(name), 'custom_imports': dict(
                imports=['dist_helpers'], allow_failed_imports=False),
            **extra
        })
    _one_image_batches(cfg)
    if 'solver' in cfg.al_cfg.selector:  # ISAL
        cfg.al_cfg.selector.solver.repeats = 3  # chains split 2 + 1
        cfg.al_cfg.selector.setdefault('score_thr', 0.02)  # a 2-epoch model
    pipeline = cfg.train_dataloader.dataset.pipeline
    cfg.train_dataloader.dataset.pipeline = [
        t for t in pipeline if t['type'] != 'RandomFlip'
    ]
    cfg.dump(path)
    return path


def _write_cls_config(path: str,
                      name: str = 'isal_resnet18-small_shapes-cls.py',
                      **extra) -> str:
    """The classification demo, shrunk, independent of the process count
    (frozen BN statistics, no random crop or flip); 3 chains split 2 + 1."""
    cfg = tiny_cls_config(name, **{**_frozen_bn(name), **extra})
    _one_image_batches(cfg)
    if 'solver' in cfg.al_cfg.selector:
        cfg.al_cfg.selector.solver.repeats = 3
    cfg.train_dataloader.dataset.pipeline = [
        t for t in cfg.train_dataloader.dataset.pipeline
        if t['type'] not in ('RandomFlip', 'RandomCrop')
    ]
    cfg.dump(path)
    return path


def _env(**extra) -> dict:
    # CPU processes (gloo) even where a GPU is visible
    return dict(
        os.environ,
        OMP_NUM_THREADS='1',
        PORT=str(_free_port()),
        CUDA_VISIBLE_DEVICES='',
        PYTHONPATH=os.pathsep.join(
            [TESTS, REPO, os.environ.get('PYTHONPATH', '')]),
        **extra)


def _launch(config: str, work_dir: str, *extra: str):
    """``tools/dist_al_train.sh CONFIG 2`` with the same total batch of 4
    images as one process."""
    cmd = [
        'bash', 'tools/dist_al_train.sh', config, '2', '--work-dir', work_dir,
        *extra, '--cfg-options', 'train_dataloader.batch_size=2'
    ]
    return subprocess.run(
        cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)


def _check_ok(proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


# -- the same selection on one and on two processes ------------------------
def _select_worker(rank: int, world: int, port: int, jobs: list) -> None:
    """A rank of a 2-process selection: joins the group as a process of
    torchrun does, then makes cycle 0's selection of each ``(config, work
    dir)`` in ``jobs``."""
    os.environ.update(
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        CUDA_VISIBLE_DEVICES='')
    torch.set_num_threads(1)
    from mmengine.config import Config

    from mmal.utils import register_all_modules
    from mmal.utils.distributed import init_distributed
    register_all_modules('mmdet')
    assert init_distributed('pytorch') == (rank, world)
    for config, work_dir in jobs:
        select_cycle0(Config.fromfile(config), work_dir)
    torch.distributed.destroy_process_group()


#: name -> (config, task, selector class)
SELECTIONS = {
    'isal': ('isal_fcos_shapes.py', 'detection', 'InfluenceSelector'),
    'isal-cls': ('isal_resnet18-small_shapes-cls.py', 'classification',
                 'InfluenceSelector'),
    'entropy': ('entropy_fcos_shapes.py', 'detection', 'EntropySelector'),
    'coreset': ('coreset_fcos_shapes.py', 'detection', 'CoresetSelector'),
    'coreset-cls': ('coreset_resnet18-small_shapes-cls.py', 'classification',
                    'CoresetSelector'),
    'stability': ('stability_fcos_shapes.py', 'detection',
                  'LocalizationStabilitySelector'),
    'learning-loss': ('learning-loss_fcos_shapes.py', 'detection',
                      'LearningLossSelector'),
    'ppal': ('ppal_fcos_shapes.py', 'detection', 'PPALSelector'),
}


@pytest.fixture(scope='module')
def selections(tmp_path_factory, fcos_cycle0, cls_cycle0, ll_fcos_cycle0):
    """Cycle 0's selection of every selector in :data:`SELECTIONS`, made by
    one process (this one, one thread) and by two (one launch for all), on
    copies of the same trained model."""
    from mmengine.config import Config

    from mmal.testing.benchmark import torch_threads
    tmp = tmp_path_factory.mktemp('selections')
    trained = dict(detection=fcos_cycle0, classification=cls_cycle0)
    out, jobs = {}, []
    for name, (config, task, _) in SELECTIONS.items():
        path = str(tmp / f'{name}.py')
        if task == 'detection':
            extra = {}
            if name == 'stability':  # reference boxes of a 2-epoch model
                extra['al_cfg.selector.score_thr'] = 0.02
            _write_config(path, config, **extra)
        else:
            _write_cls_config(path, config)
        src = ll_fcos_cycle0 if name == 'learning-loss' else trained[task]
        one = copy_run(
            src, str(tmp / name / 'one'), forget_experiment=True, rewind=True)
        two = copy_run(
            src, str(tmp / name / 'two'), forget_experiment=True, rewind=True)
        if name == 'ppal':
            one, two = with_class_quality(one), with_class_quality(two)
        with torch_threads(1):
            select_cycle0(Config.fromfile(path), one)
        out[name] = (one, two)
        jobs.append((path, two))
    torch.multiprocessing.spawn(
        _select_worker, args=(2, _free_port(), jobs), nprocs=2)
    return out


def _selection(work_dir):
    return _read(osp.join(work_dir, 'cycle_0', 'selection.json'))


@pytest.mark.two_processes
@pytest.mark.parametrize('name', ['isal', 'isal-cls'])
def test_isal_selects_the_same_on_two_processes(selections, name):
    """ISAL: sharded reference gradient, LiSSA chains (3, split 2 + 1) and
    scores on 2 processes select what one process selects."""
    one, two = selections[name]
    a, b = _selection(one), _selection(two)
    assert a['selector'] == b['selector'] == 'InfluenceSelector'
    expected = 32 - 8 if name == 'isal-cls' else None
    assert b['info']['num_scored'] == a['info']['num_scored'] > 4
    if expected is not None:
        assert a['info']['num_scored'] == expected
    assert b['selected'] == a['selected']
    assert set(b['scores']) == set(a['scores'])
    for k, v in a['scores'].items():
        assert b['scores'][k] == pytest.approx(v, rel=1e-3)
    assert _read(osp.join(two, 'al_state.json'))['pool'] == _read(
        osp.join(one, 'al_state.json'))['pool']
    with open(osp.join(two, 'al.log')) as f:  # rank 0 logs, once
        assert f.read().count('cycle 0: selected 4 images') == 1


@pytest.mark.two_processes
@pytest.mark.parametrize('name', [
    'entropy', 'coreset', 'coreset-cls', 'stability', 'learning-loss', 'ppal'
])
def test_baselines_select_the_same_on_two_processes(selections, name):
    """Every baseline's cycle-0 selection (one process) takes 4 unlabeled
    images and labels them for cycle 1; 2 processes select the same and
    give every image the same score (batches of 1, one thread: the same
    bits whatever the sharding; localization stability's noise is seeded
    per image and level)."""
    one, two = selections[name]
    state = _read(osp.join(one, 'al_state.json'))
    assert state['cycles'][0]['done'] == ['train', 'evaluate', 'select']
    assert state['cycles'][0]['num_selected'] == 4
    labeled_at_0 = [k for k, c in state['pool']['labeled'].items() if c == 0]
    labeled_at_1 = [k for k, c in state['pool']['labeled'].items() if c == 1]
    assert len(labeled_at_0) == 8
    a = _selection(one)
    assert a['selector'] == SELECTIONS[name][2]
    assert sorted(a['selected']) == sorted(labeled_at_1)
    assert not set(a['selected']) & set(labeled_at_0)
    assert set(a['selected']) <= set(a['scores'])
    b = _selection(two)
    assert b['selected'] == a['selected']
    assert b['scores'] == a['scores']
    assert _read(osp.join(two, 'al_state.json'))['pool'] == state['pool']


# -- through tools/dist_al_train.sh ------------------------------------------
@pytest.mark.two_processes
def test_annotation_mode_exports_and_imports_on_two_processes(tmp_path):
    """Annotation mode on 2 processes: cycle 0 trains under DDP and
    exports (every rank predicts its share, rank 0 writes); the labels of
    a scripted annotator are imported by 2 processes, which train cycle 1
    on them."""
    from mmal.tasks import DetectionTask
    data = str(tmp_path / 'data')
    DetectionTask().generate_demo_data(
        data, num_train=24, num_val=8, img_size=64, max_objects=3, seed=0)
    gt = _read(osp.join(data, 'annotations', 'train.json'))
    keep = {im['id'] for im in gt['images'][:8]}
    labeled = str(tmp_path / 'labeled.json')
    with open(labeled, 'w') as f:
        json.dump(
            dict(
                gt,
                images=[im for im in gt['images'] if im['id'] in keep],
                annotations=[
                    a for a in gt['annotations'] if a['image_id'] in keep
                ]), f)
    config = _write_config(
        str(tmp_path / 'cfg.py'), 'random_fcos_shapes.py', **{
            'al_cfg.annotation': dict(
                image_dir=osp.join(data, 'images', 'train'),
                labeled_ann_file=labeled,
                pre_annotation_score_thr=0.01),
            'train_cfg.max_epochs': 1,
            'train_cfg.val_interval': 1,
        })
    work_dir = str(tmp_path / 'run')
    _check_ok(_launch(config, work_dir))
    export = osp.join(work_dir, 'cycle_0', 'to_annotate')
    manifest = _read(osp.join(export, 'manifest.json'))
    selected = [int(i) for i in manifest['selected']]
    assert len(selected) == 4 and not set(selected) & keep
    coco = _read(osp.join(export, 'annotations_coco.json'))
    assert [im['id'] for im in coco['images']] == selected
    answer = dict(
        images=[im for im in gt['images'] if im['id'] in selected],
        annotations=[
            a for a in gt['annotations'] if a['image_id'] in selected
        ],
        categories=gt['categories'])
    path = str(tmp_path / 'answer.json')
    with open(path, 'w') as f:
        json.dump(answer, f)
    proc = _launch(config, work_dir, '--annotations', path)
    _check_ok(proc)
    assert 'Distributed training: True' in proc.stdout + proc.stderr
    state = _read(osp.join(work_dir, 'al_state.json'))
    assert [r['done']
            for r in state['cycles']] == [['train', 'evaluate', 'select'],
                                          ['train', 'evaluate']]
    assert sorted(
        int(k) for k, c in state['pool']['labeled'].items()
        if c == 1) == sorted(selected)
    assert state['cycles'][1]['cost'] == len([
        a for a in gt['annotations'] if a['image_id'] in keep | set(selected)
    ])
    pool = _read(osp.join(work_dir, 'annotations', 'pool.json'))
    assert sorted({a['image_id']
                   for a in pool['annotations']}) == sorted(keep
                                                            | set(selected))


@pytest.mark.two_processes
def test_a_killed_rank_then_rerun_finishes_consistently(
        selections, fcos_cycle0, tmp_path):
    """torchrun's rank 1 dies while scoring, then during cycle 1's DDP
    training; each rerun continues, and the selection equals the one
    process's on the same model."""
    marker = str(tmp_path / 'killed_')
    config = _write_config(
        str(tmp_path / 'cfg.py'), **{
            'al_cfg.selector.type': 'mmal.DieOnceInfluenceSelector',
            'al_cfg.selector.marker': marker + 'scoring',
            'custom_hooks': [
                dict(
                    type='mmal.KillRankOnceHook',
                    marker=marker + 'training',
                    cycle=1,
                    epoch=2)
            ],
        })
    # cycle 0's model is the session's, so that the selection can be
    # compared with the one process's whatever the float rounding
    work_dir = copy_run(
        fcos_cycle0,
        str(tmp_path / 'run'),
        forget_experiment=True,
        rewind=True)
    state_file = osp.join(work_dir, 'al_state.json')
    sel_file = osp.join(work_dir, 'cycle_0', 'selection.json')

    # rank 1 dies while scoring cycle 0's pool: nothing of it is recorded
    assert _launch(config, work_dir).returncode != 0
    assert osp.exists(marker + 'scoring')
    assert _read(state_file)['cycles'][0]['done'] == ['train', 'evaluate']
    assert not osp.exists(sel_file)

    # the rerun selects; rank 1 dies after epoch 2 of cycle 1's training
    assert _launch(config, work_dir).returncode != 0
    assert osp.exists(marker + 'training')
    state = _read(state_file)
    assert state['cycles'][0]['done'] == ['train', 'evaluate', 'select']
    assert len(
        state['cycles']) == 1 or 'train' not in state['cycles'][1]['done']
    selection = _read(sel_file)

    # the last rerun finishes; the selection was made once and kept
    proc = _launch(config, work_dir)
    _check_ok(proc)
    assert 'Distributed training: True' in proc.stdout + proc.stderr
    state = _read(state_file)
    assert [r['done']
            for r in state['cycles']] == [['train', 'evaluate', 'select'],
                                          ['train', 'evaluate']]
    assert _read(sel_file) == selection
    one = selections['isal'][0]
    assert selection['selected'] == _selection(one)['selected']
    assert state['pool'] == _read(osp.join(one, 'al_state.json'))['pool']


def _helpers_worker(rank: int, world: int, init_file: str, out_dir: str):
    import torch
    import torch.distributed as dist

    from mmal.utils.distributed import (broadcast_from_master, gather_or_raise,
                                        shard)
    dist.init_process_group(
        'gloo', init_method=f'file://{init_file}', rank=rank, world_size=world)
    items = [f'id{i}' for i in range(7)]
    mine = shard(items)
    parts = gather_or_raise(lambda: mine, 'sharding')
    picked = broadcast_from_master(f'from rank {rank}')

    def fail_on_rank_1():
        if rank == 1:
            raise ValueError('bad image id7')
        return torch.ones(2)

    try:
        gather_or_raise(fail_on_rank_1, 'scoring')
        error = None
    except Exception as e:
        error = f'{type(e).__name__}: {e}'
    with open(osp.join(out_dir, f'rank{rank}.json'), 'w') as f:
        json.dump(dict(parts=parts, picked=picked, error=error), f)
    dist.destroy_process_group()


@pytest.mark.two_processes
def test_shards_cover_each_id_once_and_errors_reach_every_rank(tmp_path):
    import torch.multiprocessing as mp
    mp.spawn(
        _helpers_worker,
        args=(2, str(tmp_path / 'init'), str(tmp_path)),
        nprocs=2)
    out = [_read(str(tmp_path / f'rank{r}.json')) for r in range(2)]
    for o in out:
        assert o['parts'] == [['id0', 'id2', 'id4', 'id6'],
                              ['id1', 'id3', 'id5']]  # no padding
        assert o['picked'] == 'from rank 0'
    # the failing rank raises its own error, the other one names it
    assert out[1]['error'] == 'ValueError: bad image id7'
    assert out[0]['error'] == ('RuntimeError: scoring failed on rank 1: '
                               'ValueError: bad image id7')


def test_per_image_losses_never_reduce_across_ranks(monkeypatch):
    """mmdet's reduce_mean (FCOS's num_pos) stays local in an adapter."""
    import torch
    import torch.distributed as dist
    from mmdet.utils import reduce_mean

    from mmal.models import BaseModelAdapter
    calls = []
    monkeypatch.setattr(dist, 'is_initialized', lambda: True)
    monkeypatch.setattr(dist, 'get_world_size', lambda *a, **k: 2)
    monkeypatch.setattr(dist, 'all_reduce',
                        lambda t, *a, **k: calls.append(t.clone()))
    x = torch.tensor(6.0)
    reduce_mean(x)
    assert len(calls) == 1  # what a per-image loss must not do
    with BaseModelAdapter.local_reductions():
        assert float(reduce_mean(x)) == 6.0
    assert len(calls) == 1
    assert dist.is_initialized()  # restored


@pytest.mark.two_processes
def test_an_experiment_through_dist_al_train(tmp_path):
    """Two configs x one seed by 2 processes: dist_al_train.sh takes the
    experiment's other configs among its arguments; rank 0 writes each
    run's state and the plan, every run finishes. One cycle of one epoch
    each (the sharded selection is tested above)."""
    configs = [
        _write_cls_config(
            str(tmp_path / f'{name}.py'),
            f'{name.split("_")[0]}_resnet18-small_shapes-cls.py', **{
                'al_cfg.num_cycles': 1,
                'train_cfg.max_epochs': 1,
                'train_cfg.val_interval': 1
            }) for name in ('random_tiny', 'coreset_tiny')
    ]
    root = str(tmp_path / 'exp')
    proc = subprocess.run([
        'bash', 'tools/dist_al_train.sh', configs[0], '2', configs[1],
        '--seeds', '3', '--work-dir', root, '--cfg-options',
        'train_dataloader.batch_size=2'
    ],
                          cwd=REPO,
                          env=_env(),
                          capture_output=True,
                          text=True,
                          timeout=600)
    _check_ok(proc)
    assert 'Distributed training: True' in proc.stdout + proc.stderr
    plan = _read(osp.join(root, 'experiment.json'))['runs']
    assert [(r['name'], r['seed']) for r in plan] == [('random_tiny', 3),
                                                      ('coreset_tiny', 3)]
    initial = []
    for name in ('random_tiny', 'coreset_tiny'):
        state = _read(osp.join(root, name, 'seed_3', 'al_state.json'))
        assert state['meta']['stop']['reason'] == 'num_cycles'
        assert state['meta']['experiment']['al_cfg.seed'] == 3
        assert len(state['pool']['labeled']) == 8
        assert 'metric' in state['cycles'][0]
        initial.append(
            sorted(i for i, c in state['pool']['labeled'].items() if c == 0))
    assert initial[0] == initial[1]
