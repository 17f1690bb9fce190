"""PPAL's per-class quality, kept during a plain mmdet training (a hook).

PPAL (Yang et al., CVPR 2024) calibrates its image uncertainty with a
per-class *quality* q_c: an exponential moving average, over the training
iterations, of ``p^xi * IoU^(1-xi)`` of the positive priors of class c
(p: the predicted probability of the ground-truth class at the prior; IoU:
between the decoded predicted box and the target box). The official code
keeps it in a buffer of an edited RetinaNet head; :class:`ClassQualityHook`
keeps the same buffer on an unedited mmdet dense head, by probing the
head's loss computation during training.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.dist import all_reduce
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmal.models.class_quality import bbox_head_of
from mmal.registry import HOOKS
from mmal.utils.errors import ConfigError

#: The heads whose training loss the probes read (checked on the methods
#: the head's class actually uses, so a subclass that keeps them qualifies).
SUPPORTED_HEADS = ('RetinaHead, RetinaSepBNHead, RPNHead, AnchorHead '
                   '(AnchorHead.loss_by_feat_single), FCOSHead, NASFCOSHead '
                   '(FCOSHead.loss_by_feat) and ATSSHead (with '
                   'reg_decoded_bbox=True)')
#: The official code's ``avg_c = sum_c / (count_c + 1e-5)``.
COUNT_EPS = 1e-5
ABSENT_POLICIES = ('decay', 'hold')


# -- pure functions ----------------------------------------------------------
def _aligned_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """IoU of row i of ``boxes1`` with row i of ``boxes2`` (x1y1x2y2)."""
    from mmdet.structures.bbox import bbox_overlaps
    return bbox_overlaps(boxes1, boxes2, is_aligned=True)


def positive_quality(scores: torch.Tensor,
                     labels: torch.Tensor,
                     pred_boxes: torch.Tensor,
                     target_boxes: torch.Tensor,
                     xi: float = 0.6,
                     use_sigmoid: bool = True) -> torch.Tensor:
    """PPAL's quality ``p^xi * IoU^(1-xi)`` of positive priors.

    Args:
        scores (Tensor): Classification logits of the positives, shape
            (P, C) for a sigmoid head or (P, C + 1) for a softmax head.
        labels (Tensor): Their ground-truth classes, shape (P,), in
            [0, C).
        pred_boxes (Tensor): Their decoded predicted boxes, shape (P, 4),
            x1y1x2y2.
        target_boxes (Tensor): Their target (ground-truth) boxes, shape
            (P, 4), x1y1x2y2.
        xi (float): The weight of the probability. Defaults to 0.6.
        use_sigmoid (bool): p is the sigmoid of the label's logit (True) or
            the softmax over the row (False). Defaults to True.

    Returns:
        Tensor: The quality of each positive, shape (P,), in [0, 1], in the
        dtype of ``scores``.
    """
    index = labels.long().view(-1, 1)
    if use_sigmoid:
        p = scores.gather(1, index).sigmoid()
    else:
        p = scores.softmax(dim=1).gather(1, index)
    iou = _aligned_iou(pred_boxes, target_boxes).clamp(min=0)
    return p.view(-1).pow(xi) * iou.pow(1 - xi)


def _positive_mask(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Foreground priors: labels in [0, num_classes) (mmdet's background is
    ``num_classes``)."""
    return (labels >= 0) & (labels < num_classes)


