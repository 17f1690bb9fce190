"""The fast influence path against the per-image reference path.

* batches of equal padded shape give every image what it gets at batch 1;
* batched directional scores (a backward to the θ layers' outputs only)
  equal per-image backward gradients dotted with s_test (FCOS and Faster
  R-CNN, mixed image sizes);
* the selector's fast and reference paths give the same reference
  gradient, s_test and scores, and the same ranking;
* cached head inputs give the same loss, gradient and HVP;
* the planned cache computes what Belady's rule computes, within budget.
"""
import copy

import pytest
import torch
from mmengine.dataset import pseudo_collate

from mmal.engine.shape_batches import same_shape_batches
from mmal.influence import (PlannedCache, flat_dot, hessian_vector_product,
                            loss_grad)
from mmal.models import FasterRCNNAdapter, FCOSAdapter
from mmal.selectors import InfluenceSelector
from influence_reference import FCOS_TINY, FRCNN_TINY, tiny_detector

SCORE_THR = 0.1


@pytest.fixture(scope='module', params=['fcos', 'faster-rcnn'])
def detector(request, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('fast')
    if request.param == 'fcos':
        return tiny_detector(work_dir, 'isal_fcos_shapes.py', FCOSAdapter(),
                             FCOS_TINY,
                             lambda m: m.bbox_head.conv_cls.bias.zero_(),
                             num_labeled=8, seed=3)
    return tiny_detector(work_dir, 'isal_faster-rcnn_shapes.py',
                         FasterRCNNAdapter(), FRCNN_TINY,
                         lambda m: m.roi_head.bbox_head.fc_cls.weight.mul_(30),
                         num_labeled=8, seed=3)


def _params(model, adapter):
    return [p for _, p in adapter.parameters(model)]


def _direction(params, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(p.shape, generator=gen) for p in params]


def _mixed_size_items(context):
    """Unlabeled images, every third one cropped to 64x32 and every third
    one (shifted) to 32x64: three padded shapes in one stream."""
    view = context.unlabeled_view()
    items = []
    for i, sid in enumerate(view.sample_ids):
        item = pseudo_collate([view[i]])
        item['sample_id'] = [sid]
        crop = [None, (32, 64), (64, 32)][i % 3]
        if crop is not None:
            h, w = crop
            item['inputs'][0] = item['inputs'][0][:, :h, :w].contiguous()
            meta = item['data_samples'][0]
            meta.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w)))
        items.append(item)
    return items


def test_same_shape_batches_are_what_each_image_is_alone(detector):
    model, adapter, context = detector
    items = _mixed_size_items(context)
    pre = lambda b: adapter.preprocess(model, copy.deepcopy(b))  # noqa
    alone = {it['sample_id'][0]: pre(it)['inputs'] for it in items}
    assert len({tuple(x.shape) for x in alone.values()}) == 3
    seen = []
    for data in same_shape_batches(pre, items, 3, adapter.image_key,
                                   max_pending=4):
        assert 1 <= len(data['sample_id']) <= 3
        assert data['inputs'].shape[0] == len(data['data_samples'])
        for k, sid in enumerate(data['sample_id']):
            assert torch.equal(data['inputs'][k:k + 1], alone[sid])
            shape = tuple(alone[sid].shape[-2:])
            assert data['data_samples'][k].batch_input_shape == shape
        seen += data['sample_id']
    assert sorted(seen) == sorted(alone)  # each image exactly once
    with pytest.raises(ValueError, match='batch_size'):
        next(same_shape_batches(pre, items, 0, adapter.image_key))


def test_directional_scores_equal_per_image_backward(detector):
    """Mixed sizes, batched directional scores vs batch-1 backward per image."""
    model, adapter, context = detector
    params = _params(model, adapter)
    s = _direction(params)
    items = _mixed_size_items(context)
    ref = {}
    for item in items:
        loss, num = adapter.pseudo_loss(model, copy.deepcopy(item),
                                        SCORE_THR)
        ref[item['sample_id'][0]] = None if loss is None else (
            float(flat_dot(s, loss_grad(loss, params))), num)
    fast = {}
    for data in same_shape_batches(
            lambda b: adapter.preprocess(model, copy.deepcopy(b)), items, 4,
            adapter.image_key):
        for sid, (value, num) in zip(
                data['sample_id'],
                adapter.directional_scores(model, data, s, SCORE_THR)):
            fast[sid] = None if value is None else (value, num)
    assert fast.keys() == ref.keys()
    scored = [k for k, v in ref.items() if v is not None]
    assert len(scored) >= 6
    assert {k for k, v in fast.items() if v is None} == {
        k for k, v in ref.items() if v is None}
    for k in scored:
        assert fast[k][1] == ref[k][1]  # the same pseudo boxes
        assert fast[k][0] == pytest.approx(ref[k][0], rel=1e-4, abs=1e-6)
    # the direction matters: another one gives other values
    other = adapter.directional_scores(
        model, next(same_shape_batches(
            lambda b: adapter.preprocess(model, copy.deepcopy(b)), items, 4,
            adapter.image_key)), _direction(params, 2), SCORE_THR)
    assert any(v is not None and v != pytest.approx(fast[k][0])
               for k, (v, _) in zip(fast, other) if fast[k] is not None)


