"""An experiment (configs x seeds) through tools/al_train.py, as a user
runs it: the layout, the shared initial sets, skipping finished runs,
resuming an interrupted one, the AL curves in the visualizer, and the
report on the result."""
import hashlib
import json
import os
import os.path as osp
import runpy
import shutil
import subprocess
import sys

import pytest

from mmal.analysis import make_report
from mmal.engine.al_experiment import default_experiment_name, plan_runs
from mmal.utils import ConfigError
from conftest import REPO, tiny_cls_config

NAMES = ('random_tiny', 'entropy_tiny')


def _write_configs(tmp, **extra):
    """The classification demo's random and entropy configs, shrunk (one
    epoch a cycle: the experiment's layout and bookkeeping are the claims
    here); ``extra``: overrides by config name."""
    paths = []
    for name in NAMES:
        selector = name.split('_')[0]
        cfg = tiny_cls_config(
            f'{selector}_resnet18-small_shapes-cls.py', **{
                'train_cfg.max_epochs': 1,
                'train_cfg.val_interval': 1,
                **extra.get(name, {})
            })
        path = osp.join(str(tmp), f'{name}.py')
        cfg.dump(path)
        paths.append(path)
    return paths


def _al_train(*args):
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    return subprocess.run([sys.executable, 'tools/al_train.py', *args],
                          cwd=REPO,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=900)


def _refused(monkeypatch, capsys, *args) -> str:
    """tools/al_train.py's main() in this process with ``args``: it must
    exit with status 2 (a user's mistake); returns what it printed on
    stderr."""
    script = osp.join(REPO, 'tools', 'al_train.py')
    monkeypatch.setattr(sys, 'argv', [script, *args])
    main = runpy.run_path(script)['main']
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    return capsys.readouterr().err


