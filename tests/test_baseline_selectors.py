"""Entropy and core-set selection against hand-computed values and direct
computations.

* entropies: hand-computed values, the detector's max over boxes, and the
  direction of the ranking (most uncertain first; the official code's
  default order is the opposite);
* the pool pass: every unlabeled id once, the same results whatever the
  batch size (float64), a wrong result count refused;
* the entropy of each image from the pool pass equals the entropy of
  mmdet's own ``model.predict`` on that image alone (float64);
* core-set's features: FCOS's towers, Faster R-CNN's FPN and the
  classifier's pooled features against a direct computation (float64);
* the core-set ranking is k-center greedy's pick order over sorted ids,
  ``budget`` long.

The end-to-end runs (two cycles, one and two processes) are in
``test_distributed.py``.
"""
import math

import numpy as np
import pytest
import torch
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData
from mmpretrain.models import ImageClassifier

from mmal.models import FasterRCNNAdapter, FCOSAdapter, ImageClassifierAdapter
from mmal.models.entropy import binary_entropy, categorical_entropy
from mmal.selectors import (CoresetSelector, EntropySelector, k_center_greedy,
                            pool_pass)
from mmal.testing import float64_mode
from influence_reference import (FCOS_TINY, FRCNN_TINY, assert_close64,
                                 tiny_detector)


def _h(p: float) -> float:
    """Binary entropy written out (nats)."""
    return -(p * math.log(p) + (1 - p) * math.log(1 - p)) if 0 < p < 1 else 0


# -- entropies ----------------------------------------------------------------
def test_entropies_equal_hand_computed_values():
    p = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0], dtype=torch.float64)
    expect = [
        0.0, 0.1 * math.log(10) + 0.9 * math.log(1 / 0.9),
        math.log(2), 0.1 * math.log(10) + 0.9 * math.log(1 / 0.9), 0.0
    ]
    assert binary_entropy(p).tolist() == pytest.approx(expect, abs=1e-15)
    probs = torch.tensor(
        [[0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]],
        dtype=torch.float64)
    assert categorical_entropy(probs).tolist() == pytest.approx(
        [math.log(4), 0.0, math.log(2)], abs=1e-15)


def _boxes(scores):
    n = len(scores)
    return InstanceData(
        bboxes=torch.zeros(n, 4),
        scores=torch.tensor(scores, dtype=torch.float32),
        labels=torch.zeros(n, dtype=torch.long))


def test_detection_entropy_is_the_most_uncertain_box():
    adapter = FCOSAdapter()
    # float32 scores: compare with the entropy of the float32 values
    for scores in ([0.95, 0.3, 0.06], [0.5], [0.99, 0.97]):
        expect = max(_h(float(torch.tensor(s))) for s in scores)
        assert adapter.prediction_entropy(_boxes(scores)) == pytest.approx(
            expect, rel=1e-12)
    assert adapter.prediction_entropy(_boxes([])) is None
    cls = ImageClassifierAdapter()
    assert cls.prediction_entropy(torch.tensor([0.5, 0.5, 0.0])) == \
        pytest.approx(math.log(2), rel=1e-7)


def test_entropy_ranks_the_most_uncertain_first(monkeypatch):
    adapter = FCOSAdapter()
    preds = {
        'a': [0.97, 0.9],
        'b': [0.52, 0.99],
        'c': [],
        'd': [0.2],
        'e': [],
        'f': [0.7, 0.05]
    }
    scores = {
        k: adapter.prediction_entropy(_boxes(v))
        for k, v in preds.items()
    }
    selector = EntropySelector()
    monkeypatch.setattr(selector, 'entropies', lambda context: scores)
    context = type('Ctx', (), dict(seed=3, logger='current'))()
    result = selector.rank(context)
    # hand-ordered: b (0.52 ~ ln 2), f (0.7), d (0.2), a (0.9), then the
    # images without a box in seeded random order
    assert result.ranking[:4] == ['b', 'f', 'd', 'a']
    assert sorted(result.ranking[4:]) == ['c', 'e']
    assert result.info['num_unscored'] == 2 and set(
        result.scores) == set('abdf')
    again = selector.rank(context)
    assert again.ranking == result.ranking  # seeded
    excluded = EntropySelector(unscored='exclude')
    monkeypatch.setattr(excluded, 'entropies', lambda context: scores)
    assert excluded.rank(context).ranking == ['b', 'f', 'd', 'a']
    with pytest.raises(ValueError, match='unscored must be one of'):
        EntropySelector(unscored='first')


