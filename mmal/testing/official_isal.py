"""The official ISAL code's computations, as the official code writes them.

The reference that mmal's own paths are checked against (in the tests) and
timed against (in ``tools/benchmarks/influence_speed.py``). Nothing here
calls mmal's solvers or adapter losses: every step is a full forward of
the loss with autograd through the whole network, as in the official
code.

* :func:`official_lissa`: the official LiSSA recursion for
  ``s_test = H^-1 v``: per chain ``h = v``, then per step (one image's
  loss) ``h <- v + (1 - damp) h - (H h) / scale`` per block, ``H h`` by
  double back-propagation; the chains' results averaged.
* :func:`official_scores`: per unlabeled image a batch-1
  ``model.predict``, its confident predictions as ground truth, mmdet's
  full ``model.loss``, ``torch.autograd.grad`` to θ and the dot product
  with ``s_test``.
"""
import copy
from typing import (TYPE_CHECKING, Any, Callable, Dict, Iterable, Optional,
                    Sequence, Tuple)

import torch
from mmengine.structures import InstanceData

from mmal.influence import flat_dot
from .benchmark import Blocks, Scores

if TYPE_CHECKING:  # mmal.models imports the detectors' stack
    from mmal.models import BaseModelAdapter

Batch = Dict[str, Any]  # a collated batch: inputs, data_samples, sample_id


def full_loss(model: torch.nn.Module, data: Batch) -> torch.Tensor:
    """mmdet's training loss of the whole detector.

    Args:
        model (nn.Module): An mmdet detector.
        data (dict): Preprocessed ``inputs`` (B, C, H, W) and
            ``data_samples`` with ground truth.

    Returns:
        Tensor: The scalar total loss (``model.parse_losses``), its graph
        through the whole network.
    """
    losses = model.loss(data['inputs'], data['data_samples'])
    return model.parse_losses(losses)[0]


def official_lissa(v: Sequence[torch.Tensor], params: Sequence[torch.Tensor],
                   step_losses: Iterable[Iterable[Callable[[], torch.Tensor]]],
                   damp: float, scales: Sequence[float]) -> Blocks:
    """The official LiSSA recursion, chains averaged.

    Written as the official ISAL code writes its ``s_test`` loop; it does
    not use mmal's :class:`~mmal.influence.LiSSA`, so that the two can be
    compared. Per chain ``h = v``; per step the step's loss ``l``,
    ``first_grads = ∇θ l`` (``create_graph=True``),
    ``hv = ∇θ sum_b <first_grads_b, h_b>``, then per block
    ``h_b = v_b + (1 - damp) h_b - hv_b / scale_b``. There is no final
    division by the scale (the official code does none).

    Args:
        v (Sequence[Tensor]): The right-hand side, one tensor per block,
            same shapes as ``params``.
        params (Sequence[Tensor]): θ, the blocks (``requires_grad``); every
            step's loss must depend on each of them.
        step_losses (Iterable[Iterable[Callable[[], Tensor]]]): Per chain,
            its steps: each a zero-argument callable that returns the
            step's scalar loss, built with autograd (e.g. one image's full
            ``model.loss``).
        damp (float): Damping, e.g. 0.01 (official).
        scales (Sequence[float]): One scale per block.

    Returns:
        list[Tensor]: ``s_test``, the mean of the chains' ``h``, one tensor
        per block.
    """
    params = list(params)
    if len(scales) != len(params):
        raise ValueError(f'official_lissa: {len(scales)} scales for '
                         f'{len(params)} parameter blocks')
    results = []
    for chain in step_losses:
        h_estimate = [_v.clone() for _v in v]
        for step_loss in chain:
            loss = step_loss()
            first_grads = torch.autograd.grad(loss, params, create_graph=True)
            elemwise = 0
            for g, h in zip(first_grads, h_estimate):
                elemwise = elemwise + torch.sum(g * h)
            hv = torch.autograd.grad(elemwise, params)
            h_estimate = [
                _v + (1 - damp) * _h_e - _hv / _s
                for _v, _h_e, _hv, _s in zip(v, h_estimate, hv, scales)
            ]
        results.append(h_estimate)
    if not results:
        raise ValueError('official_lissa: no chain given')
    return [sum(blocks) / len(results) for blocks in zip(*results)]


