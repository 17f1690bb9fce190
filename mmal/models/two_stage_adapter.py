"""Adapters for mmdet two-stage detectors (Faster R-CNN and relatives)."""
import copy
from typing import Dict, List

import torch
from mmdet.models.utils import unpack_gt_instances
from torch import nn
from torch.nn.modules.utils import _pair

from mmal.registry import AL_ADAPTERS
from mmal.utils.tensor_utils import detach
from .detection_adapter import DetectionAdapter, blank_image
from .output_layers import output_layers, weights_of


@AL_ADAPTERS.register_module()
class TwoStageAdapter(DetectionAdapter):
    """Adapter for an mmdet ``TwoStageDetector`` with an RPN and a RoI head.

    The per-image loss is the detector's own training loss, RPN plus RoI
    head, computed as ``TwoStageDetector.loss`` computes it:

    * the RPN loss on the image's boxes with every label set to 0;
    * proposals from the RPN's outputs with ``train_cfg.rpn_proposal``
      (mmdet detaches them, so the RoI loss does not reach the RPN);
    * the RoI head's loss on proposals sampled by its sampler.

    θ lives in the RPN and the RoI head: the backbone and neck run without
    autograd. The random anchor and proposal sampling is seeded per image
    (:meth:`BaseModelAdapter.image_rng`), so a gradient is a deterministic
    function of the model, the image and the selection seed.

    Pseudo labels are the detector's final predictions (RPN proposals with
    ``test_cfg.rpn``, then the RoI head with ``test_cfg.rcnn``) with score
    >= the threshold, in the network input's frame; they come from the same
    trunk and RPN pass as the loss.
    """

    head_module = 'rpn_head'

    def extract_features(self, model: nn.Module, inputs: torch.Tensor):
        if not model.with_rpn:
            raise ValueError(f'{type(self).__name__} needs a detector with an '
                             'RPN head (precomputed proposals are not '
                             'supported)')
        return super().extract_features(model, inputs)

    def param_names_by_rule(self, model: nn.Module) -> List[str]:
        """θ of a detector without a paper setting: the weights of the
        layers that produce the RPN's outputs and every RoI bbox head's
        (:func:`output_layers`). A cascade gets each stage's ``fc_cls`` and
        ``fc_reg``: its training loss, the per-image loss, sums the stages'
        losses, and its test scores average the stages' classifiers, so
        every stage's output layers shape both.
        """
        with torch.no_grad():
            feats = self.extract_features(model, blank_image(model))
        rpn = model.rpn_head
        names = output_layers(rpn, lambda: rpn(feats), 'rpn_head.')
        roi = model.roi_head
        heads, extractors = roi.bbox_head, roi.bbox_roi_extractor
        stages = isinstance(heads, nn.ModuleList)
        if not stages:
            heads, extractors = [heads], [extractors]
        for i, (head, extractor) in enumerate(zip(heads, extractors)):
            size = _pair(extractor.roi_layers[0].output_size)
            rois = feats[0].new_zeros(2, extractor.out_channels, *size)
            prefix = f'roi_head.bbox_head.{i}.' if stages else \
                'roi_head.bbox_head.'
            names += output_layers(head, lambda h=head: h(rois), prefix)
        return weights_of(names, model)

    def head_forward(self, model: nn.Module, feats):
        return model.rpn_head(feats)

    def embed(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        """Core-set's image feature: the neck's (FPN's) output, pooled.

        Each level is average-pooled over its positions and the levels are
        averaged (256-d for the R-50 FPN). The FPN maps are what both the
        RPN and the RoI head read, and they are per image, unlike RoI
        features, which depend on the proposals; this is the two-stage
        counterpart of FCOS's pooled towers (the paper specifies the
        feature for FCOS only).

        Returns:
            Tensor: (B, C) with C the neck's channels.
        """
        model = self.unwrap(model)
        feats = self.extract_features(model, inputs)  # no autograd
        return torch.stack([x.mean(dim=(2, 3)) for x in feats]).mean(0)

    def predict(self, model: nn.Module, feats, outs, samples):
        metas = [s.metainfo for s in samples]
        proposals = model.rpn_head.predict_by_feat(
            *outs, batch_img_metas=metas, rescale=False)
        return model.roi_head.predict(feats, proposals, samples, rescale=False)

    def loss(self, model: nn.Module, feats, outs, batch: Dict,
             samples: List) -> torch.Tensor:
        """RPN + RoI training loss of the image(s) in ``samples``."""
        rpn_samples = copy.deepcopy(samples)
        for s in rpn_samples:  # the RPN is class-agnostic
            s.gt_instances.labels = torch.zeros_like(s.gt_instances.labels)
        gts, gts_ignore, metas = unpack_gt_instances(rpn_samples)
        proposal_cfg = model.train_cfg.get('rpn_proposal', model.test_cfg.rpn)
        with self.loss_scope(batch):
            losses = model.rpn_head.loss_by_feat(*outs, gts, metas, gts_ignore)
            with torch.no_grad():  # mmdet detaches the proposals too
                proposals = model.rpn_head.predict_by_feat(
                    *detach(outs), batch_img_metas=metas, cfg=proposal_cfg)
            losses.update(model.roi_head.loss(feats, proposals, samples))
        loss, _ = model.parse_losses(losses)
        return loss


@AL_ADAPTERS.register_module()
class FasterRCNNAdapter(TwoStageAdapter):
    """Faster R-CNN: θ = weights of the RPN's and the RoI head's last layers.

    ``rpn_head.rpn_cls``, ``rpn_head.rpn_reg`` (1x1 convs) and
    ``roi_head.bbox_head.fc_cls``, ``fc_reg`` (fully connected), biases
    excluded, with LiSSA scales ``[1000, 1000, 5000, 1000]``, as in the
    official ISAL code.
    """

    default_param_names = ('rpn_head.rpn_cls.weight',
                           'rpn_head.rpn_reg.weight',
                           'roi_head.bbox_head.fc_cls.weight',
                           'roi_head.bbox_head.fc_reg.weight')
    default_lissa_scale = (1000.0, 1000.0, 5000.0, 1000.0)
