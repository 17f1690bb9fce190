"""Several processes (torchrun, gloo on CPU) against one process.

The runs go through ``tools/dist_al_train.sh`` / ``tools/al_train.py`` in
subprocesses, as a user starts them. Training is made independent of the
process count (no random flip, frozen BN statistics, the same total batch:
4 images on 1 process, 2 x 2 on 2), so the models agree to float rounding
and the selection, sharded over ranks, must agree exactly.
"""
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest

from conftest import REPO, tiny_config

TESTS = osp.dirname(osp.abspath(__file__))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _read(path):
    with open(path) as f:
        return json.load(f)


def _write_config(path: str, **extra) -> str:
    cfg = tiny_config(**{
        'model.backbone.norm_eval': True,  # no per-rank batch statistics
        'al_cfg.selector.score_thr': 0.02,  # a 2-epoch model scores low
        'custom_imports': dict(imports=['dist_helpers'],
                               allow_failed_imports=False),
        **extra
    })
    cfg.al_cfg.selector.solver.repeats = 3  # chains split 2 + 1 over ranks
    pipeline = cfg.train_dataloader.dataset.pipeline
    cfg.train_dataloader.dataset.pipeline = [
        t for t in pipeline if t['type'] != 'RandomFlip'
    ]
    cfg.dump(path)
    return path


def _launch(config: str, work_dir: str, nproc: int):
    env = dict(os.environ, OMP_NUM_THREADS='1', PORT=str(_free_port()),
               PYTHONPATH=os.pathsep.join(
                   [TESTS, REPO, os.environ.get('PYTHONPATH', '')]))
    if nproc == 1:
        cmd = [sys.executable, 'tools/al_train.py', config,
               '--work-dir', work_dir]
    else:  # the same total batch of 4 images
        cmd = ['bash', 'tools/dist_al_train.sh', config, str(nproc),
               '--work-dir', work_dir,
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


def test_two_processes_select_what_one_process_selects(one_process,
                                                       tmp_path):
    config = _write_config(str(tmp_path / 'cfg.py'))
    work_dir = str(tmp_path / 'run')
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
        assert f.read().count('cycle 0: selected') == 1


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
    work_dir = str(tmp_path / 'run')
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
