"""Slurm start-up without a cluster.

``srun`` starts every task itself and tells it its place in ``SLURM_*``
variables; ``init_distributed('slurm')`` turns them into torch.distributed's
(gloo on CPU). Here two local processes get the variables srun would set
(and ``MASTER_ADDR`` / ``MASTER_PORT``) and make cycle 0's selection on the
session's trained model, as test_distributed's torchrun processes do: they
select what one process selects. ``tools/slurm_al_train.sh`` runs against a
fake ``srun`` on ``PATH`` that records its command line, and, for one
check, starts that command as 2 tasks.
"""
import os
import os.path as osp
import shutil
import subprocess

import pytest
import torch
from test_distributed import (_free_port, _read, _select_worker, _selection,
                              _write_config)

from conftest import REPO, TESTS, copy_run, select_cycle0

SCRIPT = osp.join(REPO, 'tools', 'slurm_al_train.sh')

#: what srun sets in each task of a 1-node step (but the per-task ids)
SLURM_STEP = dict(
    SLURM_JOB_ID='4242',
    SLURM_JOB_NAME='isal',
    SLURM_STEP_ID='0',
    SLURM_NNODES='1',
    SLURM_NODEID='0',
    SLURM_NODELIST='cpu-node[07]',
    SLURM_STEP_NODELIST='cpu-node[07]',
    SLURM_JOB_PARTITION='cpu')


def _srun_task_env(rank: int, world: int) -> dict:
    return dict(
        SLURM_STEP,
        SLURM_PROCID=str(rank),
        SLURM_LOCALID=str(rank),
        SLURM_NTASKS=str(world),
        SLURM_NPROCS=str(world),
        SLURM_TASKS_PER_NODE=str(world),
        SLURM_STEP_NUM_TASKS=str(world))


# -- the environment of a task --------------------------------------------
def test_slurm_env_from_srun_variables():
    from mmal.utils.distributed import slurm_env
    env = dict(
        _srun_task_env(1, 2), MASTER_ADDR='10.0.0.1', MASTER_PORT='29517')
    assert slurm_env(env) == dict(
        RANK='1',
        WORLD_SIZE='2',
        LOCAL_RANK='1',
        MASTER_ADDR='10.0.0.1',
        MASTER_PORT='29517')
    # no MASTER_*: the first host of a plain list, torch's default port
    plain = dict(_srun_task_env(3, 4), SLURM_NODELIST='gpu3,gpu4')
    out = slurm_env(plain)
    assert (out['RANK'], out['WORLD_SIZE']) == ('3', '4')
    assert (out['MASTER_ADDR'], out['MASTER_PORT']) == ('gpu3', '29500')


def _fake_command(folder, name: str, body: str) -> str:
    path = osp.join(str(folder), name)
    with open(path, 'w') as f:
        f.write(f'#!{shutil.which("bash")}\n' + body)
    os.chmod(path, 0o755)
    return str(folder)


def test_slurm_env_expands_a_compressed_nodelist_with_scontrol(
        tmp_path, monkeypatch):
    from mmal.utils.distributed import slurm_env
    monkeypatch.setenv(
        'PATH',
        _fake_command(
            tmp_path, 'scontrol', '[ "$1 $2 $3" = "show hostnames gpu[2-3]" ]'
            ' || exit 1\nprintf "gpu2\\ngpu3\\n"\n'))
    env = dict(_srun_task_env(0, 2), SLURM_NODELIST='gpu[2-3]')
    assert slurm_env(env)['MASTER_ADDR'] == 'gpu2'


def test_slurm_env_without_a_master_names_what_to_set(tmp_path, monkeypatch):
    from mmal.utils import UserError
    from mmal.utils.distributed import slurm_env
    monkeypatch.setenv('PATH', str(tmp_path))  # no scontrol here
    env = _srun_task_env(0, 2)  # SLURM_NODELIST=cpu-node[07]
    with pytest.raises(UserError) as e:
        slurm_env(env)
    msg = str(e.value)
    assert "SLURM_NODELIST='cpu-node[07]'" in msg
    assert 'scontrol show hostnames' in msg and 'set MASTER_ADDR' in msg
    env.pop('SLURM_NODELIST')
    with pytest.raises(
            UserError, match='neither MASTER_ADDR nor '
            'SLURM_NODELIST is set'):
        slurm_env(env)
    # not started by srun at all
    with pytest.raises(
            UserError,
            match='SLURM_PROCID and SLURM_NTASKS not '
            'set: start the processes with srun'):
        slurm_env(dict(MASTER_ADDR='127.0.0.1'))


