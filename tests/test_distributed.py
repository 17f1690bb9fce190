"""Several processes (torchrun, gloo on CPU) against one process.

The runs go through ``tools/dist_al_train.sh`` / ``tools/al_train.py`` in
subprocesses, as a user starts them. Training is made independent of the
process count (no random flip, frozen BN statistics, the same total batch:
4 images on 1 process, 2 x 2 on 2). Two trainings still differ by float
rounding (DDP adds gradients in another order), which could reorder near
ties on another CPU, so the selection made by 2 processes is compared on
the one-process run's model: its work dir rewound to before cycle 0's
selection, then resumed by 2 processes (sharded selection, then a DDP
training of cycle 1).
"""
import json
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys

import pytest

from conftest import REPO, tiny_cls_config, tiny_config

TESTS = osp.dirname(osp.abspath(__file__))


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


def _write_config(path: str, name: str = 'isal_fcos_shapes.py',
                  **extra) -> str:
    cfg = tiny_config(name, **{
        **_frozen_bn(name),
        'custom_imports': dict(imports=['dist_helpers'],
                               allow_failed_imports=False),
        **extra
    })
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
    if 'solver' in cfg.al_cfg.selector:
        cfg.al_cfg.selector.solver.repeats = 3
    cfg.train_dataloader.dataset.pipeline = [
        t for t in cfg.train_dataloader.dataset.pipeline
        if t['type'] not in ('RandomFlip', 'RandomCrop')
    ]
    cfg.dump(path)
    return path


def _launch(config: str, work_dir: str, nproc: int, *extra: str):
    # CPU processes (gloo) even where a GPU is visible
    env = dict(os.environ, OMP_NUM_THREADS='1', PORT=str(_free_port()),
               CUDA_VISIBLE_DEVICES='',
               PYTHONPATH=os.pathsep.join(
                   [TESTS, REPO, os.environ.get('PYTHONPATH', '')]))
    if nproc == 1:
        cmd = [sys.executable, 'tools/al_train.py', config,
               '--work-dir', work_dir, *extra]
    else:  # the same total batch of 4 images
        cmd = ['bash', 'tools/dist_al_train.sh', config, str(nproc),
               '--work-dir', work_dir, *extra,
               '--cfg-options', 'train_dataloader.batch_size=2']
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


