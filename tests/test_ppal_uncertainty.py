"""PPAL's difficulty-calibrated uncertainty (:mod:`mmal.selectors.
ppal_uncertainty`) against references written from the spec.

The references work box by box with Python floats (float64), as the
official sampler does on its result file: the box as ``(x1, y1, w, h)``,
rejected if ``x1 > W`` or ``y1 > H``, right and bottom edges clipped,
``sqrt(w h) > 16`` and both aspect ratios (``+1e-10`` in the
denominators) below 5; the score ``>= 0.05``; the binary entropy with
``+1e-10`` inside both logarithms; the class weight ``1 + alpha ub ln(b
(1 - q) + 1)``. The functions compute the same in float64 tensors: they
agree to a few ulp (``RTOL``).
"""
import math

import numpy as np
import pytest
import torch

from mmal.selectors.ppal_uncertainty import (candidate_pool_size,
                                             class_weights, dcus_score,
                                             official_binary_entropy,
                                             valid_boxes)

RTOL = 1e-12


def reference_weight(q: float, alpha: float = 0.3, ub: float = 0.2) -> float:
    b = math.exp(1 / alpha) - 1
    return 1 + alpha * ub * math.log(b * (1 - q) + 1)


def reference_valid(box, img_wh, min_size=16., max_ratio=5.) -> bool:
    img_w, img_h = img_wh
    x1, y1 = box[0], box[1]
    w, h = box[2] - box[0], box[3] - box[1]  # the result file's xywh
    if x1 > img_w or y1 > img_h:
        return False
    w = min(img_w, x1 + w) - x1
    h = min(img_h, y1 + h) - y1
    area = w * h
    if area < 0:  # math.sqrt refuses it; numpy gives NaN: not valid
        return False
    return (math.sqrt(area) > min_size and w / (h + 1e-10) < max_ratio
            and h / (w + 1e-10) < max_ratio)


def reference_entropy(s: float) -> float:
    return -s * math.log(s + 1e-10) - (1 - s) * math.log(1 - s + 1e-10)


def reference_score(labels, scores, boxes, img_wh, weights, thr=0.05):
    total = 0.0
    for label, s, box in zip(labels, scores, boxes):
        if not reference_valid(box, img_wh) or s < thr:
            continue
        total += weights[label] * reference_entropy(s)
    return total


def test_class_weights():
    q = torch.tensor([0., 0.1, 0.5, 0.9, 1.], dtype=torch.float32)
    w = class_weights(q)
    assert w.dtype == torch.float64 and w.shape == (5, )
    expected = [reference_weight(float(x)) for x in q]
    np.testing.assert_allclose(w.numpy(), expected, rtol=RTOL)
    assert w[0] == pytest.approx(1.2, rel=RTOL)  # q = 0: 1 + ub
    assert w[-1] == 1.0  # q = 1: 1
    assert (w[:-1] > w[1:]).all()  # harder classes weigh more
    w = class_weights(q.double(), alpha=0.5, ub=1.0)
    np.testing.assert_allclose(
        w.numpy(), [reference_weight(float(x), 0.5, 1.0) for x in q],
        rtol=RTOL)
    assert w[0] == pytest.approx(2.0, rel=RTOL)
    with pytest.raises(ValueError):
        class_weights(q[None])
    with pytest.raises(ValueError):
        class_weights(q, alpha=0.)


def test_binary_entropy():
    s = torch.tensor([0., 1e-3, 0.05, 0.3, 0.5, 0.9, 1.], dtype=torch.float64)
    np.testing.assert_allclose(
        official_binary_entropy(s).numpy(),
        [reference_entropy(float(x)) for x in s],
        rtol=RTOL,
        atol=1e-20)
    assert official_binary_entropy(s)[4] == pytest.approx(math.log(2))
    # the 1e-10 inside the logs: -ln(1 + 1e-10), not 0, at 0 and 1
    h = official_binary_entropy(s)
    assert h[0] == h[-1] == pytest.approx(-1e-10, rel=1e-6)


def random_boxes(g, k, img_w, img_h):
    """Boxes around and across the image: some beyond the right / bottom
    edge, some with x1 < 0, some thin or small."""
    x1 = torch.rand(k, generator=g, dtype=torch.float64) * (img_w + 60) - 30
    y1 = torch.rand(k, generator=g, dtype=torch.float64) * (img_h + 60) - 30
    w = torch.rand(k, generator=g, dtype=torch.float64)**2 * 300
    h = torch.rand(k, generator=g, dtype=torch.float64)**2 * 300
    return torch.stack([x1, y1, x1 + w, y1 + h], 1)


@pytest.mark.parametrize('seed', range(5))
def test_dcus_score_matches_reference(seed):
    g = torch.Generator().manual_seed(seed)
    img_wh = (640, 427)
    k = 60
    labels = torch.randint(0, 4, (k, ), generator=g)
    scores = torch.rand(k, generator=g, dtype=torch.float64) * 0.3
    scores[:3] = torch.tensor([0.05, 0.0499999, 1.0], dtype=torch.float64)
    boxes = random_boxes(g, k, *img_wh)
    weights = class_weights(torch.rand(4, generator=g))
    ours = dcus_score(labels, scores, boxes, img_wh, weights)
    ref = reference_score(labels.tolist(), scores.tolist(), boxes.tolist(),
                          img_wh, weights.tolist())
    assert isinstance(ours, float)
    assert ours == pytest.approx(ref, rel=RTOL)
    valid = [reference_valid(b, img_wh) for b in boxes.tolist()]
    assert valid_boxes(boxes, img_wh).tolist() == valid
    assert 5 < sum(valid) < k  # some of each
    # float32 inputs: compared in float64 after the cast
    ours32 = dcus_score(labels, scores.float(), boxes.float(), img_wh,
                        weights.float())
    ref32 = reference_score(labels.tolist(),
                            scores.float().double().tolist(),
                            boxes.float().double().tolist(), img_wh,
                            weights.float().double().tolist())
    assert ours32 == pytest.approx(ref32, rel=RTOL)