# -- the same selection on one process and on two srun tasks ---------------
def _slurm_select_worker(rank: int, world: int, port: int, jobs: list):
    """A task of a 2-task srun step on one node: only srun's variables and
    the master's address (none of torchrun's); joins the group with
    ``init_distributed('slurm')``, then selects as test_distributed's
    torchrun workers do (their ``init_distributed`` finds the group up)."""
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK'):
        os.environ.pop(name, None)
    os.environ.update(
        _srun_task_env(rank, world),
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(port),
        CUDA_VISIBLE_DEVICES='')
    torch.set_num_threads(1)
    from mmal.utils.distributed import init_distributed
    assert init_distributed('slurm') == (rank, world)
    assert torch.distributed.get_backend() == 'gloo'
    assert (os.environ['RANK'], os.environ['WORLD_SIZE'],
            os.environ['LOCAL_RANK']) == (str(rank), str(world), str(rank))
    _select_worker(rank, world, port, jobs)


@pytest.mark.two_processes
def test_two_slurm_tasks_select_what_one_process_selects(
        fcos_cycle0, tmp_path):
    """ISAL's cycle-0 selection (sharded reference gradient, 3 LiSSA chains
    split 2 + 1, sharded scores; one image per batch, one thread) by two
    srun-started processes equals one process's."""
    from mmengine.config import Config

    from mmal.testing.benchmark import torch_threads
    config = _write_config(str(tmp_path / 'isal.py'), 'isal_fcos_shapes.py')
    one, two = (
        copy_run(
            fcos_cycle0,
            str(tmp_path / name),
            forget_experiment=True,
            rewind=True) for name in ('one', 'two'))
    with torch_threads(1):
        select_cycle0(Config.fromfile(config), one)
    torch.multiprocessing.spawn(
        _slurm_select_worker,
        args=(2, _free_port(), [(config, two)]),
        nprocs=2)
    a, b = _selection(one), _selection(two)
    assert len(a['selected']) == 4
    assert b['selected'] == a['selected']
    assert b['info']['num_scored'] == a['info']['num_scored'] > 4
    assert set(b['scores']) == set(a['scores'])
    for k, v in a['scores'].items():
        assert b['scores'][k] == pytest.approx(v, rel=1e-3)
    assert _read(osp.join(two, 'al_state.json'))['pool'] == _read(
        osp.join(one, 'al_state.json'))['pool']


# -- tools/slurm_al_train.sh -------------------------------------------------
#: a fake srun: records its arguments (one a line) and the variables it was
#: given; with FAKE_SRUN_TASKS set, starts the command as that many tasks of
#: one node, with srun's variables, and fails when one fails
FAKE_SRUN = r'''
printf '%s\n' "$@" > "$FAKE_SRUN_LOG"
printf 'PYTHONPATH=%s\nMASTER_PORT=%s\n' "$PYTHONPATH" "$MASTER_PORT" \
    > "$FAKE_SRUN_LOG.env"
[ -n "${FAKE_SRUN_TASKS:-}" ] || exit 0
while [ "$1" != python ]; do shift; done
n=$FAKE_SRUN_TASKS
pids=()
for ((i = 0; i < n; i++)); do
    SLURM_PROCID=$i SLURM_LOCALID=$i SLURM_NTASKS=$n SLURM_NPROCS=$n \
    SLURM_NNODES=1 SLURM_NODEID=0 SLURM_NODELIST=localhost \
    SLURM_JOB_ID=4242 SLURM_STEP_ID=0 "$@" &
    pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
exit $rc
'''


