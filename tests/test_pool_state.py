"""PoolState, ALState and the budget rule."""
import json

import pytest

from mmal.engine import take_budget
from mmal.structures import ALState, PoolState


def test_initial_split_is_seeded_and_order_independent():
    ids = [f'img{i}' for i in range(50)]
    a = PoolState.initial(ids, 10, seed=3)
    b = PoolState.initial(list(reversed(ids)), 10, seed=3)
    assert sorted(a.labeled_ids) == sorted(b.labeled_ids)
    assert len(a.labeled_ids) == 10
    assert sorted(PoolState.initial(ids, 10, seed=4).labeled_ids) != sorted(
        a.labeled_ids)
    assert all(a.cycle_of(i) == 0 for i in a.labeled_ids)
    assert set(a.labeled_ids) | set(a.unlabeled_ids) == set(ids)


@pytest.mark.parametrize('size', [0, -1, 51])
def test_initial_split_rejects_bad_sizes(size):
    with pytest.raises(ValueError):
        PoolState.initial([str(i) for i in range(50)], size, seed=0)


def test_label_refuses_unknown_duplicate_and_already_labeled():
    state = PoolState(['a', 'b', 'c', 'd'], {'a': 0})
    with pytest.raises(KeyError, match='zz'):
        state.label(['zz'], 1)
    with pytest.raises(ValueError, match='twice'):
        state.label(['b', 'b'], 1)
    with pytest.raises(ValueError, match='already labeled'):
        state.label(['a'], 1)
    state.label(['c'], 1)
    assert state.ids_labeled_in(1) == ['c']
    assert state.unlabeled_ids == ['b', 'd']


def test_duplicate_pool_ids_are_rejected():
    with pytest.raises(ValueError, match='duplicate'):
        PoolState(['a', 'b', 'a'])


def test_state_round_trip_is_atomic_json(tmp_path):
    pool = PoolState.initial([str(i) for i in range(20)], 5, seed=0)
    state = ALState(pool, meta=dict(seed=0))
    state.mark_done(0, 'train', checkpoint='x.pth', images=5, cost=9)
    path = str(tmp_path / 'al_state.json')
    state.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ['al_state.json']
    loaded = ALState.load(path)
    assert loaded.pool.labeled_ids == pool.labeled_ids
    assert loaded.is_done(0, 'train') and not loaded.is_done(0, 'evaluate')
    assert json.loads((tmp_path / 'al_state.json').read_text())['format'] == 1
    with pytest.raises(ValueError, match='unknown step'):
        state.mark_done(0, 'fly')


def test_state_written_before_task_neutral_names_loads(tmp_path):
    """A state file of an older mmal (detection-only keys) loads with the
    new names and the same values."""
    pool = PoolState.initial([str(i) for i in range(20)], 5, seed=0)
    old = dict(
        format=1,
        meta=dict(seed=0),
        pool=pool.to_dict(),
        cycles=[
            dict(
                cycle=0,
                done=['train', 'evaluate', 'select'],
                images=5,
                boxes=9,
                mAP=0.25,
                metric_key='coco/bbox_mAP',
                mAP_points_per_10k_boxes=2777.8,
                num_selected=2,
                selected_boxes=4),
            dict(cycle=1, done=['train'], images=7, boxes=13)
        ])
    path = tmp_path / 'al_state.json'
    path.write_text(json.dumps(old))
    c0, c1 = ALState.load(str(path)).cycles
    assert (c0['cost'], c0['metric'], c0['points_per_10k_cost'],
            c0['selected_cost'], c0['cost_unit']) == (9, 0.25, 2777.8, 4,
                                                      'boxes')
    assert not {'boxes', 'mAP', 'mAP_points_per_10k_boxes', 'selected_boxes'
                } & (
                    set(c0) | set(c1))
    assert (c1['cost'], c1['cost_unit']) == (13, 'boxes')


def test_take_budget_images_and_boxes():
    ranking = ['a', 'b', 'c', 'd']
    boxes = dict(a=3, b=5, c=1, d=1)
    assert take_budget(ranking, 2) == ['a', 'b']
    assert take_budget(ranking, 10) == ranking  # budget larger than pool
    assert take_budget([], 3) == []  # empty pool
    assert take_budget(ranking, 10, 8, boxes.get) == ['a', 'b']  # exactly
    assert take_budget(ranking, 1, 100, boxes.get) == ['a']  # image cap
    assert take_budget(ranking, 10, 100, boxes.get) == ranking


def test_a_box_budget_is_spent_as_an_annotator_would():
    """Images are labeled in rank order until the box budget is used up;
    the image that crosses it is labeled too (its count was unknown before
    it was labeled), so a box budget never selects nothing."""
    ranking = ['a', 'b', 'c', 'd']
    boxes = dict(a=3, b=5, c=1, d=1)
    assert take_budget(ranking, 10, 7, boxes.get) == ['a', 'b']  # b crosses
    assert take_budget(ranking, 10, 9, boxes.get) == ['a', 'b', 'c']
    for cost_budget in (1, 2, 3):  # the first image alone crosses it
        assert take_budget(ranking, 10, cost_budget, boxes.get) == ['a']
    # images without boxes cost nothing: labeling goes on past them
    assert take_budget(['e', 'a', 'b'], 10, 2,
                       dict(e=0, **boxes).get) == ['e', 'a']
    assert take_budget(['e', 'f'], 10, 1, dict(e=0, f=0).get) == ['e', 'f']
    assert take_budget(ranking, 2, 100, boxes.get) == ['a', 'b']  # image cap
