"""End to end: cycles of ISAL on generated data, resume, errors."""
import contextlib
import io
import json
import os
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmal.engine import ActiveLearningRunner
from mmal.registry import HOOKS, SELECTORS
from mmal.utils import UserError
from conftest import (copy_run, record_training, select_cycle0, tiny_config,
                      train_cycle0)


def _read(path):
    with open(path) as f:
        return json.load(f)


def _forbid_training(monkeypatch):

    def boom(self):
        raise AssertionError('a finished cycle was trained again')

    monkeypatch.setattr(Runner, 'train', boom)


@HOOKS.register_module()
class CrashAfterEpochHook(Hook):
    """Test hook: dies after a given epoch, like a killed job."""

    def __init__(self, epoch: int = 1):
        self.epoch = epoch

    def after_train_epoch(self, runner):
        if runner.epoch >= self.epoch:  # runner.epoch counts finished ones
            raise KeyboardInterrupt('simulated crash')


def _crash_after_epoch_1(cfg, work_dir) -> None:
    """Run ``cfg`` in ``work_dir`` until a crash after training epoch 1."""
    crashing = cfg.copy()
    crashing.custom_hooks = [dict(type='mmal.CrashAfterEpochHook', epoch=1)]
    with pytest.raises(KeyboardInterrupt):
        ActiveLearningRunner(crashing, work_dir).run()


def _record_epochs(monkeypatch) -> list:
    """Let trainings run, recording the epoch each one ended at."""
    epochs = []
    original = Runner.train

    def spy(self):
        out = original(self)
        epochs.append(self.train_loop._epoch)
        return out

    monkeypatch.setattr(Runner, 'train', spy)
    return epochs


@pytest.fixture(scope='module')
def isal_run(tmp_path_factory):
    """Two cycles of ISAL on generated shapes (run once for the module).

    The run's console output is kept in ``work_dir/console.txt``.
    """
    work_dir = str(tmp_path_factory.mktemp('isal'))
    console = io.StringIO()
    with contextlib.redirect_stdout(console):  # mmengine logs to sys.stdout
        state = ActiveLearningRunner(tiny_config(), work_dir).run()
    with open(osp.join(work_dir, 'console.txt'), 'w') as f:
        f.write(console.getvalue())
    return work_dir, state


def test_two_cycles_record_everything(isal_run):
    work_dir, state = isal_run
    data = _read(osp.join(work_dir, 'al_state.json'))
    cycles = data['cycles']
    assert [c['done'] for c in cycles] == [['train', 'evaluate', 'select'],
                                           ['train', 'evaluate']]
    assert [c['images'] for c in cycles] == [8, 12]
    assert cycles[1]['cost'] > cycles[0]['cost'] > 0
    for c in cycles:
        assert 0.0 <= c['metric'] <= 1.0 and c['metric_key'] == 'coco/bbox_mAP'
        assert c['cost_unit'] == 'boxes'
        # relative to the work dir: a moved work dir continues
        assert not osp.isabs(c['checkpoint'])
        assert osp.isfile(osp.join(work_dir, c['checkpoint']))
    selection = _read(osp.join(work_dir, 'cycle_0', 'selection.json'))
    selected = selection['selected']
    assert len(selected) == len(set(selected)) == 4
    initial = state.pool.ids_labeled_in(0)
    assert not set(selected) & set(initial)
    assert sorted(state.pool.ids_labeled_in(1)) == sorted(selected)
    # what cycle 1 trained on is exactly the labeled set after cycle 0
    trained_on = _read(osp.join(work_dir, 'cycle_1', 'labeled_ids.json'))
    assert sorted(trained_on) == sorted(initial + selected)
    info = selection['info']
    assert info['num_scored'] + info['num_unscored'] == 24 - 8
    assert all(x > 0 for x in info['s_test_norm'])
    with open(osp.join(work_dir, 'al.log')) as f:
        log = f.read()
    assert 'cycle 1: images 12 | boxes' in log and 'scoring unlabeled' in log


def test_rerun_does_not_retrain_finished_cycles(isal_run, tmp_path,
                                                monkeypatch):
    work_dir = copy_run(isal_run[0], str(tmp_path / 'copy'))
    before = _read(osp.join(work_dir, 'al_state.json'))
    _forbid_training(monkeypatch)
    ActiveLearningRunner(tiny_config(), work_dir).run()
    assert _read(osp.join(work_dir, 'al_state.json')) == before