# -- the pool pass and the detectors' entropies -------------------------------
@pytest.fixture(scope='module')
def fcos(tmp_path_factory):
    """An untrained tiny FCOS whose boxes score 0.5 before centerness
    (many predictions) and its selection context."""
    return tiny_detector(
        tmp_path_factory.mktemp('fcos'),
        'isal_fcos_shapes.py',
        FCOSAdapter(),
        FCOS_TINY,
        lambda m: m.bbox_head.conv_cls.bias.zero_(),
        num_labeled=8)


def test_pool_pass_visits_every_unlabeled_image_once(fcos):
    model, adapter, context = fcos
    seen = []

    def ids(model, data):
        seen.extend(data['sample_id'])
        return list(data['sample_id'])

    out = pool_pass(context, ids, batch_size=3)
    unlabeled = sorted(context.state.unlabeled_ids)
    assert sorted(seen) == sorted(out) == unlabeled
    assert all(out[k] == k for k in out)
    with pytest.raises(ValueError, match='returned 1 results for a batch'):
        pool_pass(context, lambda model, data: [0], batch_size=2)


def test_pool_pass_results_do_not_depend_on_the_batch_size(fcos):
    model, adapter, context = fcos
    with float64_mode(adapter, model):
        one, eight = (
            pool_pass(
                context,
                lambda m, d: adapter.embed(m, d['inputs']),
                batch_size=bs) for bs in (1, 8))
    assert sorted(one) == sorted(eight)
    for k in one:
        assert one[k].dtype == torch.float64
        assert_close64(eight[k], one[k])


def _mmdet_entropy(model, adapter, context, sid):
    """Entropy of one image from mmdet's ``model.predict`` at batch 1."""
    view = context.unlabeled_view()
    loader = context.loader(view, [sid])
    batch = next(iter(loader))
    data = adapter.preprocess(model, batch)
    with torch.no_grad():
        pred = model.predict(
            data['inputs'], data['data_samples'],
            rescale=False)[0].pred_instances
    if len(pred.scores) == 0:
        return None
    return max(_h(float(s)) for s in pred.scores.double())


@pytest.mark.parametrize('which', ['fcos', 'faster-rcnn'])
def test_entropies_equal_mmdet_predictions_per_image(which, fcos,
                                                     tmp_path_factory):
    if which == 'fcos':
        model, adapter, context = fcos
    else:
        model, adapter, context = tiny_detector(
            tmp_path_factory.mktemp('frcnn'),
            'isal_faster-rcnn_shapes.py',
            FasterRCNNAdapter(),
            FRCNN_TINY,
            lambda m: m.roi_head.bbox_head.fc_cls.weight.mul_(30),
            num_labeled=8)
    with float64_mode(adapter, model):
        ours = EntropySelector(batch_size=4).entropies(context)
        ref = {
            sid: _mmdet_entropy(model, adapter, context, sid)
            for sid in sorted(ours)
        }
    assert sum(v is not None for v in ref.values()) >= len(ref) // 2
    for sid, value in ref.items():
        if value is None:
            assert ours[sid] is None, sid
        else:
            assert ours[sid] == pytest.approx(value, rel=1e-9), sid


