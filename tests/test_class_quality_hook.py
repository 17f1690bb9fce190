"""``mmal.ClassQualityHook``: PPAL's per-class quality EMA (spec §1) kept on
an unedited mmdet dense head during a plain training.

* :func:`ema_update` against values computed by hand (both policies);
* the probes' (label, quality) pairs on a hand-made batch: RetinaNet set up
  so that p and IoU are known (our own anchor assignment), RetinaNet, FCOS
  and ATSS against the head's own targets with our own float64 decoding;
* a plain mmengine training with the hook: the checkpoint holds the
  quality, ``resume`` restores it, :func:`class_quality_of` reads it.
"""
import math
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmengine.structures import InstanceData

from mmal.engine.class_quality_hook import (ClassQualityHook, QualityProbe,
                                            ema_update, positive_quality)
from mmal.models.class_quality import class_quality_of
from mmal.utils.checkpoint import trusted_checkpoint_loading
from mmal.utils.errors import ConfigError
from conftest import tiny_config

XI = 0.6


# -- the EMA, by hand ---------------------------------------------------------
def _step(q, m, sums, counts, absent, base=0.9):
    q, m = ema_update(
        torch.tensor(q, dtype=torch.float64),
        torch.tensor(m, dtype=torch.float64),
        torch.tensor(sums, dtype=torch.float64),
        torch.tensor(counts, dtype=torch.float64), base, absent)
    return q.tolist(), m.tolist()


def _close(a, b):
    # every value is a handful of float64 operations on numbers <= 1
    assert a == pytest.approx(b, rel=1e-12, abs=1e-15)


def test_ema_update_decay_is_the_official_update():
    """Base 0.9, three classes. Batch 1: class 0 has 2 positives (sum 0.8),
    class 1 one positive of quality 0 (present, average 0), class 2 none.
    Batches 2-3: nothing. Batch 4: class 0 one positive of 0.5."""
    q, m = [0., 0., 0.], [0.9, 0.9, 0.9]
    q, m = _step(q, m, [0.8, 0., 0.], [2, 1, 0], 'decay')
    a = 0.8 / 2.00001  # the official + 1e-5 in the count
    _close(q, [0.1 * a, 0., 0.])
    _close(m, [0.9, 0.81, 0.81])  # average 0: the momentum shrinks
    q, m = _step(q, m, [0., 0., 0.], [0, 0, 0], 'decay')
    _close(q, [0.9 * 0.1 * a, 0., 0.])  # absent: q decays by m
    _close(m, [0.81, 0.729, 0.729])
    q, m = _step(q, m, [0., 0., 0.], [0, 0, 0], 'decay')
    _close(q, [0.81 * 0.9 * 0.1 * a, 0., 0.])
    _close(m, [0.729, 0.6561, 0.6561])
    q, m = _step(q, m, [0.5, 0., 0.], [1, 0, 0], 'decay')
    # the OLD momentum 0.729 weighs this update, then it is reset
    _close(q,
           [0.729 * (0.81 * 0.9 * 0.1 * a) + 0.271 * (0.5 / 1.00001), 0., 0.])
    _close(m, [0.9, 0.59049, 0.59049])


def test_ema_update_hold_skips_absent_classes():
    q, m = [0., 0., 0.], [0.9, 0.9, 0.9]
    q, m = _step(q, m, [0.8, 0., 0.], [2, 1, 0], 'hold')
    a = 0.8 / 2.00001
    _close(q, [0.1 * a, 0., 0.])
    _close(m, [0.9, 0.81, 0.9])  # class 1 is present (average 0)
    for _ in range(2):
        q, m = _step(q, m, [0., 0., 0.], [0, 0, 0], 'hold')
        _close(q, [0.1 * a, 0., 0.])
        _close(m, [0.9, 0.81, 0.9])
    q, m = _step(q, m, [0.5, 0.3, 0.], [1, 1, 0], 'hold')
    _close(q,
           [0.9 * 0.1 * a + 0.1 * (0.5 / 1.00001), 0.19 * 0.3 / 1.00001, 0.])
    _close(m, [0.9, 0.9, 0.9])


