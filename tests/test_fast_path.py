"""The fast influence path against the per-image reference path.

* batches of equal padded shape give every image what it gets at batch 1;
* batched directional scores (a backward to the θ layers' outputs only)
  equal per-image backward gradients dotted with s_test (FCOS and Faster
  R-CNN, mixed image sizes);
* the selector's fast and reference paths give the same reference
  gradient, s_test and scores, and the same ranking;
* cached head inputs give the same loss, gradient and HVP;
* the planned cache computes what Belady's rule computes, within budget.

Equality of two paths is checked in float64 (``adapter.float64``): in
float32 they differ by rounding that depends on the CPU, the BLAS, the
thread count and the batch size, and a detector turns such bits into other
discrete choices (for Faster R-CNN, the sign of the L1 box loss's gradient
where a pseudo box is the model's own prediction: see the README). The
float64 tolerances (1e-9 relative) sit far above float64 rounding (~1e-15
measured, sums of ~1e4 terms of eps 2.2e-16) and far below float32
rounding (~1e-7), so a path that leaks float32 anywhere fails them.
"""
import copy

import pytest
import torch
from mmengine.dataset import pseudo_collate

from mmal.datasets.shape_batches import pad_divisor, same_shape_batches
from mmal.influence import (PlannedCache, flat_dot, hessian_vector_product,
                            loss_grad)
from mmal.models import FasterRCNNAdapter, FCOSAdapter
from mmal.selectors import InfluenceSelector
from mmal.testing import float64_mode
from influence_reference import FCOS_TINY, FRCNN_TINY, tiny_detector

SCORE_THR = 0.1
RTOL = 1e-9  # float64 comparisons: see the module docstring


@pytest.fixture(scope='module', params=['fcos', 'faster-rcnn'])
def detector(request, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('fast')
    if request.param == 'fcos':
        return tiny_detector(
            work_dir,
            'isal_fcos_shapes.py',
            FCOSAdapter(),
            FCOS_TINY,
            lambda m: m.bbox_head.conv_cls.bias.zero_(),
            num_labeled=8,
            seed=3)
    return tiny_detector(
        work_dir,
        'isal_faster-rcnn_shapes.py',
        FasterRCNNAdapter(),
        FRCNN_TINY,
        lambda m: m.roi_head.bbox_head.fc_cls.weight.mul_(30),
        num_labeled=8,
        seed=3)


def _params(model, adapter):
    return [p for _, p in adapter.parameters(model)]


def _direction(params, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(p.shape, generator=gen) for p in params]


def _mixed_size_items(context):
    """Unlabeled images (64x64), cropped in turn to 32x64, 64x32 and 50x60:
    three padded shapes in one stream (50x60 pads to 64x64, the shape of
    the uncropped images)."""
    view = context.unlabeled_view()
    items = []
    for i, sid in enumerate(view.sample_ids):
        item = pseudo_collate([view[i]])
        item['sample_id'] = [sid]
        crop = [None, (32, 64), (64, 32), (50, 60)][i % 4]
        if crop is not None:
            h, w = crop
            item['inputs'][0] = item['inputs'][0][:, :h, :w].contiguous()
            meta = item['data_samples'][0]
            meta.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w)))
        items.append(item)
    return items


@pytest.mark.parametrize('by_raw_size', [True, False])
def test_same_shape_batches_are_what_each_image_is_alone(
        detector, by_raw_size):
    """Grouped by the padded shape predicted from the raw size and
    preprocessed once per batch, or preprocessed image by image."""
    model, adapter, context = detector
    items = _mixed_size_items(context)
    pre = lambda b: adapter.preprocess(model, copy.deepcopy(b))  # noqa
    alone = {it['sample_id'][0]: pre(it)['inputs'] for it in items}
    assert len({tuple(x.shape) for x in alone.values()}) == 3
    divisor = pad_divisor(model.data_preprocessor) if by_raw_size else None
    assert divisor == (32 if by_raw_size else None)
    seen = []
    for data in same_shape_batches(
            pre, items, 3, adapter.image_key, max_pending=4, divisor=divisor):
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