def test_more_cycles_continue_where_the_run_stopped(isal_run, tmp_path,
                                                    monkeypatch):
    """Raising num_cycles on a finished run selects and trains only anew."""
    import shutil
    work_dir = str(tmp_path / 'copy')
    shutil.copytree(isal_run[0], work_dir)
    trained = record_training(monkeypatch)
    state = ActiveLearningRunner(
        tiny_config(**{'al_cfg.num_cycles': 3}), work_dir).run()
    assert trained == ['cycle_2']
    assert state.pool.num_labeled == 16
    assert len(state.pool.ids_labeled_in(2)) == 4


def test_same_seed_same_selection(isal_run, tmp_path):
    """A new run with the same seed trains the same cycle-0 model and
    selects the same images (cycle 0 and its selection only)."""
    work_dir, _ = isal_run
    cfg = tiny_config()
    train_cycle0(cfg, str(tmp_path))
    b = select_cycle0(cfg, str(tmp_path))
    a = _read(osp.join(work_dir, 'cycle_0', 'selection.json'))
    assert a['selected'] == b['selected']
    assert a['scores'] == pytest.approx(b['scores'], rel=1e-4, abs=1e-9)


def test_crash_in_training_resumes_from_checkpoint(tmp_path, monkeypatch):
    """A killed training resumes from its last epoch (weights_only safe)."""
    work_dir = str(tmp_path)
    cfg = tiny_config('random_fcos_shapes.py', **{
        'al_cfg.num_cycles': 1,
        'train_cfg.max_epochs': 2
    })
    _crash_after_epoch_1(cfg, work_dir)
    cdir = osp.join(work_dir, 'cycle_0')
    assert osp.isfile(osp.join(cdir, 'epoch_1.pth'))
    assert not _read(osp.join(work_dir, 'al_state.json'))['cycles']
    epochs = _record_epochs(monkeypatch)
    state = ActiveLearningRunner(cfg, work_dir).run()
    assert epochs == [2]
    assert state.is_done(0, 'evaluate')
    logs = ''.join(
        open(osp.join(r, f)).read() for r, _, fs in os.walk(cdir) for f in fs
        if f.endswith('.log'))
    assert 'resumed epoch: 1' in logs


def test_crash_in_selection_keeps_training(tmp_path, monkeypatch):
    work_dir = str(tmp_path)
    cfg = tiny_config('random_fcos_shapes.py')

    def crash(self, context):
        raise RuntimeError('simulated crash in selection')

    rank = SELECTORS.get('mmal.RandomSelector').rank
    monkeypatch.setattr(SELECTORS.get('mmal.RandomSelector'), 'rank', crash)
    with pytest.raises(RuntimeError, match='simulated'):
        ActiveLearningRunner(cfg, work_dir).run()
    saved = _read(osp.join(work_dir, 'al_state.json'))
    assert saved['cycles'][0]['done'] == ['train', 'evaluate']
    monkeypatch.setattr(SELECTORS.get('mmal.RandomSelector'), 'rank', rank)
    trained = record_training(monkeypatch)
    state = ActiveLearningRunner(cfg, work_dir).run()
    assert trained == ['cycle_1']
    assert state.pool.num_labeled == 12


def test_bad_configs_fail_clearly(tmp_path):
    cfg = tiny_config()
    no_al = cfg.copy()
    no_al.pop('al_cfg')
    with pytest.raises(KeyError, match='no `al_cfg`'):
        ActiveLearningRunner(no_al, str(tmp_path))
    with pytest.raises(KeyError, match='unknown selector type .*mmal.Nope'):
        ActiveLearningRunner(
            tiny_config(**{'al_cfg.selector': dict(type='mmal.Nope')}),
            str(tmp_path))
    for key in ('budget', 'initial_size', 'num_cycles'):
        with pytest.raises(
                ValueError, match=f'al_cfg.{key} must be a '
                'positive integer'):
            ActiveLearningRunner(
                tiny_config(**{f'al_cfg.{key}': 0}), str(tmp_path))
    with pytest.raises(KeyError, match='unknown al_cfg keys'):
        ActiveLearningRunner(
            tiny_config(**{'al_cfg.budgett': 3}), str(tmp_path))
    # a user's mistakes: tools/al_train.py prints them without traceback
    with pytest.raises(
            UserError,
            match="al_cfg.selector = .*unexpected "
            "keyword argument 'score_th'"):
        ActiveLearningRunner(
            tiny_config(**{'al_cfg.selector.score_th': 0.2}), str(tmp_path))
    with pytest.raises(UserError, match='unknown adapter type'):
        ActiveLearningRunner(
            tiny_config(**{'al_cfg.adapter.type': 'FCOSAdapterr'}),
            str(tmp_path))