def _check_ok(proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope='module')
def one_process(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('one')
    config = _write_config(str(tmp / 'cfg.py'))
    work_dir = str(tmp / 'run')
    _check_ok(_launch(config, work_dir, 1))
    return work_dir


def _rewound_copy(src: str, dst: str, forget_experiment=False) -> str:
    """A copy of the finished run in ``src`` as it was before cycle 0's
    selection: the same trained cycle-0 model, nothing selected yet.
    ``forget_experiment``: drop the recorded fingerprint, so that a config
    with a test selector may continue it (it records its own)."""
    shutil.copytree(src, dst)
    state_file = osp.join(dst, 'al_state.json')
    state = _read(state_file)
    if forget_experiment:
        for key in ('experiment', 'settings', 'changes'):
            state['meta'].pop(key)
    first = {k: v for k, v in state['cycles'][0].items()
             if k not in ('num_selected', 'selected_cost')}
    first['done'] = ['train', 'evaluate']
    first['checkpoint'] = first['checkpoint'].replace(src, dst)
    state['cycles'] = [first]
    state['pool']['labeled'] = {
        sid: c for sid, c in state['pool']['labeled'].items() if c == 0}
    with open(state_file, 'w') as f:
        json.dump(state, f)
    os.remove(osp.join(dst, 'cycle_0', 'selection.json'))
    shutil.rmtree(osp.join(dst, 'cycle_1'))
    return dst


def test_two_processes_select_what_one_process_selects(one_process,
                                                       tmp_path):
    config = _write_config(str(tmp_path / 'cfg.py'))
    work_dir = _rewound_copy(one_process, str(tmp_path / 'run'))
    log_start = os.path.getsize(osp.join(work_dir, 'al.log'))  # appended to
    proc = _launch(config, work_dir, 2)
    _check_ok(proc)
    assert 'Distributed training: True' in proc.stdout + proc.stderr
    one = _read(osp.join(one_process, 'cycle_0', 'selection.json'))
    two = _read(osp.join(work_dir, 'cycle_0', 'selection.json'))
    assert two['info']['num_scored'] == one['info']['num_scored'] > 4
    assert two['selected'] == one['selected']
    assert set(two['scores']) == set(one['scores'])
    for k, v in one['scores'].items():
        assert two['scores'][k] == pytest.approx(v, rel=1e-3)
    state_one = _read(osp.join(one_process, 'al_state.json'))
    state_two = _read(osp.join(work_dir, 'al_state.json'))
    assert state_two['pool'] == state_one['pool']
    assert [r['done'] for r in state_two['cycles']] == [
        ['train', 'evaluate', 'select'], ['train', 'evaluate']]
    with open(osp.join(work_dir, 'al.log')) as f:  # rank 0 logs, once
        f.seek(log_start)
        assert f.read().count('cycle 0: selected') == 1


def test_classification_two_processes_select_what_one_process_selects(
        tmp_path):
    """The classifier's selection (closed-form scores, sharded) on 2
    processes equals the one-process selection on the same model."""
    config = _write_cls_config(str(tmp_path / 'cfg.py'))
    one = str(tmp_path / 'one')
    _check_ok(_launch(config, one, 1))
    work_dir = _rewound_copy(one, str(tmp_path / 'two'))
    _check_ok(_launch(config, work_dir, 2))
    a = _read(osp.join(one, 'cycle_0', 'selection.json'))
    b = _read(osp.join(work_dir, 'cycle_0', 'selection.json'))
    assert b['info']['num_scored'] == a['info']['num_scored'] == 32 - 8
    assert b['selected'] == a['selected']
    for k, v in a['scores'].items():
        assert b['scores'][k] == pytest.approx(v, rel=1e-3)
    assert _read(osp.join(work_dir, 'al_state.json'))['pool'] == _read(
        osp.join(one, 'al_state.json'))['pool']


BASELINES = {
    'entropy': 'EntropySelector',
    'coreset': 'CoresetSelector',
    'stability': 'LocalizationStabilitySelector',
    'learning-loss': 'LearningLossSelector',
}


# Every selector on detection, and one classification pass (core-set's):
# the sharding and gathering (pool_pass) are the same code for every task
# and selector, and each 2-process run costs about a minute on 2 cores
# (ISAL's classification sharding: the test above).
@pytest.mark.parametrize('method,task', [
    ('entropy', 'detection'), ('coreset', 'detection'),
    ('coreset', 'classification'),
    ('stability', 'detection'),  # localization stability: boxes only
    ('learning-loss', 'detection')])
def test_baselines_run_two_cycles_and_select_alike_on_two_processes(
        method, task, tmp_path):
    """A whole two-cycle run of the selector's demo config (one process);
    then its cycle-0 selection made again by 2 processes on the same
    model. Inference in batches of 1 (``batch_size=1``), one thread per
    process: every score is then the same bits whatever the sharding
    (localization stability: the noise is seeded per image and level)."""
    config = str(tmp_path / 'cfg.py')
    if task == 'detection':
        extra = {'al_cfg.selector.batch_size': 1}
        if method == 'stability':  # reference boxes of a 2-epoch model
            extra['al_cfg.selector.score_thr'] = 0.02
        _write_config(config, f'{method}_fcos_shapes.py', **extra)
    else:
        _write_cls_config(config, f'{method}_resnet18-small_shapes-cls.py',
                          **{'al_cfg.selector.batch_size': 1})
    one = str(tmp_path / 'one')
    _check_ok(_launch(config, one, 1))
    state = _read(osp.join(one, 'al_state.json'))
    assert [r['done'] for r in state['cycles']] == [
        ['train', 'evaluate', 'select'], ['train', 'evaluate']]
    assert state['cycles'][0]['num_selected'] == 4
    assert state['cycles'][1]['images'] == 8 + 4
    a = _read(osp.join(one, 'cycle_0', 'selection.json'))
    assert a['selector'] == BASELINES[method]
    labeled_at_0 = [k for k, c in state['pool']['labeled'].items() if c == 0]
    assert len(labeled_at_0) == 8
    assert not set(a['selected']) & set(labeled_at_0)
    assert set(a['selected']) <= set(a['scores'])
    work_dir = _rewound_copy(one, str(tmp_path / 'two'))
    _check_ok(_launch(config, work_dir, 2))
    b = _read(osp.join(work_dir, 'cycle_0', 'selection.json'))
    assert b['selected'] == a['selected']
    assert b['scores'] == a['scores']


def test_annotation_mode_exports_and_imports_on_two_processes(tmp_path):
    """Annotation mode on 2 processes: cycle 0 trains under DDP and
    exports (every rank predicts its share, rank 0 writes); the labels of
    a scripted annotator are imported by 2 processes, which train cycle 1
    on them."""
    from mmal.tasks import DetectionTask
    data = str(tmp_path / 'data')
    DetectionTask().generate_demo_data(data, num_train=24, num_val=8,
                                       img_size=64, max_objects=3, seed=0)
    gt = _read(osp.join(data, 'annotations', 'train.json'))
    keep = {im['id'] for im in gt['images'][:8]}
    labeled = str(tmp_path / 'labeled.json')
    with open(labeled, 'w') as f:
        json.dump(dict(gt, images=[im for im in gt['images']
                                   if im['id'] in keep],
                       annotations=[a for a in gt['annotations']
                                    if a['image_id'] in keep]), f)
    config = _write_config(
        str(tmp_path / 'cfg.py'), 'random_fcos_shapes.py', **{
            'al_cfg.annotation': dict(
                image_dir=osp.join(data, 'images', 'train'),
                labeled_ann_file=labeled, pre_annotation_score_thr=0.01)})
    work_dir = str(tmp_path / 'run')
    _check_ok(_launch(config, work_dir, 2))
    export = osp.join(work_dir, 'cycle_0', 'to_annotate')
    manifest = _read(osp.join(export, 'manifest.json'))
    selected = [int(i) for i in manifest['selected']]
    assert len(selected) == 4 and not set(selected) & keep
    coco = _read(osp.join(export, 'annotations_coco.json'))
    assert [im['id'] for im in coco['images']] == selected
    answer = dict(
        images=[im for im in gt['images'] if im['id'] in selected],
        annotations=[a for a in gt['annotations']
                     if a['image_id'] in selected],
        categories=gt['categories'])
    path = str(tmp_path / 'answer.json')
    with open(path, 'w') as f:
        json.dump(answer, f)
    _check_ok(_launch(config, work_dir, 2, '--annotations', path))
    state = _read(osp.join(work_dir, 'al_state.json'))
    assert [r['done'] for r in state['cycles']] == [
        ['train', 'evaluate', 'select'], ['train', 'evaluate']]
    assert sorted(int(k) for k, c in state['pool']['labeled'].items()
                  if c == 1) == sorted(selected)
    assert state['cycles'][1]['cost'] == len(
        [a for a in gt['annotations'] if a['image_id'] in keep | set(
            selected)])
    pool = _read(osp.join(work_dir, 'annotations', 'pool.json'))
    assert sorted({a['image_id'] for a in pool['annotations']}) == sorted(
        keep | set(selected))


def test_a_killed_rank_then_rerun_finishes_consistently(one_process,
                                                        tmp_path):
    marker = str(tmp_path / 'killed_')
    config = _write_config(
        str(tmp_path / 'cfg.py'), **{
            'al_cfg.selector.type': 'mmal.DieOnceInfluenceSelector',
            'al_cfg.selector.marker': marker + 'scoring',
            'custom_hooks': [
                dict(type='mmal.KillRankOnceHook', marker=marker + 'training',
                     cycle=1, epoch=2)
            ],
        })
    # cycle 0's model is the one-process run's, so that the selection can
    # be compared with its selection whatever the float rounding
    work_dir = _rewound_copy(one_process, str(tmp_path / 'run'),
                             forget_experiment=True)
    state_file = osp.join(work_dir, 'al_state.json')
    sel_file = osp.join(work_dir, 'cycle_0', 'selection.json')

    # rank 1 dies while scoring cycle 0's pool: nothing of it is recorded
    assert _launch(config, work_dir, 2).returncode != 0
    assert osp.exists(marker + 'scoring')
    assert _read(state_file)['cycles'][0]['done'] == ['train', 'evaluate']
    assert not osp.exists(sel_file)

    # the rerun selects; rank 1 dies after epoch 1 of cycle 1's training
    assert _launch(config, work_dir, 2).returncode != 0
    assert osp.exists(marker + 'training')
    state = _read(state_file)
    assert state['cycles'][0]['done'] == ['train', 'evaluate', 'select']
    assert len(state['cycles']) == 1 or 'train' not in state['cycles'][1][
        'done']
    selection = _read(sel_file)

    # the last rerun finishes; the selection was made once and kept
    _check_ok(_launch(config, work_dir, 2))
    state = _read(state_file)
    assert [r['done'] for r in state['cycles']] == [
        ['train', 'evaluate', 'select'], ['train', 'evaluate']]
    assert _read(sel_file) == selection
    one = _read(osp.join(one_process, 'cycle_0', 'selection.json'))
    assert selection['selected'] == one['selected']
    assert state['pool'] == _read(osp.join(one_process,
                                           'al_state.json'))['pool']


def _helpers_worker(rank: int, world: int, init_file: str, out_dir: str):
    import torch
    import torch.distributed as dist
    from mmal.utils.distributed import (broadcast_from_master,
                                        gather_or_raise, shard)
    dist.init_process_group('gloo', init_method=f'file://{init_file}',
                            rank=rank, world_size=world)
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


def test_shards_cover_each_id_once_and_errors_reach_every_rank(tmp_path):
    import torch.multiprocessing as mp
    mp.spawn(_helpers_worker, args=(2, str(tmp_path / 'init'),
                                    str(tmp_path)), nprocs=2)
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


def test_an_experiment_through_dist_al_train(tmp_path):
    """Two configs x one seed by 2 processes: dist_al_train.sh takes the
    experiment's other configs among its arguments; rank 0 writes each
    run's state and the plan, every run finishes. One cycle each (the
    sharded selection is tested above)."""
    configs = [
        _write_cls_config(str(tmp_path / f'{name}.py'),
                          f'{name.split("_")[0]}_resnet18-small_shapes-cls'
                          '.py', **{'al_cfg.num_cycles': 1})
        for name in ('random_tiny', 'coreset_tiny')
    ]
    root = str(tmp_path / 'exp')
    env = dict(os.environ, OMP_NUM_THREADS='1', PORT=str(_free_port()),
               CUDA_VISIBLE_DEVICES='',
               PYTHONPATH=os.pathsep.join(
                   [TESTS, REPO, os.environ.get('PYTHONPATH', '')]))
    proc = subprocess.run(
        ['bash', 'tools/dist_al_train.sh', configs[0], '2', configs[1],
         '--seeds', '3', '--work-dir', root, '--cfg-options',
         'train_dataloader.batch_size=2'],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
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
        initial.append(sorted(i for i, c in state['pool']['labeled'].items()
                              if c == 0))
    assert initial[0] == initial[1]