def anchor_positive_quality(
        cls_score: torch.Tensor,
        bbox_pred: torch.Tensor,
        anchors: torch.Tensor,
        labels: torch.Tensor,
        bbox_targets: torch.Tensor,
        bbox_coder: Any,
        num_classes: int,
        xi: float = 0.6,
        use_sigmoid: bool = True,
        reg_decoded_bbox: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """(label, quality) of the positive anchors of one level, from the
    arguments of mmdet's ``AnchorHead.loss_by_feat_single``.

    The predicted box is ``bbox_coder.decode(anchor, bbox_pred)``; the
    target box is ``bbox_coder.decode(anchor, bbox_target)`` (the encoded
    target decoded back, as the official code does), or the target itself
    when the head regresses decoded boxes (``reg_decoded_bbox``). Computed
    in float64.

    Args:
        cls_score (Tensor): Shape (N, A * C', H, W); C' = C (sigmoid) or
            C + 1 (softmax).
        bbox_pred (Tensor): Shape (N, A * D, H, W), D the coder's encode
            size.
        anchors (Tensor | BaseBoxes): Shape (N, H * W * A, 4).
        labels (Tensor): Shape (N, H * W * A); positives are in [0, C).
        bbox_targets (Tensor): Shape (N, H * W * A, D) (or 4 when
            ``reg_decoded_bbox``).
        bbox_coder: The head's box coder.
        num_classes (int): C.
        xi (float): See :func:`positive_quality`.
        use_sigmoid (bool): See :func:`positive_quality`.
        reg_decoded_bbox (bool): ``bbox_targets`` are boxes already.

    Returns:
        tuple[Tensor, Tensor]: Labels (P,) (long) and qualities (P,)
        (float64) of the P positives, in the order of the flattened level
        (image, then location, then anchor).
    """
    from mmdet.structures.bbox import get_box_tensor
    labels = labels.reshape(-1)
    pos = _positive_mask(labels, num_classes)
    anchors = get_box_tensor(anchors)
    anchors = anchors.reshape(-1, anchors.size(-1))[pos].double()
    scores = cls_score.permute(0, 2, 3, 1).reshape(labels.numel(), -1)
    deltas = bbox_pred.permute(0, 2, 3, 1).reshape(labels.numel(), -1)
    targets = bbox_targets.reshape(labels.numel(), -1)[pos].double()
    pos_labels = labels[pos].long()
    if not pos_labels.numel():
        return pos_labels, scores.new_zeros(0, dtype=torch.float64)
    pred_boxes = get_box_tensor(
        bbox_coder.decode(anchors, deltas[pos].double()))
    if not reg_decoded_bbox:
        targets = get_box_tensor(bbox_coder.decode(anchors, targets))
    quality = positive_quality(scores[pos].double(), pos_labels, pred_boxes,
                               targets, xi, use_sigmoid)
    return pos_labels, quality


def class_sums(labels: torch.Tensor, quality: torch.Tensor,
               num_classes: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-class sum and count of the qualities of positives.

    Args:
        labels (Tensor): Shape (P,), in [0, C).
        quality (Tensor): Shape (P,).
        num_classes (int): C.

    Returns:
        tuple[Tensor, Tensor]: ``sums`` (C,) and ``counts`` (C,), float64.
    """
    labels = labels.long().view(-1)
    sums = torch.zeros(num_classes, dtype=torch.float64, device=labels.device)
    sums.index_add_(0, labels, quality.to(sums).view(-1))
    counts = torch.bincount(labels, minlength=num_classes).to(sums)
    return sums, counts


def ema_update(quality: torch.Tensor,
               momentum: torch.Tensor,
               sums: torch.Tensor,
               counts: torch.Tensor,
               base_momentum: float = 0.99,
               absent: str = 'decay') -> Tuple[torch.Tensor, torch.Tensor]:
    """One iteration of PPAL's per-class quality EMA.

    With ``avg_c = sums_c / (counts_c + 1e-5)`` (0 for a class without a
    positive), the official update uses the *old* momentum::

        q_c <- m_c * q_c + (1 - m_c) * avg_c
        m_c <- base_momentum       if avg_c > 0
               m_c * base_momentum otherwise

    ``absent='decay'`` applies it to every class (the official behaviour:
    a class absent from the iteration decays toward 0 with a shrinking
    momentum); ``absent='hold'`` leaves the classes with ``counts_c == 0``
    unchanged (quality and momentum).

    Args:
        quality (Tensor): q, shape (C,).
        momentum (Tensor): m, shape (C,).
        sums (Tensor): Per-class sums of the positives' quality, (C,).
        counts (Tensor): Per-class numbers of positives, (C,).
        base_momentum (float): Defaults to 0.99.
        absent (str): ``'decay'`` or ``'hold'``. Defaults to ``'decay'``.

    Returns:
        tuple[Tensor, Tensor]: The new quality and momentum, (C,) each,
        float64 (the inputs are not changed).
    """
    if absent not in ABSENT_POLICIES:
        raise ConfigError(f'absent must be one of {ABSENT_POLICIES}, got '
                          f'{absent!r}')
    q = quality.double()
    m = momentum.double()
    avg = sums.double() / (counts.double() + COUNT_EPS)
    new_q = m * q + (1 - m) * avg
    new_m = torch.where(avg > 0, torch.full_like(m, base_momentum),
                        m * base_momentum)
    if absent == 'hold':
        present = counts > 0
        new_q = torch.where(present, new_q, q)
        new_m = torch.where(present, new_m, m)
    return new_q, new_m


# -- the probe ----------------------------------------------------------------
def _probe_kind(head: nn.Module) -> str:
    """``'anchor'`` (probe A), ``'dense'`` (probe B), or ConfigError."""
    from mmdet.models.dense_heads import (AnchorHead, ATSSHead, FCOSHead,
                                          RPNHead)
    cls = type(head)
    if (getattr(cls, 'loss_by_feat_single',
                None) is AnchorHead.loss_by_feat_single
            and getattr(cls, 'loss_by_feat', None)
            in (AnchorHead.loss_by_feat, RPNHead.loss_by_feat)):
        return 'anchor'
    if getattr(cls, 'loss_by_feat', None) is FCOSHead.loss_by_feat:
        return 'dense'
    if (getattr(cls, 'loss_by_feat', None) is ATSSHead.loss_by_feat
            and getattr(cls, 'loss_by_feat_single',
                        None) is ATSSHead.loss_by_feat_single
            and getattr(head, 'reg_decoded_bbox', False)):
        return 'dense'
    raise ConfigError(f'mmal.ClassQualityHook cannot read the positives of '
                      f'{cls.__name__}: it works with {SUPPORTED_HEADS}')


def _call_args(args: tuple, kwargs: dict, names: Sequence[str]) -> List[Any]:
    """The first ``len(names)`` arguments of a call, positional or named."""
    return [
        args[i] if i < len(args) else kwargs[name]
        for i, name in enumerate(names)
    ]


class QualityProbe:
    """Collects (label, quality) of every positive prior while a dense head
    computes its training loss.

    * ``'anchor'`` heads (mmdet's ``AnchorHead.loss_by_feat_single``, the
      official probe point): that method is wrapped on the instance and
      reads its own arguments (:func:`anchor_positive_quality`).
    * ``'dense'`` heads (FCOS, ATSS): forward pre-hooks on ``loss_cls`` and
      ``loss_bbox``. Each ``loss_bbox(pos_pred_boxes, pos_target_boxes)``
      call is paired with the last ``loss_cls(scores, labels)`` call: its
      positives (labels in [0, C)) are the same priors, in the same order
      (checked: their numbers must be equal). A ``loss_cls`` call without
      positives has no ``loss_bbox`` call and contributes nothing.

    Args:
        head (nn.Module): The detector's ``bbox_head``.
        xi (float): See :func:`positive_quality`.
    """

    def __init__(self, head: nn.Module, xi: float = 0.6) -> None:
        self.head = head
        self.xi = float(xi)
        self.kind = _probe_kind(head)
        self.num_classes = int(head.num_classes)
        self.use_sigmoid = bool(getattr(head, 'use_sigmoid_cls', True))
        self.enabled = True
        self._labels: List[torch.Tensor] = []
        self._quality: List[torch.Tensor] = []
        self._pending: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
        self._handles: list = []
        self._saved: Dict[str, Any] = {}
        self.installed = False

    # install / remove
    def install(self) -> 'QualityProbe':
        if self.installed:
            return self
        if self.kind == 'anchor':
            head = self.head
            self._saved = {
                k: head.__dict__[k]
                for k in ('loss_by_feat_single', ) if k in head.__dict__
            }
            original = head.loss_by_feat_single

            def loss_by_feat_single(cls_score, bbox_pred, anchors, labels,
                                    label_weights, bbox_targets, bbox_weights,
                                    avg_factor):
                if self.enabled:
                    self._record_anchor_level(cls_score, bbox_pred, anchors,
                                              labels, bbox_targets)
                return original(cls_score, bbox_pred, anchors, labels,
                                label_weights, bbox_targets, bbox_weights,
                                avg_factor)

            head.loss_by_feat_single = loss_by_feat_single
        else:
            self._handles = [
                self.head.loss_cls.register_forward_pre_hook(
                    self._on_loss_cls, with_kwargs=True),
                self.head.loss_bbox.register_forward_pre_hook(
                    self._on_loss_bbox, with_kwargs=True)
            ]
        self.installed = True
        return self

    def remove(self) -> None:
        """Restore the head's methods / remove the pre-hooks."""
        if not self.installed:
            return
        if self.kind == 'anchor':
            self.head.__dict__.pop('loss_by_feat_single', None)
            self.head.__dict__.update(self._saved)
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._pending = None
        self.installed = False

    # collection
    def _add(self, labels: torch.Tensor, quality: torch.Tensor) -> None:
        self._labels.append(labels)
        self._quality.append(quality)

    @torch.no_grad()
    def _record_anchor_level(self, cls_score, bbox_pred, anchors, labels,
                             bbox_targets) -> None:
        head = self.head
        self._add(*anchor_positive_quality(
            cls_score.detach(), bbox_pred.detach(), anchors, labels,
            bbox_targets.detach(), head.bbox_coder, self.num_classes, self.xi,
            self.use_sigmoid, bool(head.reg_decoded_bbox)))

    def _on_loss_cls(self, module, args, kwargs) -> None:
        if self.enabled:
            scores, labels = _call_args(args, kwargs, ('pred', 'target'))
            self._pending = (scores.detach(), labels.detach())

    @torch.no_grad()
    def _on_loss_bbox(self, module, args, kwargs) -> None:
        if not self.enabled:
            return
        pred, target = _call_args(args, kwargs, ('pred', 'target'))
        if self._pending is None:
            raise RuntimeError(
                f'{type(self.head).__name__}.loss_bbox was called without '
                'a preceding loss_cls call: the probe cannot pair them')
        scores, labels = self._pending
        self._pending = None
        labels = labels.reshape(-1)
        pos = _positive_mask(labels, self.num_classes)
        if int(pos.sum()) != pred.shape[0]:
            raise RuntimeError(
                f'{type(self.head).__name__}: loss_cls has {int(pos.sum())} '
                f'positives but loss_bbox got {pred.shape[0]} boxes: the '
                'probe cannot pair them')
        pos_labels = labels[pos].long()
        scores = scores.reshape(labels.numel(), -1)[pos].double()
        self._add(
            pos_labels,
            positive_quality(scores, pos_labels,
                             pred.detach().double(),
                             target.detach().double(), self.xi,
                             self.use_sigmoid))

    def take(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """The (labels (P,), quality (P,) float64) collected since the last
        call, in the order the head computed them; the probe is emptied."""
        if self._labels:
            labels = torch.cat(self._labels)
            quality = torch.cat(self._quality)
        else:
            device = next(self.head.parameters()).device
            labels = torch.zeros(0, dtype=torch.long, device=device)
            quality = torch.zeros(0, dtype=torch.float64, device=device)
        self.clear()
        return labels, quality

    def clear(self) -> None:
        self._labels, self._quality, self._pending = [], [], None


# -- the hook -----------------------------------------------------------------
@HOOKS.register_module()
class ClassQualityHook(Hook):
    """Keep PPAL's per-class quality on the detector's ``bbox_head`` while
    a plain mmdet training runs.

    Add to the training config::

        custom_imports = dict(imports=['mmal'], allow_failed_imports=False)
        custom_hooks = [dict(type='mmal.ClassQualityHook')]

    ``before_run`` registers two persistent buffers on ``bbox_head``:
    ``class_quality`` (C,), zeros, and ``class_momentum`` (C,),
    ``base_momentum``. They are in every checkpoint's ``state_dict``
    (``bbox_head.class_quality``, ``bbox_head.class_momentum``) and, since
    mmengine's ``Runner.train`` calls ``before_run`` before
    ``load_or_resume``, restored by ``resume`` and ``load_from``. From
    ``before_train`` to ``after_train`` a :class:`QualityProbe` collects
    (label, quality) of every positive prior of each training iteration;
    ``after_train_iter`` sums them per class over all ranks and applies
    :func:`ema_update`. The priority is above ``NORMAL`` so that the
    buffers exist before an ``EMAHook`` copies the model.

    Args:
        base_momentum (float): The EMA's momentum. Defaults to 0.99 (the
            official training config).
        xi (float): The quality ``p^xi * IoU^(1-xi)``. Defaults to 0.6.
        absent (str): Classes without a positive in an iteration:
            ``'decay'`` (the official update: the quality decays toward 0
            and the momentum shrinks) or ``'hold'`` (left unchanged).
            Defaults to ``'decay'``.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self,
                 base_momentum: float = 0.99,
                 xi: float = 0.6,
                 absent: str = 'decay') -> None:
        if not 0 < base_momentum < 1:
            raise ConfigError('ClassQualityHook: base_momentum must be in '
                              f'(0, 1), got {base_momentum!r}')
        if not 0 <= xi <= 1:
            raise ConfigError(
                f'ClassQualityHook: xi must be in [0, 1], got {xi!r}')
        if absent not in ABSENT_POLICIES:
            raise ConfigError(f'ClassQualityHook: absent must be one of '
                              f'{ABSENT_POLICIES}, got {absent!r}')
        self.base_momentum = float(base_momentum)
        self.xi = float(xi)
        self.absent = absent
        self.head: Optional[nn.Module] = None
        self.probe: Optional[QualityProbe] = None

    def before_run(self, runner) -> None:
        head = bbox_head_of(runner.model)
        if head is None:
            raise ConfigError(
                f'mmal.ClassQualityHook needs a detector with a bbox_head '
                f'(a dense head), got {type(runner.model).__name__}: it '
                f'works with {SUPPORTED_HEADS}')
        _probe_kind(head)  # an unsupported head fails here, not later
        num_classes = int(head.num_classes)
        device = next(head.parameters()).device
        init = dict(
            class_quality=torch.zeros(num_classes),
            class_momentum=torch.full((num_classes, ), self.base_momentum))
        for name, value in init.items():
            old = getattr(head, name, None)
            if old is None:
                head.register_buffer(name, value.to(device), persistent=True)
            elif tuple(old.shape) != (num_classes, ):
                raise ConfigError(
                    f'ClassQualityHook: {type(head).__name__}.{name} has '
                    f'shape {tuple(old.shape)}, expected ({num_classes},)')
        self.head = head
        print_log(
            f'ClassQualityHook: per-class quality of {type(head).__name__} '
            f'({num_classes} classes; base_momentum {self.base_momentum}, '
            f'xi {self.xi}, absent classes: {self.absent})', 'current')

    def before_train(self, runner) -> None:
        if self.head is None:
            self.before_run(runner)
        if self.probe is None:
            self.probe = QualityProbe(self.head, self.xi).install()
        self.probe.enabled = False

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: Any = None) -> None:
        if self.probe is not None:
            self.probe.clear()
            self.probe.enabled = True

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Any = None,
                         outputs: Optional[dict] = None) -> None:
        if self.probe is None:
            return
        self.probe.enabled = False
        head = self.head
        labels, quality = self.probe.take()
        num_classes = head.class_quality.numel()
        sums, counts = class_sums(
            labels.to(head.class_quality.device),
            quality.to(head.class_quality.device), num_classes)
        totals = torch.stack([sums, counts])
        all_reduce(totals, op='sum')  # a no-op when not distributed
        q, m = ema_update(head.class_quality, head.class_momentum, totals[0],
                          totals[1], self.base_momentum, self.absent)
        head.class_quality.copy_(q)
        head.class_momentum.copy_(m)

    def after_train(self, runner) -> None:
        self._remove_probe()

    def after_run(self, runner) -> None:
        self._remove_probe()

    def _remove_probe(self) -> None:
        """Restore the head (the buffers stay)."""
        if self.probe is not None:
            self.probe.remove()
            self.probe = None