def test_missing_data_is_named_before_any_work(tmp_path):
    cfg = Config.fromfile(
        osp.join(
            osp.dirname(osp.dirname(__file__)), 'configs', 'isal_fcos_voc.py'))
    cfg.merge_from_dict({'al_cfg.num_workers': 0})
    from mmal.utils.config_utils import override_data_root
    override_data_root(cfg, str(tmp_path / 'nowhere'))
    runner = ActiveLearningRunner(cfg, str(tmp_path / 'work'))
    with pytest.raises(FileNotFoundError) as err:
        runner.run()
    assert str(tmp_path / 'nowhere' / 'VOC2012/ImageSets/Main/train.txt') \
        in str(err.value)
    assert isinstance(err.value, UserError)  # no traceback in al_train.py
    assert not osp.exists(osp.join(str(tmp_path / 'work'), 'al_state.json'))


def test_crash_in_evaluation_reloads_the_checkpoint(tmp_path, monkeypatch):
    """Evaluation after a crash loads the trained weights (load_from)."""
    work_dir = str(tmp_path)
    cfg = tiny_config('random_fcos_shapes.py', **{'al_cfg.num_cycles': 1})
    test = Runner.test

    def crash(self):
        raise RuntimeError('simulated crash in evaluation')

    monkeypatch.setattr(Runner, 'test', crash)
    with pytest.raises(RuntimeError, match='simulated'):
        ActiveLearningRunner(cfg, work_dir).run()
    saved = _read(osp.join(work_dir, 'al_state.json'))
    assert saved['cycles'][0]['done'] == ['train']
    monkeypatch.setattr(Runner, 'test', test)
    _forbid_training(monkeypatch)
    loaded = []
    original = Runner.load_checkpoint

    def spy(self, filename, *args, **kwargs):
        loaded.append(filename)
        return original(self, filename, *args, **kwargs)

    monkeypatch.setattr(Runner, 'load_checkpoint', spy)
    state = ActiveLearningRunner(cfg, work_dir).run()
    assert loaded == [osp.join(work_dir, saved['cycles'][0]['checkpoint'])]
    assert state.is_done(0, 'evaluate')


def test_budget_larger_than_pool_then_empty_pool_stops(tmp_path, monkeypatch):
    """16 unlabeled, budget 20: all are taken, then the run stops."""
    trained = record_training(monkeypatch)
    cfg = tiny_config(
        'random_fcos_shapes.py', **{
            'al_cfg.budget': 20,
            'al_cfg.num_cycles': 4,
            'train_cfg.max_epochs': 1
        })
    state = ActiveLearningRunner(cfg, str(tmp_path)).run()
    assert trained == ['cycle_0', 'cycle_1']
    assert state.pool.unlabeled_ids == []
    assert len(state.pool.ids_labeled_in(1)) == 16
    assert [c['done']
            for c in state.cycles] == [['train', 'evaluate', 'select'],
                                       ['train', 'evaluate']]


@SELECTORS.register_module()
class _PicksLabeledSelector:
    """Test selector that breaks the contract: ranks a labeled id."""

    needs_model = False

    def rank(self, context):
        from mmal.selectors import SelectionResult
        return SelectionResult(ranking=context.state.labeled_ids[:1] +
                               context.state.unlabeled_ids)


@SELECTORS.register_module()
class _RanksNothingSelector:
    """Test selector that breaks the contract: an empty ranking."""

    needs_model = False

    def rank(self, context):
        from mmal.selectors import SelectionResult
        return SelectionResult(ranking=[])


def test_an_empty_ranking_of_a_nonempty_pool_is_an_error(tmp_path):
    cfg = tiny_config(
        'random_fcos_shapes.py',
        **{'al_cfg.selector': dict(type='mmal._RanksNothingSelector')})
    runner = ActiveLearningRunner(cfg, str(tmp_path))
    state = runner.load_or_init_state()  # selecting needs no training here
    with pytest.raises(
            ValueError,
            match='_RanksNothingSelector .* returned '
            'an empty ranking for 16 unlabeled images'):
        runner.select(state, 0)
    assert state.pool.num_labeled == 8


