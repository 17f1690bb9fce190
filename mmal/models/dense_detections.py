"""A dense head's detections with the pyramid level each comes from, and
the head's features at their centres (PPAL's object features)."""
import copy
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmcv.ops import batched_nms
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import nn


def _level_lists(outs: Sequence[Sequence[torch.Tensor]], img: int,
                 level: int) -> List[List[Optional[torch.Tensor]]]:
    """The head outputs (cls, bbox[, score factors]) of one image and one
    level, as one-level lists."""
    lists = [[out[level][img].detach()] for out in outs[:3]]
    if len(lists) == 2:  # no score factors (RetinaNet)
        lists.append([None])
    return lists


def detections_with_levels(head: nn.Module,
                           outs: Sequence[Sequence[torch.Tensor]],
                           img_metas: Sequence[dict],
                           cfg: Dict[str, Any],
                           rescale: bool = False) -> List[InstanceData]:
    """Per image, the head's detections under ``cfg``, with their level.

    Each level goes through the head's own ``_predict_by_feat_single``
    alone (its score threshold, ``nms_pre`` best, decoding, score factors),
    the levels are concatenated, and class-aware NMS keeps the first
    ``cfg['max_per_img']``: what ``predict_by_feat`` gives, since
    ``nms_pre`` applies per level, plus each box's level.

    Args:
        head (nn.Module): An mmdet ``BaseDenseHead`` (RetinaNet, FCOS,
            ATSS, GFL, ...).
        outs (tuple): The head's forward outputs, each a list over levels of
            (B, ..., H_l, W_l).
        img_metas (Sequence[dict]): The images' metainfo (B).
        cfg (dict): Test config (``nms_pre``, ``score_thr``, ``nms``,
            ``max_per_img``, optional ``min_bbox_size``).
        rescale (bool): Boxes in the original image's frame.

    Returns:
        list[InstanceData]: Per image ``bboxes`` (k, 4) xyxy, ``scores``
        (k, ), ``labels`` (k, ), ``level_ids`` (k, ), best score first.
    """
    cls_scores = outs[0]
    num_levels = len(cls_scores)
    sizes = [c.shape[-2:] for c in cls_scores]
    priors = head.prior_generator.grid_priors(
        sizes, dtype=cls_scores[0].dtype, device=cls_scores[0].device)
    post_cfg = ConfigDict(copy.deepcopy(dict(cfg)))  # once, for every call
    results = []
    for img, meta in enumerate(img_metas):
        parts = []
        for level in range(num_levels):
            cls, bbox, factors = _level_lists(outs, img, level)
            det = head._predict_by_feat_single(
                cls_score_list=cls,
                bbox_pred_list=bbox,
                score_factor_list=factors,
                mlvl_priors=[priors[level]],
                img_meta=meta,
                cfg=post_cfg,
                rescale=rescale,
                with_nms=False)
            det.level_ids = det.labels.new_full((len(det), ), level)
            parts.append(det)
        det = InstanceData.cat(parts)
        if len(det) > 0:
            boxed, keep = batched_nms(det.bboxes, det.scores, det.labels,
                                      post_cfg['nms'])
            det = det[keep]
            det.scores = boxed[:, -1]
            det = det[:post_cfg['max_per_img']]
        results.append(det)
    return results


def centre_features(levels: Sequence[torch.Tensor],
                    strides: Sequence[Sequence[float]],
                    det: InstanceData,
                    img: int,
                    img_meta: Optional[dict] = None,
                    official_coords: bool = False) -> torch.Tensor:
    """Each detection's feature: one bilinear sample of its level's map at
    the box centre (PPAL's object feature).

    Args:
        levels (Sequence[Tensor]): Per level the feature map (B, C, H_l,
            W_l), e.g. the classification tower's output.
        strides (Sequence): Per level the prior stride ``(s_x, s_y)``.
        det (InstanceData): One image's detections, ``bboxes`` (k, 4) in the
            network input's frame and ``level_ids`` (k, ).
        img (int): The image's index in the batch.
        img_meta (dict, optional): Its metainfo; needed with
            ``official_coords``.
        official_coords (bool): Normalise the centre as the official code
            does: x by the image's height and y by its width, relative to
            the unpadded image (a bug for non-square images, see
            docs/en/selectors.md); False: relative to the level's map,
            ``x = 2 c_x / (W_l s_x) - 1`` (``align_corners=False``).

    Returns:
        Tensor: (k, C) features, in the maps' dtype.
    """
    channels = levels[0].shape[1]
    out = levels[0].new_zeros((len(det), channels))
    if len(det) == 0:
        return out
    boxes = det.bboxes
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    for level, fmap in enumerate(levels):
        mask = det.level_ids == level
        if not bool(mask.any()):
            continue
        if official_coords:
            h, w = img_meta['img_shape'][:2]
            gx = 2 * cx[mask] / h - 1
            gy = 2 * cy[mask] / w - 1
        else:
            sx, sy = strides[level][:2]
            gx = 2 * cx[mask] / (fmap.shape[-1] * sx) - 1
            gy = 2 * cy[mask] / (fmap.shape[-2] * sy) - 1
        grid = torch.stack([gx, gy], dim=-1).to(fmap.dtype).view(1, 1, -1, 2)
        sampled = F.grid_sample(
            fmap[img:img + 1], grid, mode='bilinear', align_corners=False)
        out[mask] = sampled[0, :, 0].t()
    return out