def test_ema_update_absent_decay_closed_form():
    """Spec §1: after k absent iterations q is multiplied by
    base^(k(k+1)/2) (0.99: x0.58 at k=10)."""
    q = torch.tensor([0.7], dtype=torch.float64)
    m = torch.tensor([0.99], dtype=torch.float64)
    zero = torch.zeros(1, dtype=torch.float64)
    for _ in range(10):
        q, m = ema_update(q, m, zero, zero, 0.99, 'decay')
    _close(q.item(), 0.7 * 0.99**55)
    _close(m.item(), 0.99**11)
    assert 0.57 < 0.99**55 < 0.58
    with pytest.raises(ConfigError):
        ema_update(q, m, zero, zero, 0.99, 'keep')


def test_positive_quality_by_hand():
    """pred (0,0,2,2) vs target (1,0,3,2): IoU 2/6; p = 0.8 (sigmoid) or
    0.5 (softmax of logits log 2, log 1, log 1 at label 0)."""
    pred = torch.tensor([[0., 0., 2., 2.]], dtype=torch.float64)
    target = torch.tensor([[1., 0., 3., 2.]], dtype=torch.float64)
    label = torch.tensor([1])
    logits = torch.tensor([[0., math.log(4.)]], dtype=torch.float64)
    q = positive_quality(logits, label, pred, target, XI, use_sigmoid=True)
    _close(q.tolist(), [0.8**0.6 * (1 / 3)**0.4])
    logits = torch.log(torch.tensor([[2., 1., 1.]], dtype=torch.float64))
    q = positive_quality(
        logits, torch.tensor([0]), pred, target, XI, use_sigmoid=False)
    _close(q.tolist(), [0.5**0.6 * (1 / 3)**0.4])


# -- the probes on a hand-made batch ------------------------------------------
def _model(name: str):
    from mmdet.registry import MODELS
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(tiny_config(name).model)
    return model.train()


GT_BOXES = [
    torch.tensor([[4., 6., 30., 28.], [30., 34., 60., 62.]]),
    torch.tensor([[10., 12., 50., 44.]])
]
GT_LABELS = [torch.tensor([0, 2]), torch.tensor([1])]