# -- core-set features ---------------------------------------------------
def _inputs(context, adapter, model, num=3):
    view = context.unlabeled_view()
    items = list(context.loader(view, sorted(view.sample_ids)[:num]))
    return next(context.shape_batches(items, num))['inputs']


def test_fcos_features_are_the_pooled_towers(fcos):
    model, adapter, context = fcos
    with float64_mode(adapter, model):
        inputs = _inputs(context, adapter, model)
        ours = adapter.embed(model, inputs)
        head = model.bbox_head
        with torch.no_grad():
            parts = []
            for tower in (head.cls_convs, head.reg_convs):
                levels = []
                for x in model.extract_feat(inputs):
                    for layer in tower:
                        x = layer(x)
                    levels.append(x.mean(dim=(2, 3)))
                parts.append(sum(levels) / len(levels))
            ref = torch.cat(parts, dim=1)
    channels = 2 * FCOS_TINY['model.bbox_head.feat_channels']
    assert ours.shape == (len(inputs), channels)
    assert_close64(ours, ref)


def test_faster_rcnn_features_are_the_pooled_fpn(tmp_path):
    model, adapter, context = tiny_detector(tmp_path,
                                            'isal_faster-rcnn_shapes.py',
                                            FasterRCNNAdapter(), FRCNN_TINY)
    with float64_mode(adapter, model):
        inputs = _inputs(context, adapter, model)
        ours = adapter.embed(model, inputs)
        with torch.no_grad():
            levels = model.neck(model.backbone(inputs))
            ref = torch.stack([
                torch.stack([x[i].mean(dim=(1, 2)) for x in levels]).mean(0)
                for i in range(len(inputs))
            ])
    assert ours.shape == (len(inputs), model.neck.out_channels)
    assert_close64(ours, ref)


def test_classifier_features_are_the_pooled_backbone_output():
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = ImageClassifier(
            backbone=dict(
                type='ResNet_CIFAR',
                depth=18,
                stem_channels=4,
                base_channels=4),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=3,
                      in_channels=32)).eval()
    adapter = ImageClassifierAdapter()
    x = torch.randn(5, 3, 8, 8)
    with float64_mode(adapter, model):
        ours = adapter.embed(model, x.double())
        with torch.no_grad():
            ref = model.backbone(x.double())[-1].mean(dim=(2, 3))
    assert ours.shape == (5, 32)
    assert_close64(ours, ref)


# -- core-set ranking ----------------------------------------------------
class _Ctx:
    """The parts of a SelectionContext that CoresetSelector.rank reads
    once ``features`` is replaced."""

    def __init__(self, budget):
        self.budget, self.device, self.logger = budget, 'cpu', 'current'


@pytest.mark.parametrize('budget', [4, None, 50])
def test_coreset_ranks_the_greedy_picks_over_sorted_ids(budget, monkeypatch):
    rng = np.random.default_rng(0)
    unl = {f'u{i:02d}': torch.tensor(rng.normal(size=3)) for i in range(20)}
    lab = {f'l{i}': torch.tensor(rng.normal(size=3)) for i in range(5)}
    # the dict order must not matter: give them in reverse
    unl_rev = dict(reversed(list(unl.items())))
    selector = CoresetSelector()
    monkeypatch.setattr(selector, 'features', lambda context, labeled: lab
                        if labeled else unl_rev)
    result = selector.rank(_Ctx(budget))
    ids = sorted(unl)
    picks = k_center_greedy(
        torch.stack([lab[k] for k in sorted(lab)]),
        torch.stack([unl[k] for k in ids]), min(budget or 20, 20))
    assert result.ranking == [ids[j] for j in picks]
    assert len(result.ranking) == min(budget or 20, 20)
    # the score of a pick: its distance to the chosen set when picked
    chosen = [lab[k] for k in lab]
    for sid in result.ranking:
        d = min(float((unl[sid] - c).norm()) for c in chosen)
        assert result.scores[sid] == pytest.approx(d, rel=1e-6)
        chosen.append(unl[sid])
