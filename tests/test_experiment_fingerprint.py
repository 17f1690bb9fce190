"""A work dir holds one experiment: reruns that change it are refused."""
import json
import os.path as osp

import pytest
from mmengine.config import Config

from mmal.engine import ActiveLearningRunner, resolve_al_cfg
from mmal.structures.experiment_fingerprint import (experiment_fingerprint,
                                                    run_settings)
from mmal.utils import WorkDirError
from mmal.utils.config_utils import override_data_root
from conftest import REPO, tiny_config


def _start(work_dir, name='random_fcos_shapes.py', **opts):
    """The state a run writes before its first training (none is run)."""
    runner = ActiveLearningRunner(tiny_config(name, **opts), str(work_dir))
    return runner, runner.load_or_init_state()


def _read_meta(work_dir):
    with open(osp.join(str(work_dir), 'al_state.json')) as f:
        return json.load(f)['meta']


def test_another_selector_on_the_work_dir_is_refused(tmp_path):
    """The issue's case: random (box budget 1), then ISAL on its work dir."""
    _start(tmp_path, **{'al_cfg.cost_budget': 1})
    before = _read_meta(tmp_path)
    runner = ActiveLearningRunner(
        tiny_config('isal_fcos_shapes.py'), str(tmp_path))
    with pytest.raises(WorkDirError) as err:
        runner.load_or_init_state()
    msg = str(err.value)
    assert 'holds another experiment' in msg
    assert ("al_cfg.selector.type: 'mmal.RandomSelector' -> "
            "'mmal.InfluenceSelector'") in msg
    assert 'al_cfg.cost_budget: 1 -> None' in msg  # every difference
    assert isinstance(err.value, ValueError)
    assert _read_meta(tmp_path) == before  # nothing recorded


def test_run_refuses_before_the_image_checks_touch_the_state(
        tmp_path, monkeypatch):
    """run() refuses another experiment before anything else reads or
    writes the work dir (the image checks could take images out of the
    recorded pool under 'drop')."""
    _start(tmp_path, **{'al_cfg.annotation_policy': 'drop'})
    state_file = osp.join(str(tmp_path), 'al_state.json')
    with open(state_file, 'rb') as f:
        before = f.read()
    import mmal.engine.al_runner as al_runner

    def no_image_checks(*args, **kwargs):
        raise AssertionError('image checks ran before the refusal')

    monkeypatch.setattr(al_runner, 'check_run_images', no_image_checks)
    runner = ActiveLearningRunner(
        tiny_config('isal_fcos_shapes.py',
                    **{'al_cfg.annotation_policy': 'drop'}), str(tmp_path))
    with pytest.raises(WorkDirError, match='holds another experiment'):
        runner.run()
    with open(state_file, 'rb') as f:
        assert f.read() == before


def test_a_changed_box_budget_is_refused(tmp_path):
    _start(tmp_path)
    with pytest.raises(WorkDirError, match=r'al_cfg.cost_budget: None -> 5'):
        _start(tmp_path, **{'al_cfg.cost_budget': 5})


def test_settings_may_change_and_are_recorded(tmp_path):
    """num_cycles and the stop rule only change the remaining work."""
    _start(tmp_path)
    runner, state = _start(
        tmp_path, **{
            'al_cfg.num_cycles': 3,
            'al_cfg.target_metric': 0.5
        })
    expected = [
        dict(cycle=0, key='al_cfg.num_cycles', **{
            'from': 2,
            'to': 3
        }),
        dict(cycle=0, key='al_cfg.target_metric', **{
            'from': None,
            'to': 0.5
        })
    ]
    assert state.meta['changes'] == expected
    meta = _read_meta(tmp_path)
    assert meta['changes'] == expected
    assert meta['settings']['al_cfg.num_cycles'] == 3
    with open(osp.join(str(tmp_path), 'al.log')) as f:
        log = f.read()
    assert ('setting changed since the last run, from cycle 0 on: '
            'al_cfg.num_cycles: 2 -> 3') in log
    # the same settings again: nothing new
    _, state = _start(tmp_path, **{
        'al_cfg.num_cycles': 3,
        'al_cfg.target_metric': 0.5
    })
    assert state.meta['changes'] == expected


def test_a_state_without_fingerprint_gets_one_with_a_warning(tmp_path):
    runner, state = _start(tmp_path)
    path = osp.join(str(tmp_path), 'al_state.json')
    with open(path) as f:
        data = json.load(f)
    for key in ('experiment', 'settings', 'changes'):
        data['meta'].pop(key)
    with open(path, 'w') as f:
        json.dump(data, f)
    _, state = _start(tmp_path)
    with open(osp.join(str(tmp_path), 'al.log')) as f:
        assert 'records no experiment fingerprint' in f.read()
    meta = _read_meta(tmp_path)
    assert meta['experiment'] == experiment_fingerprint(runner.cfg, runner.al)
    assert meta['changes'] == []
    with pytest.raises(WorkDirError, match='al_cfg.seed: 0 -> 1'):
        _start(tmp_path, **{'al_cfg.seed': 1})


def test_data_root_may_move_but_not_the_files_under_it(tmp_path):
    """--data-root pointing at the same layout elsewhere is a setting; a
    different annotation file under the root is another experiment."""
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'isal_fcos_voc.py'))
    al = resolve_al_cfg(cfg)
    moved = override_data_root(cfg.copy(), str(tmp_path / 'elsewhere'))
    assert experiment_fingerprint(moved, al) == experiment_fingerprint(cfg, al)
    assert run_settings(moved,
                        al)['data_root'] != run_settings(cfg, al)['data_root']
    other = cfg.copy()
    other.merge_from_dict(
        {'train_dataloader.dataset.ann_file': 'VOC2012/other.txt'})
    assert experiment_fingerprint(other, al) != experiment_fingerprint(cfg, al)


def test_the_old_budget_boxes_key_still_works_and_old_states_continue(
        tmp_path):
    """``al_cfg.budget_boxes`` was renamed ``cost_budget``: the old key is
    read with a deprecation warning, and a state recorded under the old
    name continues under the new one."""
    with pytest.warns(DeprecationWarning, match='now al_cfg.cost_budget'):
        al = resolve_al_cfg(
            tiny_config('random_fcos_shapes.py', **{'al_cfg.budget_boxes': 3}))
    assert al['cost_budget'] == 3 and 'budget_boxes' not in al
    both = tiny_config('random_fcos_shapes.py', **{
        'al_cfg.budget_boxes': 3,
        'al_cfg.cost_budget': 3
    })
    with pytest.raises(ValueError, match='both set'):
        resolve_al_cfg(both)
    _start(tmp_path, **{'al_cfg.cost_budget': 2})
    path = osp.join(str(tmp_path), 'al_state.json')
    with open(path) as f:
        data = json.load(f)
    experiment = data['meta']['experiment']
    experiment['al_cfg.budget_boxes'] = experiment.pop('al_cfg.cost_budget')
    with open(path, 'w') as f:
        json.dump(data, f)
    _, state = _start(tmp_path, **{'al_cfg.cost_budget': 2})  # no refusal
    assert state.meta['experiment']['al_cfg.cost_budget'] == 2
    with pytest.raises(WorkDirError, match=r'al_cfg.cost_budget: 2 -> 4'):
        _start(tmp_path, **{'al_cfg.cost_budget': 4})