def _batch():
    from mmdet.structures import DetDataSample
    inputs = torch.randn(
        2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    samples = []
    for boxes, labels in zip(GT_BOXES, GT_LABELS):
        s = DetDataSample(
            metainfo=dict(
                img_shape=(64, 64),
                ori_shape=(64, 64),
                pad_shape=(64, 64),
                batch_input_shape=(64, 64),
                scale_factor=(1., 1.)))
        s.gt_instances = InstanceData(bboxes=boxes, labels=labels)
        samples.append(s)
    return inputs, samples


def _probed_loss(model):
    """model.loss on the batch with the probe installed: the collected
    (labels, quality) and the head's outputs of that same forward."""
    head = model.bbox_head
    outs = []
    handle = head.register_forward_hook(lambda m, i, o: outs.append(
        [[t.detach() for t in level] for level in o]))
    probe = QualityProbe(head, XI).install()
    try:
        model.loss(*_batch())
    finally:
        probe.remove()
        handle.remove()
    assert 'loss_by_feat_single' not in head.__dict__  # restored
    assert not head.loss_cls._forward_pre_hooks
    assert not head.loss_bbox._forward_pre_hooks
    labels, quality = probe.take()
    return probe.kind, labels, quality, outs[0]


def _iou(a, b):
    """Aligned IoU of x1y1x2y2 rows, float64."""
    wh = (torch.min(a[:, 2:], b[:, 2:]) - torch.max(a[:, :2], b[:, :2]))
    inter = wh.clamp(min=0).prod(1)
    area = (a[:, 2:] - a[:, :2]).prod(1) + (b[:, 2:] - b[:, :2]).prod(1)
    return inter / (area - inter)


def _pairwise_iou(a, b):
    """IoU of every row of ``a`` with every row of ``b``, (len(a), len(b))."""
    rows = a[:, None].expand(-1, len(b), 4).reshape(-1, 4)
    cols = b[None].expand(len(a), -1, 4).reshape(-1, 4)
    return _iou(rows, cols).view(len(a), len(b))


def _delta_decode(anchors, deltas, coder):
    """DeltaXYWH decoding written from its formula, float64 (log-size
    deltas clipped at |log(16 / 1000)|, decode's default; no centre
    clamp)."""
    assert not coder.add_ctr_clamp
    std = torch.tensor(coder.stds, dtype=torch.float64)
    mean = torch.tensor(coder.means, dtype=torch.float64)
    d = deltas * std + mean
    ctr = (anchors[:, :2] + anchors[:, 2:]) / 2
    size = anchors[:, 2:] - anchors[:, :2]
    clip = abs(math.log(16 / 1000))
    ctr = ctr + size * d[:, :2]
    size = size * d[:, 2:].clamp(-clip, clip).exp()
    return torch.cat([ctr - size / 2, ctr + size / 2], 1)


def _scales(pred, target):
    """(P, 2): the largest absolute coordinate and the smallest side of
    each pair of boxes (what float32 rounding of the boxes is relative
    to)."""
    boxes = torch.cat([pred, target], 1).view(-1, 2, 4)
    sides = (boxes[..., 2:] - boxes[..., :2]).flatten(1).amin(1)
    return torch.stack([boxes.abs().flatten(1).amax(1), sides], 1)


def _quality(scores, labels, pred, target):
    p = scores.gather(1, labels[:, None]).sigmoid().view(-1)
    return p**XI * _iou(pred, target)**(1 - XI)


def test_retinanet_probe_with_known_p_and_iou():
    """RetinaNet with a constant head: the logit of class c is b_c at every
    anchor, the deltas are 0 (predicted box = anchor). The positives follow
    the official MaxIoUAssigner rule (IoU >= 0.5 with the best GT, plus
    each GT's best anchors), computed here; quality = sigmoid(b_c)^0.6 *
    IoU(anchor, GT)^0.4."""
    model = _model('isal_retinanet_shapes.py')
    head = model.bbox_head
    logits = torch.tensor([0.5, -1., 2.])  # exact in float32
    with torch.no_grad():
        head.retina_cls.weight.zero_()
        head.retina_cls.bias.copy_(logits.repeat(head.num_base_priors))
        head.retina_reg.weight.zero_()
        head.retina_reg.bias.zero_()
    kind, labels, quality, _ = _probed_loss(model)
    assert kind == 'anchor'
    anchors = torch.cat(
        head.prior_generator.grid_priors([(8, 8), (4, 4), (2, 2)],
                                         device='cpu')).double()
    exp_labels, exp_quality = [], []
    for boxes, gt_labels in zip(GT_BOXES, GT_LABELS):
        iou = _pairwise_iou(boxes.double(), anchors)  # (G, M)
        # no IoU near the thresholds, every GT has an anchor >= 0.5
        assert ((iou - 0.5).abs() > 1e-4).all()
        assert (iou.max(1).values > 0.5).all()
        best, gt = iou.max(0)
        assigned = torch.where(best >= 0.5, gt, -1)
        for g in range(len(boxes)):
            assigned[iou[g] == iou[g].max()] = g
        pos = assigned >= 0
        lab = gt_labels[assigned[pos]]
        exp_labels.append(lab)
        exp_quality.append(
            logits.double()[lab].sigmoid()**XI *
            iou[assigned[pos], pos.nonzero().view(-1)]**(1 - XI))
    exp_labels, exp_quality = torch.cat(exp_labels), torch.cat(exp_quality)
    assert set(labels.tolist()) == {0, 1, 2}
    assert quality.dtype == torch.float64

    def pairs(lab, q):
        return sorted(zip(lab.tolist(), q.tolist()))

    got, want = pairs(labels, quality), pairs(exp_labels, exp_quality)
    assert [g[0] for g in got] == [w[0] for w in want]
    # the probe decodes the float32-encoded GT deltas back: coordinates
    # off by ~1e-6 px on boxes of >= 20 px, so relative ~1e-7 in q
    assert [g[1] for g in got] == pytest.approx([w[1] for w in want], rel=1e-6)


def _anchor_reference(head, outs, samples, targets_are_boxes):
    """(labels, quality) of the positives from the head's own get_targets,
    decoded here in float64, in the probe's order (level, image, prior)."""
    cls_scores, bbox_preds = outs[0], outs[1]
    metas = [s.metainfo for s in samples]
    anchor_list, valid = head.get_anchors([c.shape[-2:] for c in cls_scores],
                                          metas,
                                          device='cpu')
    gts = [s.gt_instances for s in samples]
    targets = head.get_targets(anchor_list, valid, gts, metas)
    if targets_are_boxes:  # ATSS: levels' anchors first, boxes as targets
        level_anchors, labels_list, _, box_targets = targets[:4]
    else:
        labels_list, _, box_targets = targets[:3]
        level_anchors = [
            torch.stack([a[lv] for a in anchor_list])
            for lv in range(len(cls_scores))
        ]
    labels, quality, boxes = [], [], []
    for lv, (score, pred) in enumerate(zip(cls_scores, bbox_preds)):
        lab = labels_list[lv].reshape(-1)
        pos = (lab >= 0) & (lab < head.num_classes)
        score = score.permute(0, 2, 3, 1).reshape(lab.numel(), -1)
        pred = pred.permute(0, 2, 3, 1).reshape(lab.numel(), -1)
        anchors = level_anchors[lv].reshape(-1, 4)[pos].double()
        target = box_targets[lv].reshape(-1, 4)[pos].double()
        if not targets_are_boxes:
            target = _delta_decode(anchors, target, head.bbox_coder)
        pred = _delta_decode(anchors, pred[pos].double(), head.bbox_coder)
        labels.append(lab[pos])
        quality.append(_quality(score[pos].double(), lab[pos], pred, target))
        boxes.append(_scales(pred, target))
    return torch.cat(labels), torch.cat(quality), torch.cat(boxes)


def _fcos_reference(head, outs, samples):
    """The same for FCOS: its own get_targets (distances), flattened as
    its loss flattens them, decoded here around the points."""
    cls_scores, bbox_preds = outs[0], outs[1]
    points = head.prior_generator.grid_priors(
        [c.shape[-2:] for c in cls_scores], device='cpu')
    labels_list, targets_list = head.get_targets(
        points, [s.gt_instances for s in samples])
    n = len(samples)
    labels = torch.cat(labels_list)
    scores = torch.cat([
        s.permute(0, 2, 3, 1).reshape(-1, head.cls_out_channels)
        for s in cls_scores
    ])
    dist = torch.cat(
        [p.permute(0, 2, 3, 1).reshape(-1, 4) for p in bbox_preds])
    targets = torch.cat(targets_list)
    points = torch.cat([p.repeat(n, 1) for p in points])
    pos = (labels >= 0) & (labels < head.num_classes)
    pts = points[pos].double()

    def box(d):
        return torch.cat([pts - d[:, :2], pts + d[:, 2:]], 1)

    pred, target = box(dist[pos].double()), box(targets[pos].double())
    return (labels[pos],
            _quality(scores[pos].double(), labels[pos], pred,
                     target), _scales(pred, target))


@pytest.mark.parametrize('name,kind', [('isal_retinanet_shapes.py', 'anchor'),
                                       ('isal_fcos_shapes.py', 'dense'),
                                       ('isal_atss_shapes.py', 'dense')])
def test_probe_matches_the_heads_own_targets(name, kind):
    """Random (untrained) heads: every positive of the head's own targets,
    in the same order, with the quality computed here from the same
    forward's outputs (FCOS, ATSS: loss_cls's positives paired with
    loss_bbox's boxes; the probe checks that their numbers agree)."""
    model = _model(name)
    head = model.bbox_head
    got_kind, labels, quality, outs = _probed_loss(model)
    assert got_kind == kind
    samples = _batch()[1]
    if name == 'isal_fcos_shapes.py':
        want_labels, want, boxes = _fcos_reference(head, outs, samples)
    else:
        want_labels, want, boxes = _anchor_reference(
            head, outs, samples, targets_are_boxes='atss' in name)
    assert labels.tolist() == want_labels.tolist()
    assert set(labels.tolist()) == {0, 1, 2}
    assert (quality > 0).any() and (quality <= 1).all()
    if kind == 'anchor':  # the same float32 outputs, decoded in float64
        assert quality.tolist() == pytest.approx(
            want.tolist(), rel=1e-9, abs=1e-12)
    else:  # the probe gets the head's boxes, decoded in float32: their
        # coordinates are off by up to eps32 * |x|, the IoU by ~4 such
        # errors over the smallest side, q by (1 - xi) times that
        eps = torch.finfo(torch.float32).eps
        rel = (1 - XI) * 4 * eps * boxes[:, 0] / boxes[:, 1]
        assert (boxes[:, 1] > 0).all()
        assert ((quality - want).abs() <= 4 * rel * want + 1e-12).all()


def test_before_run_finds_the_head_or_refuses_it():
    """The buffers go on the target model's head under a learning-loss
    wrapper and a DDP-style ``.module``; an unsupported head (GFL) fails
    at before_run with the list of the heads that work."""
    model = _model('learning-loss_fcos_shapes.py')
    ClassQualityHook(base_momentum=0.9).before_run(
        SimpleNamespace(model=SimpleNamespace(module=model)))
    head = model.target_model.bbox_head
    assert head.class_quality.tolist() == [0., 0., 0.]
    assert head.class_momentum.tolist() == pytest.approx([0.9] * 3)
    keys = [k for k in model.state_dict() if 'class_' in k]
    assert sorted(keys) == [
        'model.bbox_head.class_momentum', 'model.bbox_head.class_quality'
    ]
    model = _model('isal_gfl_shapes.py')
    with pytest.raises(ConfigError, match='RetinaHead.*FCOSHead.*ATSSHead'):
        ClassQualityHook().before_run(SimpleNamespace(model=model))
    with pytest.raises(ConfigError):
        ClassQualityHook(absent='keep')


# -- a plain mmengine training ------------------------------------------------
class _Record(Hook):
    """The head's quality and momentum at before_train and after_train."""

    def __init__(self):
        self.seen = {}

    def _keep(self, runner, when):
        head = runner.model.bbox_head
        self.seen[when] = head.class_quality.detach().clone()
        self.seen[when + '_momentum'] = head.class_momentum.detach().clone()

    def before_train(self, runner):
        self._keep(runner, 'before_train')

    def after_train(self, runner):
        self._keep(runner, 'after_train')


def _train(cfg, resume=False):
    cfg = cfg.copy()
    cfg.resume = resume
    record = _Record()
    with DefaultScope.overwrite_default_scope('mmdet'), \
            trusted_checkpoint_loading():
        runner = Runner.from_cfg(cfg)
        runner.register_hook(record, priority='LOWEST')
        runner.train()
    return runner, record.seen


def test_training_saves_and_resumes_the_quality(tmp_path):
    from mmal.datasets.synthetic import generate_shapes_dataset
    data = generate_shapes_dataset(
        str(tmp_path / 'data'),
        num_train=4,
        num_val=1,
        img_size=64,
        max_objects=3,
        seed=0)
    cfg = tiny_config(
        'isal_retinanet_shapes.py', **{
            'train_cfg.max_epochs': 1,
            'train_dataloader.batch_size': 2
        })
    cfg.train_dataloader.dataset.update(data['train'])
    for key in ('al_cfg', 'demo_data'):
        cfg.pop(key)
    for key in ('val', 'test'):
        cfg[f'{key}_dataloader'] = cfg[f'{key}_cfg'] = None
        cfg[f'{key}_evaluator'] = None
    cfg.default_hooks.pop('visualization')
    cfg.work_dir = str(tmp_path / 'work')
    cfg.custom_hooks = [dict(type='mmal.ClassQualityHook')]

    runner, seen = _train(cfg)  # 1 epoch of 2 iterations
    head = runner.model.bbox_head
    assert 'loss_by_feat_single' not in head.__dict__  # probe removed
    ckpt_file = osp.join(cfg.work_dir, 'epoch_1.pth')
    with trusted_checkpoint_loading():
        state = torch.load(
            ckpt_file, map_location='cpu', weights_only=False)['state_dict']
    saved = state['bbox_head.class_quality']
    assert saved.shape == (3, )
    assert (saved >= 0).all() and (saved <= 1).all() and (saved > 0).any()
    assert (seen['before_train'] == 0).all()
    assert (seen['before_train_momentum'] == torch.tensor(0.99)).all()
    assert torch.equal(seen['after_train'], saved)
    assert torch.equal(state['bbox_head.class_momentum'],
                       seen['after_train_momentum'])

    cfg.train_cfg.max_epochs = 2
    runner, seen = _train(cfg, resume=True)  # restored before it goes on
    assert torch.equal(seen['before_train'], saved)
    assert not torch.equal(seen['after_train'], saved)  # and updated

    # a detector built afresh has no buffer: read from the checkpoint
    fresh = _model('isal_retinanet_shapes.py')
    assert class_quality_of(fresh) is None
    last = osp.join(cfg.work_dir, 'epoch_2.pth')
    assert torch.equal(class_quality_of(fresh, last), seen['after_train'])
    assert torch.equal(class_quality_of(runner.model), seen['after_train'])