def _run_script(tmp_path, *args, **env):
    fake = tmp_path / 'bin'
    fake.mkdir(exist_ok=True)
    _fake_command(fake, 'srun', FAKE_SRUN)
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ('MASTER_ADDR', 'MASTER_PORT', 'RANK', 'WORLD_SIZE',
                     'LOCAL_RANK', 'PORT', 'GPUS', 'SRUN_ARGS')
    }
    env = dict(
        base,
        PATH=f'{fake}{os.pathsep}{os.environ["PATH"]}',
        FAKE_SRUN_LOG=str(tmp_path / 'srun.log'),
        OMP_NUM_THREADS='1',
        CUDA_VISIBLE_DEVICES='',
        PYTHONPATH=os.pathsep.join([TESTS,
                                    os.environ.get('PYTHONPATH', '')]),
        **env)
    return subprocess.run(['bash', SCRIPT, *args],
                          cwd=str(tmp_path),
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=300)


def test_slurm_script_needs_partition_job_name_and_config(tmp_path):
    proc = _run_script(tmp_path, 'gpu', 'isal')
    assert proc.returncode == 2
    assert proc.stderr.startswith('usage: bash ')
    assert 'PARTITION JOB_NAME CONFIG [tools/al_train.py args]' in proc.stderr
    assert not (tmp_path / 'srun.log').exists()


def test_slurm_script_builds_the_srun_command(tmp_path):
    """An experiment on 16 GPUs of two nodes: srun's options, then
    al_train.py with --launcher slurm and every other argument as given."""
    proc = _run_script(
        tmp_path,
        'gpu',
        'isal exp',
        'configs/isal_fcos_voc.py',
        'configs/random_fcos_voc.py',
        '--seeds',
        '0',
        '1',
        '--cfg-options',
        'work_dir=a b',
        GPUS='16',
        SRUN_ARGS='--time=1:00:00  --qos=low',
        PORT='29612')
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / 'srun.log') as f:
        args = f.read().splitlines()
    assert args == [
        '-p', 'gpu', '--job-name=isal exp', '--gres=gpu:8', '--ntasks=16',
        '--ntasks-per-node=8', '--cpus-per-task=5', '--kill-on-bad-exit=1',
        '--time=1:00:00', '--qos=low', 'python', '-u',
        osp.join(REPO, 'tools', 'al_train.py'), 'configs/isal_fcos_voc.py',
        '--launcher', 'slurm', 'configs/random_fcos_voc.py', '--seeds', '0',
        '1', '--cfg-options', 'work_dir=a b'
    ]
    with open(tmp_path / 'srun.log.env') as f:
        env = dict(line.split('=', 1) for line in f.read().splitlines())
    assert env['MASTER_PORT'] == '29612'
    assert osp.realpath(env['PYTHONPATH'].split(os.pathsep)[0]) == REPO
    # one run on 2 GPUs: no more tasks per node than tasks, default port
    proc = _run_script(
        tmp_path, 'gpu', 'isal', 'configs/isal_fcos_voc.py', GPUS='2')
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / 'srun.log') as f:
        args = f.read().splitlines()
    assert args[3:6] == ['--gres=gpu:2', '--ntasks=2', '--ntasks-per-node=2']
    assert args[-3:] == ['configs/isal_fcos_voc.py', '--launcher', 'slurm']
    with open(tmp_path / 'srun.log.env') as f:
        assert 'MASTER_PORT=29500' in f.read().splitlines()


@pytest.mark.two_processes
def test_slurm_script_tasks_form_one_group(tmp_path):
    """The script's command started as 2 srun tasks (no MASTER_ADDR: the
    first host of SLURM_NODELIST): both join one group, and the
    experiment's ``--resume`` check, a broadcast from rank 0, fails on
    both with the usual one-line error."""
    configs = [
        osp.join(REPO, 'configs', c)
        for c in ('random_fcos_shapes.py', 'entropy_fcos_shapes.py')
    ]
    root = str(tmp_path / 'exp')
    proc = _run_script(
        tmp_path,
        'cpu',
        'resume',
        configs[0],
        configs[1],
        '--seeds',
        '0',
        '--work-dir',
        root,
        '--resume',
        GPUS='2',
        PORT=str(_free_port()),
        FAKE_SRUN_TASKS='2')
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    errors = [
        line for line in proc.stderr.splitlines()
        if line.startswith('al_train.py: error:')
    ]
    assert errors == [
        f'al_train.py: error: --resume given but no run of the experiment '
        f'in {root} has started'
    ] * 2, proc.stderr[-3000:]
    assert not osp.exists(osp.join(root, 'experiment.json'))