def _ok(proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _read(path):
    with open(path) as f:
        return json.load(f)


def _digest(root):
    """SHA-256 of every state file under ``root``."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            if name == 'al_state.json':
                with open(osp.join(dirpath, name), 'rb') as f:
                    out[osp.relpath(osp.join(dirpath, name), root)] = \
                        hashlib.sha256(f.read()).hexdigest()
    return out


@pytest.fixture(scope='module')
def experiment(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('experiment')
    configs = _write_configs(tmp)
    root = str(tmp / 'exp')
    _ok(_al_train(*configs, '--seeds', '0', '1', '--work-dir', root))
    return configs, root


def test_layout_and_plan(experiment):
    _, root = experiment
    for name in NAMES:
        for seed in (0, 1):
            state = _read(
                osp.join(root, name, f'seed_{seed}', 'al_state.json'))
            assert state['meta']['experiment']['al_cfg.seed'] == seed
            assert state['meta']['stop']['reason'] == 'num_cycles'
            assert [r['cycle'] for r in state['cycles']] == [0, 1]
    plan = _read(osp.join(root, 'experiment.json'))['runs']
    # seed by seed: every config with seed 0 first
    assert [(r['name'], r['seed']) for r in plan] == [('random_tiny', 0),
                                                      ('entropy_tiny', 0),
                                                      ('random_tiny', 1),
                                                      ('entropy_tiny', 1)]
    with open(osp.join(root, 'experiment.log')) as f:
        log = f.read()
    assert log.index('[1/4] random_tiny seed 0: starting') < log.index(
        '[4/4] entropy_tiny seed 1: starting')


def test_a_seed_starts_from_one_initial_set(experiment):
    _, root = experiment

    def initial(name, seed):
        pool = _read(osp.join(root, name, f'seed_{seed}',
                              'al_state.json'))['pool']['labeled']
        return sorted(i for i, c in pool.items() if c == 0)

    for seed in (0, 1):
        assert initial('random_tiny', seed) == initial('entropy_tiny', seed)
        assert len(initial('random_tiny', seed)) == 8
    assert initial('random_tiny', 0) != initial('random_tiny', 1)


def test_the_visualizer_gets_one_point_per_cycle(experiment):
    _, root = experiment
    run = osp.join(root, 'entropy_tiny', 'seed_1')
    state = _read(osp.join(run, 'al_state.json'))
    with open(osp.join(run, 'vis_data', 'scalars.json')) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    by_step = {}
    for line in lines:
        step = line.pop('step')
        assert not set(line) & set(by_step.get(step, {}))  # logged once
        by_step.setdefault(step, {}).update(line)
    assert sorted(by_step) == [0, 1]
    for rec in state['cycles']:
        got = by_step[rec['cycle']]
        assert got['al/labeled_images'] == rec['images']
        assert got['al/labeled_cost'] == rec['cost']
        assert got['al/metric'] == pytest.approx(100 * rec['metric'])
        assert got['al/metric_per_10k_cost'] == pytest.approx(
            rec['points_per_10k_cost'])
    # cycle 0 selected (timed); the last cycle does not select
    assert by_step[0]['al/selection_time_s'] == pytest.approx(
        state['cycles'][0]['selection_seconds'])
    assert by_step[0]['al/selected_images'] == 4
    assert 'al/selection_time_s' not in by_step[1]


def test_rerun_skips_finished_and_resumes_an_interrupted_run(
        experiment, tmp_path):
    configs, root = experiment
    copy = str(tmp_path / 'exp')
    shutil.copytree(root, copy)
    before = _digest(copy)
    proc = _ok(_al_train(*configs, '--seeds', '0', '1', '--work-dir', copy))
    out = proc.stdout + proc.stderr
    assert out.count('finished before, skipped') == 4
    assert 'Epoch(train)' not in out  # nothing trained
    assert _digest(copy) == before
    # interrupt entropy seed 1 before cycle 1's evaluation
    state_file = osp.join(copy, 'entropy_tiny', 'seed_1', 'al_state.json')
    state = _read(state_file)
    del state['meta']['stop']
    state['cycles'][1]['done'] = ['train']
    for key in ('metrics', 'metric', 'metric_key', 'points_per_10k_cost'):
        state['cycles'][1].pop(key)
    with open(state_file, 'w') as f:
        json.dump(state, f)
    proc = _ok(_al_train(*configs, '--seeds', '0', '1', '--work-dir', copy))
    out = proc.stdout + proc.stderr
    assert out.count('finished before, skipped') == 3
    assert '[4/4] entropy_tiny seed 1: resuming' in out
    after = _read(state_file)
    assert after['meta']['stop']['reason'] == 'num_cycles'
    assert 'metric' in after['cycles'][1]
    assert _digest(copy)['random_tiny/seed_1/al_state.json'] == \
        before['random_tiny/seed_1/al_state.json']


def test_another_initial_set_is_refused(experiment, tmp_path, monkeypatch,
                                        capsys):
    configs, root = experiment
    copy = str(tmp_path / 'exp')
    shutil.copytree(root, copy)
    state_file = osp.join(copy, 'entropy_tiny', 'seed_0', 'al_state.json')
    state = _read(state_file)
    labeled = state['pool']['labeled']
    first = next(i for i, c in labeled.items() if c == 0)
    other = next(i for i in state['pool']['pool_ids'] if i not in labeled)
    labeled[other] = labeled.pop(first)
    with open(state_file, 'w') as f:
        json.dump(state, f)
    err = _refused(monkeypatch, capsys, *configs, '--seeds', '0', '--work-dir',
                   copy)
    assert 'started from another initial labeled set' in err
    assert 'seed 0 would not start together' in err


def test_configs_of_different_experiments_are_refused(tmp_path, monkeypatch,
                                                      capsys):
    configs = _write_configs(tmp_path, entropy_tiny={'al_cfg.budget': 6})
    root = str(tmp_path / 'exp')
    err = _refused(monkeypatch, capsys, *configs, '--seeds', '0', '--work-dir',
                   root)
    assert 'are not one experiment' in err
    assert 'al_cfg.budget: random_tiny: 4; entropy_tiny: 6' in err
    assert not osp.exists(osp.join(root, 'random_tiny'))  # nothing ran


def test_configs_with_different_seeds_need_seeds(tmp_path, monkeypatch,
                                                 capsys):
    configs = _write_configs(tmp_path, entropy_tiny={'al_cfg.seed': 1})
    err = _refused(monkeypatch, capsys, *configs, '--work-dir',
                   str(tmp_path / 'exp'))
    assert 'different al_cfg.seed values [0, 1]' in err


def test_report_on_the_experiment(experiment, tmp_path):
    _, root = experiment
    report = make_report([root], str(tmp_path))
    assert report.reference == 'random_tiny'
    assert sorted(report.curves) == ['entropy_tiny', 'random_tiny']
    assert report.curves['random_tiny'].seeds == [0, 1]
    assert report.runs.cost_unit == 'images'
    assert osp.isfile(osp.join(str(tmp_path), 'al_curves.png'))


def test_plan_and_name():
    assert default_experiment_name(
        ['configs/isal_fcos_voc.py', 'x/random_fcos_voc.py']) == 'fcos_voc'
    assert default_experiment_name(['a/isal_fcos_voc.py']) == 'isal_fcos_voc'
    assert default_experiment_name(['a/foo.py', 'b/bar.py']) == 'experiment'
    runs = plan_runs(['a/isal_x.py', 'a/random_x.py'], [2, 0], 'root')
    assert [(r.name, r.seed) for r in runs] == [('isal_x', 2), ('random_x', 2),
                                                ('isal_x', 0), ('random_x', 0)]
    assert runs[1].work_dir == osp.join('root', 'random_x', 'seed_2')
    with pytest.raises(ConfigError, match='same name'):
        plan_runs(['a/isal_x.py', 'b/isal_x.py'], [0], 'root')
    with pytest.raises(ConfigError, match='twice'):
        plan_runs(['a/isal_x.py'], [0, 0], 'root')