def _per_image_and_batched_scores(model, adapter, items, s):
    """Per image: (loss_grad(pseudo_loss) · s, pseudo boxes), and the same
    from batched directional scores (batches of up to 4)."""
    params = _params(model, adapter)
    ref, fast = {}, {}
    for item in items:
        loss, num = adapter.pseudo_loss(model, copy.deepcopy(item), SCORE_THR)
        ref[item['sample_id'][0]] = None if loss is None else (float(
            flat_dot(s, loss_grad(loss, params))), num)
    for data in same_shape_batches(
            lambda b: adapter.preprocess(model, copy.deepcopy(b)), items, 4,
            adapter.image_key):
        for sid, (value, num) in zip(
                data['sample_id'],
                adapter.directional_scores(model, data, s, SCORE_THR)):
            fast[sid] = None if value is None else (value, num)
    return ref, fast


def test_directional_scores_equal_per_image_backward(detector):
    """Mixed sizes, batched directional scores vs batch-1 backward per image
    (float64)."""
    model, adapter, context = detector
    items = _mixed_size_items(context)
    with float64_mode(adapter, model):
        params = _params(model, adapter)
        assert all(p.dtype == torch.float64 for p in params)
        s = [x.double() for x in _direction(params)]
        ref, fast = _per_image_and_batched_scores(model, adapter, items, s)
        other = adapter.directional_scores(
            model,
            next(
                same_shape_batches(
                    lambda b: adapter.preprocess(model, copy.deepcopy(b)),
                    items, 4, adapter.image_key)),
            [x.double() for x in _direction(params, 2)], SCORE_THR)
    assert all(p.dtype == torch.float32 for p in _params(model, adapter))
    assert fast.keys() == ref.keys()
    scored = [k for k, v in ref.items() if v is not None]
    assert len(scored) >= 6
    assert {k
            for k, v in fast.items()
            if v is None} == {k
                              for k, v in ref.items() if v is None}
    for k in scored:
        assert fast[k][1] == ref[k][1]  # the same pseudo boxes
        assert fast[k][0] == pytest.approx(ref[k][0], rel=RTOL)
    # the direction matters: another one gives other values
    assert any(v is not None and v != pytest.approx(fast[k][0], rel=1e-3)
               for k, (v, _) in zip(fast, other) if fast[k] is not None)


def test_directional_scores_in_float32_cover_every_image(detector):
    """In float32 only what holds whatever the rounding: both paths run
    (after a float64 pass the model is float32 again) and give every image
    a finite score or None."""
    model, adapter, context = detector
    items = _mixed_size_items(context)
    params = _params(model, adapter)
    s = _direction(params)
    ref, fast = _per_image_and_batched_scores(model, adapter, items, s)
    assert fast.keys() == ref.keys() == {it['sample_id'][0] for it in items}
    values = [v[0] for v in list(fast.values()) + list(ref.values()) if v]
    assert values and all(torch.isfinite(torch.tensor(values)))


def test_selector_paths_agree(detector):
    """Reference gradient, s_test (same chains), scores and ranking
    (float64)."""
    model, adapter, context = detector
    solver = dict(type='mmal.LiSSA', depth=6, repeats=2, log_interval=0)
    fast = InfluenceSelector(solver=solver, batch_size=3)
    slow = InfluenceSelector(solver=solver, fast_path=False)
    with float64_mode(adapter, model):
        params = _params(model, adapter)
        v_fast = fast.reference_gradient(context, params)
        v_slow = slow.reference_gradient(context, params)
        s_fast = fast.s_test(context, params, v_slow)
        s_slow = slow.s_test(context, params, v_slow)
        sc_fast = fast.score(context, params, s_slow)
        sc_slow = slow.score(context, params, s_slow)
    for a, b in zip(v_fast + s_fast, v_slow + s_slow):
        assert a.dtype == b.dtype == torch.float64
        torch.testing.assert_close(a, b, rtol=RTOL, atol=RTOL * b.abs().max())
    chains = fast.build_solver(context).sample_chains(
        context.state.labeled_ids, context.seed)
    stats = fast.last_cache_stats[-1]  # LiSSA's (after the scale check's)
    distinct = len({sid for c in chains for sid in c})
    assert distinct < 12
    assert stats['computed'] == distinct  # each trunk pass once
    assert stats['hits'] == 12 - stats['misses'] > 0
    assert sc_fast.keys() == sc_slow.keys()
    scored = [k for k, v in sc_slow.items() if v is not None]
    assert len(scored) >= 6
    for k in scored:
        assert sc_fast[k] == pytest.approx(sc_slow[k], rel=RTOL)
    assert fast.order(sc_fast, 0) == slow.order(sc_slow, 0)