def test_box_rules_at_their_edges():
    W, H = 100, 80
    cases = [
        ([0, 0, 16, 16], False),  # sqrt(area) = 16: not > 16
        ([0, 0, 17, 17], True),
        ([0, 0, 100, 20], True),  # ratio 100 / (20 + 1e-10) < 5
        ([0, 0, 20, 120], True),  # ratio 6, clipped to 20 x 80: 4
        ([10, 0, 111, 20], True),  # ratio 5.05, clipped to 90 x 20
        ([95, 0, 150, 50], False),  # clipped to 5 x 50: ratio 10
        ([100, 0, 150, 50], False),  # x1 = W: kept, clipped to width 0
        ([100.5, 0, 150, 50], False),  # x1 > W: rejected
        ([60, 40, 200, 200], True),  # clipped to 40 x 40
        ([-50, -50, 10, 10], True),  # x1, y1 < 0 are not clipped: 60 x 60
        ([0, 0, -20, -20], True),  # degenerate, w h > 0: the official too
        ([0, 0, -20, 20], False),  # w h < 0: NaN size
    ]
    for box, expected in cases:
        assert reference_valid(box, (W, H)) == expected, box
    boxes = torch.tensor([b for b, _ in cases], dtype=torch.float64)
    assert valid_boxes(boxes, (W, H)).tolist() == [e for _, e in cases]


def test_dcus_score_thresholds_and_empty():
    w = torch.ones(2, dtype=torch.float64)
    box = torch.tensor([[0., 0., 50., 50.]])
    one = torch.tensor([1])
    assert dcus_score(one, torch.tensor([0.05], dtype=torch.float64), box,
                      (64, 64), w) == pytest.approx(reference_entropy(0.05))
    assert dcus_score(one, torch.tensor([0.0499], dtype=torch.float64), box,
                      (64, 64), w) == 0.0
    # float32(0.05) = 0.0500000007 >= 0.05 in float64: counts
    assert dcus_score(one, torch.tensor([0.05]), box, (64, 64), w) > 0
    empty = dcus_score(
        torch.zeros(0, dtype=torch.long), torch.zeros(0), torch.zeros(0, 4),
        (64, 64), w)
    assert empty == 0.0 and isinstance(empty, float)
    assert dcus_score(one, torch.tensor([0.5]), box * 0.1, (64, 64), w) == 0.0
    # a sum: two boxes score twice one
    two = dcus_score(
        torch.tensor([1, 1]), torch.tensor([0.3, 0.3]), box.repeat(2, 1),
        (64, 64), w)
    assert two == pytest.approx(2 *
                                reference_entropy(float(torch.tensor(0.3))))
    # the weight of the box's class
    w2 = torch.tensor([1.0, 1.2], dtype=torch.float64)
    assert dcus_score(one, torch.tensor([0.3]), box, (64, 64), w2) == \
        pytest.approx(1.2 * reference_entropy(float(torch.tensor(0.3))))


@pytest.mark.parametrize('bad', [
    dict(labels=torch.tensor([0.5])),
    dict(labels=torch.tensor([2])),
    dict(labels=torch.tensor([-1])),
    dict(scores=torch.tensor([0.5, 0.5])),
    dict(bboxes=torch.zeros(1, 5)),
])
def test_dcus_score_bad_inputs(bad):
    kw = dict(
        labels=torch.tensor([0]),
        scores=torch.tensor([0.5]),
        bboxes=torch.tensor([[0., 0., 50., 50.]]),
        img_wh=(64, 64),
        weights=torch.ones(2))
    kw.update(bad)
    with pytest.raises(ValueError):
        dcus_score(**kw)


def test_candidate_pool_size():
    # the official 8-GPU rule: VOC and COCO
    assert candidate_pool_size(414, multiple=8) == 1664
    assert candidate_pool_size(2365, multiple=8) == 9464
    # already a multiple: a full multiple more
    assert candidate_pool_size(2, multiple=8) == 16
    assert candidate_pool_size(414) == 1656
    assert candidate_pool_size(3, ratio=2.5) == 8  # ceil(7.5)
    assert candidate_pool_size(30, ratio=0.1) == 3  # not ceil(3.0000000004)
    assert candidate_pool_size(0) == 0
    assert candidate_pool_size(414, pool=1000) == 1000
    assert candidate_pool_size(414, multiple=8, pool=1660) == 1660
    assert candidate_pool_size(414, multiple=8, pool=5000) == 1664
    for bad in (dict(budget=-1), dict(budget=2.5), dict(ratio=0),
                dict(multiple=0), dict(pool=-1), dict(budget=True)):
        kw = dict(budget=10)
        kw.update(bad)
        with pytest.raises(ValueError):
            candidate_pool_size(**kw)
