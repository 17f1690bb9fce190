"""End to end: active learning on an mmpretrain classifier (the generated
shapes classification demo): cycles, units, resume, hidden labels."""
import contextlib
import io
import json
import os.path as osp

import pytest
import torch
from mmengine.runner import Runner

from mmal.engine import ActiveLearningRunner
from mmal.selectors import SelectionContext
from mmal.structures import ALState
from mmal.utils import ConfigError
from conftest import copy_run, select_cycle0, tiny_cls_config, train_cycle0


def _read(path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def cls_run(tmp_path_factory):
    """Two cycles of ISAL on the classification demo (once per module)."""
    work_dir = str(tmp_path_factory.mktemp('cls'))
    with contextlib.redirect_stdout(io.StringIO()):
        state = ActiveLearningRunner(tiny_cls_config(), work_dir).run()
    return work_dir, state


def test_two_cycles_record_images_and_accuracy_as_a_fraction(cls_run):
    work_dir, state = cls_run
    cycles = _read(osp.join(work_dir, 'al_state.json'))['cycles']
    assert [c['done'] for c in cycles] == [['train', 'evaluate', 'select'],
                                           ['train', 'evaluate']]
    for c, images in zip(cycles, (8, 12)):
        assert c['images'] == c['cost'] == images
        assert c['cost_unit'] == 'images'
        assert c['metric_key'] == 'accuracy/top1'
        # mmpretrain reports percent; the state stores the fraction
        assert c['metric'] == pytest.approx(
            c['metrics']['accuracy/top1'] / 100, rel=1e-12)
        assert 0.0 <= c['metric'] <= 1.0
        assert c['points_per_10k_cost'] == pytest.approx(1e4 * 100 *
                                                         c['metric'] / images)
    assert cycles[0]['selected_cost'] == cycles[0]['num_selected'] == 4
    # ids: paths relative to the data root, never positions
    initial = state.pool.ids_labeled_in(0)
    selected = state.pool.ids_labeled_in(1)
    assert len(selected) == 4 and not set(selected) & set(initial)
    assert all(
        i.startswith('train/') and i.endswith('.png')
        for i in initial + selected)
    selection = _read(osp.join(work_dir, 'cycle_0', 'selection.json'))
    assert selection['selected'] == sorted(
        selection['scores'], key=lambda k: selection['scores'][k])[:4]
    info = selection['info']
    assert info['num_scored'] == 32 - 8 and info['num_unscored'] == 0
    trained_on = _read(osp.join(work_dir, 'cycle_1', 'labeled_ids.json'))
    assert sorted(trained_on) == sorted(initial + selected)
    with open(osp.join(work_dir, 'al.log')) as f:
        log = f.read()
    assert 'cycle 1: images 12 | accuracy/top1' in log


def test_rerun_resumes_without_training(cls_run, tmp_path, monkeypatch):
    work_dir = copy_run(cls_run[0], str(tmp_path / 'copy'))
    before = _read(osp.join(work_dir, 'al_state.json'))

    def boom(self):
        raise AssertionError('a finished cycle was trained again')

    monkeypatch.setattr(Runner, 'train', boom)
    ActiveLearningRunner(tiny_cls_config(), work_dir).run()
    assert _read(osp.join(work_dir, 'al_state.json')) == before


def test_same_seed_same_selection(cls_run, tmp_path):
    """A new run with the same seed trains the same cycle-0 model and
    selects the same images (cycle 0 and its selection only)."""
    work_dir, _ = cls_run
    cfg = tiny_cls_config()
    train_cycle0(cfg, str(tmp_path))
    b = select_cycle0(cfg, str(tmp_path))
    a = _read(osp.join(work_dir, 'cycle_0', 'selection.json'))
    assert a['selected'] == b['selected']
    assert a['scores'] == pytest.approx(b['scores'], rel=1e-4, abs=1e-9)


def test_target_metric_is_a_fraction(cls_run, tmp_path):
    rec = ALState.load(osp.join(cls_run[0], 'al_state.json')).record(1)
    reach = tiny_cls_config(**{'al_cfg.target_metric': rec['metric']})
    runner = ActiveLearningRunner(reach, str(tmp_path / 'a'))
    assert runner.target_reached(rec)
    above = tiny_cls_config(**{'al_cfg.target_metric': rec['metric'] + 0.01})
    assert not ActiveLearningRunner(above, str(
        tmp_path / 'b')).target_reached(rec)


def test_unlabeled_images_carry_no_label(cls_run):
    """The simulation never reads an unlabeled image's ground truth: its
    view drops the label before packing; labeled views keep it."""
    work_dir, state = cls_run
    runner = ActiveLearningRunner(tiny_cls_config(), work_dir)
    context = SelectionContext(
        runner.cfg,
        state.pool,
        0,
        seed=0,
        work_dir=work_dir,
        task=runner.task,
        num_workers=0)
    unlabeled = next(iter(context.loader(context.unlabeled_view())))
    labeled = next(iter(context.loader(context.labeled_view())))
    assert 'gt_label' not in unlabeled['data_samples'][0]
    gt = labeled['data_samples'][0].gt_label
    assert isinstance(gt, torch.Tensor) and gt.numel() == 1


def test_a_box_budget_is_refused_for_classification(tmp_path):
    with pytest.raises(ConfigError, match='counted in images'):
        ActiveLearningRunner(
            tiny_cls_config(**{'al_cfg.cost_budget': 10}), str(tmp_path))