def test_a_box_budget_of_one_box_labels_one_image(tmp_path):
    """The demo with a cost budget of 1 box selected 0 images: now the first
    image in rank order is labeled, whatever its number of boxes."""
    cfg = tiny_config('random_fcos_shapes.py', **{'al_cfg.cost_budget': 1})
    runner = ActiveLearningRunner(cfg, str(tmp_path))
    state = runner.load_or_init_state()
    selected = runner.select(state, 0)
    assert len(selected) == 1
    assert state.record(0)['selected_cost'] == runner.cost(selected) >= 1
    assert state.pool.ids_labeled_in(1) == selected


def test_sizes_given_as_fractions_of_the_pool(tmp_path):
    """0.25 and 0.3 of the 24-image pool: 6 images at random, then
    ceil(7.2) = 8 per selection; a fraction outside (0, 1] is refused."""
    cfg = tiny_config('random_fcos_shapes.py', **{
        'al_cfg.initial_size': 0.25,
        'al_cfg.budget': 0.3
    })
    runner = ActiveLearningRunner(cfg, str(tmp_path))
    state = runner.load_or_init_state()
    assert len(state.pool) == 24 and state.pool.num_labeled == 6
    assert len(runner.select(state, 0)) == 8
    for key, value in (('initial_size', 1.5), ('budget', 0.0)):
        with pytest.raises(
                ValueError,
                match=f'al_cfg.{key} must be a '
                'positive integer .* or a fraction'):
            ActiveLearningRunner(
                tiny_config(**{f'al_cfg.{key}': value}), str(tmp_path))


def test_a_selector_cannot_pick_a_labeled_id(tmp_path):
    cfg = tiny_config(
        'random_fcos_shapes.py', **{
            'al_cfg.selector': dict(type='mmal._PicksLabeledSelector'),
            'train_cfg.max_epochs': 1
        })
    with pytest.raises(ValueError, match='non-unlabeled'):
        ActiveLearningRunner(cfg, str(tmp_path)).run()
    state = _read(osp.join(str(tmp_path), 'al_state.json'))
    assert state['cycles'][0]['done'] == ['train', 'evaluate']
    assert sum(1 for c in state['pool']['labeled'].values() if c == 1) == 0