def official_scores(
    model: torch.nn.Module,
    adapter: 'BaseModelAdapter',
    items: Sequence[Batch],
    params: Sequence[torch.Tensor],
    s_test: Sequence[torch.Tensor],
    score_thr: float,
    preprocess: Optional[Callable[[Batch], Batch]] = None,
    max_boxes: Optional[int] = None,
) -> Tuple[Scores, Dict[str, int]]:
    """Official-style scores: predict, pseudo labels, full ``model.loss``.

    Per image: a batch-1 ``model.predict`` (no grad, ``rescale=False``);
    its predictions with score >= ``score_thr`` become the ground truth
    (boxes in float32, as annotations are; nothing ignored); a second
    forward ``model.loss`` with autograd through the whole network, its
    random draws seeded as the adapter seeds the image's
    (``adapter.image_rng``); ``torch.autograd.grad`` to θ (zeros for blocks
    the loss does not reach) and the dot product with ``s_test``.

    Args:
        model (nn.Module): An mmdet detector in eval mode.
        adapter: The model's adapter (``image_key`` and ``image_rng``).
        items (Sequence[dict]): Batch-1 collated items (``inputs``,
            ``data_samples``, ``sample_id``), as mmal's loaders give them;
            they are changed (ground truth set), pass copies.
        params (Sequence[Tensor]): θ, one tensor per block.
        s_test (Sequence[Tensor]): Same shapes as ``params``.
        score_thr (float): Pseudo-label score threshold.
        preprocess (Callable, optional): ``preprocess(item)`` -> the
            model's input dict. Defaults to
            ``model.data_preprocessor(item, False)``.
        max_boxes (int, optional): At most this many pseudo boxes, the
            highest scores (the official code's come capped by FCOS's
            ``max_per_img``); pass the adapter's ``max_pseudo_boxes`` to
            compare with mmal on heads without that cap. None: no cap.

    Returns:
        tuple[dict, dict]: Per sample id ``∇θ l(z', pseudo labels) ·
        s_test`` (None: no pseudo box; the selector's influence is its
        negative), and the number of pseudo boxes.
    """
    if preprocess is None:

        def preprocess(item: Batch) -> Batch:
            return model.data_preprocessor(item, False)

    params = list(params)
    scores, boxes = {}, {}
    for item in items:
        sid = adapter.image_key(item)
        data = preprocess(item)
        with torch.no_grad():
            pred = model.predict(
                data['inputs'],
                copy.deepcopy(data['data_samples']),
                rescale=False)[0].pred_instances
        keep = pred.scores >= score_thr
        if max_boxes is not None and int(keep.sum()) > max_boxes:
            kept = torch.nonzero(keep).flatten()
            top = torch.sort(
                pred.scores[kept], descending=True, stable=True).indices
            keep = torch.zeros_like(keep)
            keep[kept[top[:max_boxes]]] = True
        boxes[sid] = int(keep.sum())
        if not keep.any():
            scores[sid] = None
            continue
        bboxes = pred.bboxes[keep].to(torch.float32)
        sample = data['data_samples'][0]
        sample.gt_instances = InstanceData(
            bboxes=bboxes, labels=pred.labels[keep])
        sample.ignored_instances = InstanceData(
            bboxes=bboxes.new_zeros((0, 4)),
            labels=pred.labels.new_zeros((0, )))
        with adapter.image_rng(dict(sample_id=[sid])):
            loss = full_loss(model, data)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        grads = [
            torch.zeros_like(p) if g is None else g
            for g, p in zip(grads, params)
        ]
        scores[sid] = float(flat_dot(s_test, grads))
    return scores, boxes