def test_cached_loss_gradient_and_hvp_equal_the_per_image_ones(detector):
    """Cached head inputs vs a pass from the image (float64)."""
    model, adapter, context = detector
    loader = list(context.loader(context.labeled_view()))
    by_id = {adapter.image_key(b): b for b in loader}
    kind = 'towers' if isinstance(adapter, FCOSAdapter) else 'feats'
    with float64_mode(adapter, model):
        params = _params(model, adapter)
        h = [x.double() for x in _direction(params)]
        data = next(
            same_shape_batches(lambda b: adapter.preprocess(model, b), loader,
                               4, adapter.image_key))
        entries = adapter.cache_entries(model, data)
        assert all(kind in e for e in entries)  # FCOS caches the head towers
        for entry in entries:
            batch = by_id[entry['sample_id']]
            ours = adapter.cached_gt_loss(model, entry)
            ref = adapter.gt_loss(model, batch)
            assert ours.dtype == ref.dtype == torch.float64
            assert float(ours.detach()) == pytest.approx(
                float(ref.detach()), rel=RTOL)
            pairs = list(zip(loss_grad(ours, params), loss_grad(ref, params)))
            pairs += list(
                zip(
                    hessian_vector_product(
                        adapter.cached_gt_loss(model, entry), params, h),
                    hessian_vector_product(
                        adapter.gt_loss(model, batch), params, h)))
            for a, b in pairs:  # relative to each block's largest entry
                torch.testing.assert_close(
                    a, b, rtol=RTOL, atol=RTOL * float(b.abs().max()))


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
    data = next(
        same_shape_batches(lambda b: adapter.preprocess(model, b), loader, 2,
                           adapter.image_key))
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

    cache = PlannedCache(sequence, (f'loaded {k}' for k in sequence), compute,
                         lambda e: 16, 16 * capacity)
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

    cache = PlannedCache(
        sequence, iter(sequence), compute, lambda e: 4, 1e9, batch_size=3)
    assert len(list(cache)) == len(sequence)
    assert calls == [['a', 'b', 'c'], ['d', 'e', 'f'], ['g', 'h']]


def test_float64_context_is_undone_exactly(detector):
    """Inside: float64 model and images, `.float()` keeps float64, NMS takes
    float64 boxes; after: the same float32 parameters bit for bit, and
    torch / mmcv as they were."""
    import importlib

    from mmcv.ops import nms
    model, adapter, context = detector
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ext = importlib.import_module('mmcv.ops.nms').ext_module
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.],
                          [20., 20., 30., 30.]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    with pytest.raises(Exception):  # mmcv's CPU NMS: float32 only
        nms(boxes.double(), scores.double(), 0.5)
    with float64_mode(adapter, model):
        assert all(v.dtype == torch.float64
                   for v in model.state_dict().values()
                   if v.is_floating_point())
        assert torch.ones(1, dtype=torch.float64).float().dtype == \
            torch.float64
        assert torch.ones(1, dtype=torch.uint8).float().dtype == torch.float32
        _, keep = nms(boxes.double(), scores.double(), 0.5)
        assert keep.tolist() == [0, 2]
        batch = next(iter(context.loader(context.labeled_view())))
        assert adapter.preprocess(model, batch)['inputs'].dtype == \
            torch.float64
    assert torch.ones(1, dtype=torch.float64).float().dtype == torch.float32
    assert importlib.import_module('mmcv.ops.nms').ext_module is ext
    assert adapter.preprocess(model, batch)['inputs'].dtype == torch.float32
    after = model.state_dict()
    assert all(
        torch.equal(before[k], after[k]) and before[k].dtype == after[k].dtype
        for k in before)