def test_a_new_selector_is_a_config_that_inherits_one(tmp_path, monkeypatch):
    """The README's recipe: a registered class plus a three-line config."""
    (tmp_path / 'my_selectors.py').write_text(
        'from mmal.registry import SELECTORS\n'
        'from mmal.selectors import BaseSelector, SelectionResult\n\n\n'
        '@SELECTORS.register_module()\n'
        'class ReverseIdSelector(BaseSelector):\n'
        '    needs_model = False\n\n'
        '    def rank(self, context):\n'
        '        ids = sorted(context.state.unlabeled_ids, reverse=True)\n'
        '        return SelectionResult(ranking=ids)\n')
    base = osp.join(
        osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs',
        'random_fcos_shapes.py')
    (tmp_path / 'reverse_fcos_shapes.py').write_text(
        f'_base_ = {base!r}\n'
        "custom_imports = dict(imports=['my_selectors'], "
        'allow_failed_imports=False)\n'
        "al_cfg = dict(selector=dict(_delete_=True, "
        "type='mmal.ReverseIdSelector'))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = Config.fromfile(str(tmp_path / 'reverse_fcos_shapes.py'))
    tiny = tiny_config('random_fcos_shapes.py', **{'train_cfg.max_epochs': 1})
    for key in ('demo_data', 'train_dataloader', 'val_dataloader',
                'test_dataloader', 'train_cfg', 'param_scheduler'):
        cfg[key] = tiny[key]
    cfg.al_cfg.update(
        {k: tiny.al_cfg[k]
         for k in ('initial_size', 'budget', 'num_workers')})
    cfg.al_cfg.num_cycles = 2
    state = ActiveLearningRunner(cfg, str(tmp_path / 'work')).run()
    expected = sorted(
        set(state.pool.pool_ids) - set(state.pool.ids_labeled_in(0)),
        reverse=True)[:4]
    assert sorted(state.pool.ids_labeled_in(1)) == sorted(expected)


def test_resume_skips_a_checkpoint_lost_in_rotation(tmp_path):
    """A crash between mmengine's checkpoint rotation and its
    ``last_checkpoint`` write leaves that file naming a deleted checkpoint
    (seen when torchrun stopped rank 0 there); a half-written one does not
    load. Resume takes the newest checkpoint that loads."""
    import torch
    runner = ActiveLearningRunner(tiny_config(), str(tmp_path / 'run'))
    cdir = tmp_path / 'cycle'
    cdir.mkdir()
    assert runner.resume_checkpoint(str(cdir)) is None
    (cdir / 'last_checkpoint').write_text(str(cdir / 'epoch_3.pth'))
    assert runner.resume_checkpoint(str(cdir)) is None  # nothing to load
    torch.save(dict(meta=dict(epoch=1)), str(cdir / 'epoch_1.pth'))
    (cdir / 'epoch_2.pth').write_bytes(b'half written')
    assert runner.resume_checkpoint(str(cdir)) == str(cdir / 'epoch_1.pth')
    torch.save(dict(meta=dict(epoch=10)), str(cdir / 'epoch_10.pth'))
    assert runner.resume_checkpoint(str(cdir)) == str(cdir / 'epoch_10.pth')
    (cdir / 'last_checkpoint').write_text(str(cdir / 'epoch_1.pth'))
    assert runner.resume_checkpoint(str(cdir)) == str(cdir / 'epoch_1.pth')
    with open(tmp_path / 'run' / 'al.log') as f:
        log = f.read()
    assert 'does not exist' in log and 'cannot resume from' in log


def test_the_lissa_scale_check_is_logged_and_recorded(isal_run):
    work_dir, _ = isal_run
    info = _read(osp.join(work_dir, 'cycle_0', 'selection.json'))['info']
    report = info['scale_check']
    assert len(report['max_eigenvalue']) == 3 == len(report['safe_scale'])
    assert all(s >= e
               for s, e in zip(report['safe_scale'], report['max_eigenvalue']))
    # the scales the selection's chains ran with (default mode 'auto')
    scales = info['lissa_scales']
    assert scales['mode'] == 'auto'
    assert scales['configured'] == [100.0, 8000.0, 5000.0]  # the adapter's
    assert len(scales['measured']) == 3
    for used, conf, lam in zip(scales['used'], scales['configured'],
                               scales['measured']):
        assert used >= max(conf, 1.5 * lam)
    assert len(scales['diverged']) == scales['retries'] >= 0
    with open(osp.join(work_dir, 'al.log')) as f:
        log = f.read()
    assert 'LiSSA scale check on 4 labeled images' in log
    assert "(mode 'auto', margin 1.5)" in log


def test_the_environment_is_logged_once_per_run(isal_run):
    """mmengine's Runner logs ~3 KB of build flags when it is built; of the
    run's Runners (train + evaluate per cycle) only the first does."""
    work_dir, _ = isal_run
    with open(osp.join(work_dir, 'console.txt')) as f:
        console = f.read()
    assert console.count('System environment') == 1
    assert console.count('Config:') == 2  # each cycle's config still is
    logs = ''.join(
        open(osp.join(r, f)).read() for r, _, fs in os.walk(work_dir)
        for f in fs if f.endswith('.log'))
    assert logs.count('System environment') == 1
    assert 'System environment' in ''.join(
        open(osp.join(r, f)).read()
        for r, _, fs in os.walk(osp.join(work_dir, 'cycle_0')) for f in fs
        if f.endswith('.log'))


def test_a_rerun_appends_to_the_log(isal_run, tmp_path, monkeypatch):
    """A rerun keeps al.log's lines and adds its own."""
    work_dir = copy_run(isal_run[0], str(tmp_path / 'copy'))
    with open(osp.join(work_dir, 'al.log')) as f:
        first = f.read()
    _forbid_training(monkeypatch)
    ActiveLearningRunner(tiny_config(), work_dir).run()
    with open(osp.join(work_dir, 'al.log')) as f:
        log = f.read()
    assert log.startswith(first)
    assert 'resuming from' in log[len(first):]
    assert log.count('new run in') == 1
    assert log.index('new run in') < log.index('resuming from')


def test_a_state_written_by_an_older_mmal_resumes(isal_run, tmp_path,
                                                  monkeypatch):
    """A finished run whose al_state.json uses the old detection-only keys
    (boxes, mAP, ...) resumes without training, with the new names."""
    import shutil
    work_dir = str(tmp_path / 'old')
    shutil.copytree(isal_run[0], work_dir)
    state_file = osp.join(work_dir, 'al_state.json')
    data = _read(state_file)
    new = [dict(c) for c in data['cycles']]
    old_names = dict(
        cost='boxes',
        metric='mAP',
        points_per_10k_cost='mAP_points_per_10k_boxes',
        selected_cost='selected_boxes')
    for rec in data['cycles']:
        rec.pop('cost_unit')
        for key, old in old_names.items():
            if key in rec:
                rec[old] = rec.pop(key)
    with open(state_file, 'w') as f:
        json.dump(data, f)
    _forbid_training(monkeypatch)
    state = ActiveLearningRunner(tiny_config(), work_dir).run()
    assert state.cycles == new


def test_each_cycle_logs_its_training_curves_to_its_own_vis_data(isal_run):
    """mmdet's runtime names its visualizer 'visualizer': without a name per
    cycle, cycle 0's instance (and its folder) would get every cycle's
    curves. The run's AL curves go to work_dir/vis_data."""
    import glob
    work_dir, state = isal_run
    for cycle in (0, 1):
        files = glob.glob(
            osp.join(work_dir, f'cycle_{cycle}', '*', 'vis_data',
                     'scalars.json'))
        assert len(files) == 1, files
        with open(files[0]) as f:
            lines = [json.loads(line) for line in f if line.strip()]
        losses = [line for line in lines if 'loss' in line]
        # 2 epochs of 8 / 12 images in batches of 4, logged every iteration
        assert len(losses) == 2 * state.record(cycle)['images'] // 4
    with open(osp.join(work_dir, 'vis_data', 'scalars.json')) as f:
        steps = [json.loads(line)['step'] for line in f if line.strip()]
    assert sorted(set(steps)) == [0, 1]


# -- a work dir that moves ---------------------------------------------------
def test_a_copied_work_dir_continues(fcos_cycle0, tmp_path, monkeypatch):
    """``cp -r`` of a run (cycle 0 trained; the state keeps paths inside
    the work dir relative to it): the copy continues there, selecting and
    training cycle 1 only, and never reads the original."""
    import shutil
    work_dir = str(tmp_path / 'elsewhere' / 'mine')
    shutil.copytree(fcos_cycle0, work_dir)
    state = _read(osp.join(work_dir, 'al_state.json'))
    assert fcos_cycle0 not in json.dumps(state)  # nothing points back
    trained = record_training(monkeypatch)
    opened = []
    real_open = open

    def spy_open(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr('builtins.open', spy_open)
    state = ActiveLearningRunner(tiny_config(), work_dir).run()
    monkeypatch.undo()
    assert trained == ['cycle_1']
    assert [r['done']
            for r in state.cycles] == [['train', 'evaluate', 'select'],
                                       ['train', 'evaluate']]
    assert not [p for p in opened if p.startswith(fcos_cycle0 + osp.sep)]


def test_a_killed_training_resumes_after_the_work_dir_moved(
        tmp_path, monkeypatch):
    """Killed after epoch 1, the work dir renamed, the rerun resumes from
    epoch 1 in the new place (mmengine's last_checkpoint names the old
    path)."""
    import shutil
    old, new = str(tmp_path / 'old'), str(tmp_path / 'new')
    cfg = tiny_config('random_fcos_shapes.py', **{
        'al_cfg.num_cycles': 1,
        'train_cfg.max_epochs': 2
    })
    _crash_after_epoch_1(cfg, old)
    shutil.move(old, new)
    epochs = _record_epochs(monkeypatch)
    state = ActiveLearningRunner(cfg, new).run()
    assert epochs == [2] and state.is_done(0, 'evaluate')
    logs = ''.join(
        open(osp.join(r, f)).read()
        for r, _, fs in os.walk(osp.join(new, 'cycle_0')) for f in fs
        if f.endswith('.log'))
    assert 'resumed epoch: 1' in logs
    assert state.record(0)['checkpoint'] == osp.join('cycle_0', 'epoch_2.pth')
