"""Adapters for mmdet single-stage dense detectors (FCOS, RetinaNet, ...)."""
from typing import Dict, Optional, Tuple

import torch
from mmdet.models.utils import unpack_gt_instances
from torch import nn

from mmal.registry import AL_ADAPTERS
from .base_adapter import BaseModelAdapter


def _detach(outs):
    if isinstance(outs, torch.Tensor):
        return outs.detach()
    if isinstance(outs, (list, tuple)):
        return type(outs)(_detach(o) for o in outs)
    return outs


class TwiceDifferentiableFocalLoss(nn.Module):
    """mmdet's ``FocalLoss`` forced onto its pure-PyTorch path.

    On CUDA, mmdet computes the sigmoid focal loss with mmcv's op, whose
    backward cannot be differentiated again (Hessian-vector products fail).
    Given one-hot targets, mmdet takes its PyTorch implementation instead,
    which computes the same value on any device.
    """

    def __init__(self, focal_loss: nn.Module) -> None:
        super().__init__()
        self.focal_loss = focal_loss

    def forward(self, pred: torch.Tensor, target: torch.Tensor, *args,
                **kwargs) -> torch.Tensor:
        if target.dim() == 1:  # class indices, num_classes = background
            num_classes = pred.size(1)
            target = torch.nn.functional.one_hot(
                target, num_classes=num_classes + 1)[:, :num_classes]
            target = target.type_as(pred)
        return self.focal_loss(pred, target, *args, **kwargs)


@AL_ADAPTERS.register_module()
class SingleStageAdapter(BaseModelAdapter):
    """Adapter for an mmdet ``SingleStageDetector`` with a dense head.

    θ lives in ``bbox_head`` only, so the backbone and neck run without
    autograd (their output does not depend on θ) and only the head is
    differentiated.
    """

    def prepare(self, model: nn.Module, seed: int = 0) -> nn.Module:
        super().prepare(model, seed)
        head = self.unwrap(model).bbox_head
        loss_cls = getattr(head, 'loss_cls', None)
        if type(loss_cls).__name__ == 'FocalLoss':
            head.loss_cls = TwiceDifferentiableFocalLoss(loss_cls)
        return model

    def _head_outputs(self, model: nn.Module, batch: Dict):
        model = self.unwrap(model)
        data = self.preprocess(model, batch)
        with torch.no_grad():
            feats = model.extract_feat(data['inputs'])
        return model, model.bbox_head(feats), data['data_samples']

    def _loss(self, model: nn.Module, outs, batch: Dict) -> torch.Tensor:
        samples = batch['data_samples']
        gts, gts_ignore, metas = unpack_gt_instances(samples)
        with self.loss_scope(batch):
            losses = model.bbox_head.loss_by_feat(*outs, gts, metas,
                                                  gts_ignore)
        loss, _ = model.parse_losses(losses)
        return loss

    def gt_loss(self, model: nn.Module, batch: Dict) -> torch.Tensor:
        model, outs, samples = self._head_outputs(model, batch)
        return self._loss(model, outs, dict(batch, data_samples=samples))

    def pseudo_loss(self, model: nn.Module, batch: Dict,
                    score_thr: float) -> Tuple[Optional[torch.Tensor], int]:
        model, outs, samples = self._head_outputs(model, batch)
        self.check_single(samples)
        metas = [s.metainfo for s in samples]
        preds = model.bbox_head.predict_by_feat(
            *_detach(outs), batch_img_metas=metas, rescale=False)
        num = self.set_pseudo_labels(samples[0], preds[0], score_thr)
        if num == 0:
            return None, 0
        return self._loss(model, outs, dict(batch, data_samples=samples)), num


@AL_ADAPTERS.register_module()
class FCOSAdapter(SingleStageAdapter):
    """FCOS: θ = weights of the head's last convs (cls, reg, centerness).

    Biases are excluded and the LiSSA scales are ``[100, 8000, 5000]``, as
    in the official ISAL code.
    """

    default_param_names = ('bbox_head.conv_cls.weight',
                           'bbox_head.conv_reg.weight',
                           'bbox_head.conv_centerness.weight')
    default_lissa_scale = (100.0, 8000.0, 5000.0)