def test_selector_paths_agree(detector):
    """Reference gradient, s_test (same chains), scores and ranking."""
    model, adapter, context = detector
    params = _params(model, adapter)
    solver = dict(type='mmal.LiSSA', depth=6, repeats=2, log_interval=0)
    fast = InfluenceSelector(solver=solver, batch_size=3)
    slow = InfluenceSelector(solver=solver, fast_path=False)
    v_fast = fast.reference_gradient(context, params)
    v_slow = slow.reference_gradient(context, params)
    for a, b in zip(v_fast, v_slow):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    s_fast = fast.s_test(context, params, v_slow)
    s_slow = slow.s_test(context, params, v_slow)
    for a, b in zip(s_fast, s_slow):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    chains = fast.build_solver(context).sample_chains(
        context.state.labeled_ids, context.seed)
    stats = fast.last_cache_stats[-1]  # LiSSA's (after the scale check's)
    distinct = len({sid for c in chains for sid in c})
    assert distinct < 12
    assert stats['computed'] == distinct  # each trunk pass once
    assert stats['hits'] == 12 - stats['misses'] > 0
    sc_fast = fast.score(context, params, s_slow)
    sc_slow = slow.score(context, params, s_slow)
    assert sc_fast.keys() == sc_slow.keys()
    scored = [k for k, v in sc_slow.items() if v is not None]
    assert len(scored) >= 6
    for k in scored:
        assert sc_fast[k] == pytest.approx(sc_slow[k], rel=1e-4, abs=1e-6)
    assert fast.order(sc_fast, 0) == slow.order(sc_slow, 0)


def test_cached_loss_gradient_and_hvp_equal_the_per_image_ones(detector):
    model, adapter, context = detector
    params = _params(model, adapter)
    h = _direction(params)
    loader = list(context.loader(context.labeled_view()))
    data = next(same_shape_batches(lambda b: adapter.preprocess(model, b),
                                   loader, 4, adapter.image_key))
    entries = adapter.cache_entries(model, data)
    kind = 'towers' if isinstance(adapter, FCOSAdapter) else 'feats'
    assert all(kind in e for e in entries)  # FCOS caches the head towers
    by_id = {adapter.image_key(b): b for b in loader}
    for entry in entries:
        batch = by_id[entry['sample_id']]
        ours = adapter.cached_gt_loss(model, entry)
        ref = adapter.gt_loss(model, batch)
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
        for a, b in zip(loss_grad(ours, params), loss_grad(ref, params)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
        hv_ours = hessian_vector_product(
            adapter.cached_gt_loss(model, entry), params, h)
        hv_ref = hessian_vector_product(adapter.gt_loss(model, batch),
                                        params, h)
        for a, b in zip(hv_ours, hv_ref):  # relative to the block's norm
            assert float((a - b).norm()) <= 1e-4 * float(b.norm()) + 1e-7


def test_tower_replay_that_differs_falls_back_to_trunk_features(
        tmp_path_factory, monkeypatch):
    model, adapter, context = tiny_detector(
        tmp_path_factory.mktemp('replay'), 'isal_fcos_shapes.py',
        FCOSAdapter(), FCOS_TINY)
    original = FCOSAdapter._head_from_towers

    def perturbed(self, head, towers):
        cls, reg, ctr = original(self, head, towers)
        return [c + 1e-3 for c in cls], reg, ctr

    monkeypatch.setattr(FCOSAdapter, '_head_from_towers', perturbed)
    loader = context.loader(context.labeled_view())
    data = next(same_shape_batches(lambda b: adapter.preprocess(model, b),
                                   loader, 2, adapter.image_key))
    entries = adapter.cache_entries(model, data)
    assert adapter._replay_ok is False
    assert all('feats' in e and 'towers' not in e for e in entries)


def _belady_misses(sequence, capacity):
    """Simulation of the rule, one slot per entry: on a miss the entry is
    added; entries never read again are dropped; while over capacity, the
    one read again last goes."""
    held, misses = set(), 0
    for pos, key in enumerate(sequence):
        rest = sequence[pos + 1:]
        if key not in held:
            misses += 1
            held.add(key)
        held = {k for k in held if k in rest or k == key}
        while len(held) > capacity:
            held.remove(max((k for k in held if k != key), key=rest.index))
        held = {k for k in held if k in rest}
    return misses


@pytest.mark.parametrize('capacity', [1, 2, 3, 10])
def test_planned_cache_computes_what_beladys_rule_does(capacity):
    gen = torch.Generator().manual_seed(0)
    sequence = [int(x) for x in torch.randint(0, 6, (40, ), generator=gen)]
    def compute(items):
        assert all(item == f'loaded {k}' for k, item in items)
        return {k: torch.full((4, ), float(k)) for k, _ in items}

    cache = PlannedCache(sequence, (f'loaded {k}' for k in sequence),
                         compute, lambda e: 16, 16 * capacity)
    out = [int(e[0]) for e in cache]
    assert out == sequence
    assert cache.stats['computed'] == _belady_misses(sequence, capacity)
    assert cache.stats['peak_bytes'] <= 16 * (capacity + 1)
    if capacity >= 6:
        assert cache.stats['computed'] == len(set(sequence))


def test_planned_cache_batches_upcoming_misses():
    sequence = list('abcdabcdefgh')
    calls = []

    def compute(items):
        calls.append([k for k, _ in items])
        return {k: torch.zeros(1) for k, _ in items}

    cache = PlannedCache(sequence, iter(sequence), compute, lambda e: 4,
                         1e9, batch_size=3)
    assert len(list(cache)) == len(sequence)
    assert calls == [['a', 'b', 'c'], ['d', 'e', 'f'], ['g', 'h']]
