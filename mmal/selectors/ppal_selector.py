"""PPAL (Yang, Huang, Crowley, "Plug and Play Active Learning for Object
Detection", CVPR 2024): difficulty calibrated uncertainty sampling, then
category conditioned matching similarity for diversity."""
import time
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from mmengine.logging import print_log
from torch import nn

from mmal.models.class_quality import class_quality_of
from mmal.models.dense_detections import (centre_features,
                                          detections_with_levels)
from mmal.registry import SELECTORS
from mmal.utils.errors import ConfigError
from .base import BaseSelector, SelectionResult
from .ccms import ccms_distances
from .k_medoids import farthest_first, k_medoids
from .pool_pass import pool_pass
from .ppal_uncertainty import candidate_pool_size, class_weights, dcus_score
from .score_order import order_by_score
from .selection_context import SelectionContext

#: The official settings of the two inference passes (its
#: ``al_inference/retinanet_uncertainty.py`` and RetinaNet's test config):
#: class-aware NMS IoU of the uncertainty pass and of the diversity pass.
OFFICIAL_NMS = dict(coco=(0.6, 0.5), voc=(0.5, 0.4))


def _inference_cfgs(setting: str) -> tuple:
    """The uncertainty and diversity passes' test configs of an official
    setting (``'coco'`` or ``'voc'``)."""
    if setting not in OFFICIAL_NMS:
        raise ValueError(f'setting must be one of {sorted(OFFICIAL_NMS)}, '
                         f'got {setting!r}')
    uncertainty, diversity = OFFICIAL_NMS[setting]
    return (dict(
        nms_pre=3000,
        score_thr=0.0,
        nms=dict(type='nms', iou_threshold=uncertainty),
        max_per_img=200),
            dict(
                nms_pre=5000,
                score_thr=0.0,
                nms=dict(type='nms', iou_threshold=diversity),
                max_per_img=100))


QUALITY_HOOK = 'mmal.ClassQualityHook'


def _has_quality_hook(cfg: Any) -> bool:
    hooks = cfg.get('custom_hooks') or []
    return any(
        isinstance(h, dict) and h.get('type') in (QUALITY_HOOK,
                                                  'ClassQualityHook')
        for h in hooks)


@SELECTORS.register_module()
class PPALSelector(BaseSelector):
    """PPAL: uncertainty weighted by class difficulty, then diversity.

    As the official code (``ChenhongyiYang/PPAL``) does it:

    1. **Class difficulty.** :class:`~mmal.engine.ClassQualityHook` keeps
       a per-class quality ``q_c`` during training (a moving average of
       ``p^0.6 IoU^0.4`` over the class's positives); the weight of class
       ``c`` is ``1 + α·ub·ln(b(1 - q_c) + 1)``, ``b = e^{1/α} - 1``
       (:func:`class_weights`: 1 for an easy class, ``1 + ub`` for the
       hardest).
    2. **DCUS.** Each unlabeled image's detections (``uncertainty_cfg``:
       no score threshold, 3000 per level, class-aware NMS, 200 kept, in
       the original frame) score ``Σ w_c H(s)`` over the boxes with score
       ≥ ``score_thr`` that are larger than ``min_size`` and less elongated
       than ``max_ratio`` (``H``: binary entropy of the detection score;
       :func:`dcus_score`). The ``candidate_ratio × budget`` highest are
       the candidates.
    3. **CCMS and k-medoids.** Each candidate's detections
       (``diversity_cfg``: 100 kept) with score > ``score_thr`` are
       objects, each with the head's classification-tower feature at its
       box centre on its own level (:func:`centre_features`). Two images
       are similar as far as each object finds a close object of the same
       predicted category in the other (cosine; -1 without one),
       score-weighted and symmetrised (:func:`ccms_distances`). Farthest
       first seeding (its first image drawn with the selection's seed;
       the official draw is unseeded) and ``n_iter`` k-medoids
       iterations on ``1 - similarity`` pick ``budget`` medoids.

    The ranking is the medoids by DCUS score (a box budget takes the most
    uncertain first). Where the official code has a bug, the default is
    the intended behaviour and a switch gives the official one
    (``official_coords``, ``diag_quirk``); see docs/en/selectors.md.

    Args:
        score_thr (float): Score from which a detection counts. Defaults
            to 0.05.
        alpha (float): α of the class weights. Defaults to 0.3.
        ub (float): The largest extra weight. Defaults to 0.2.
        candidate_ratio (float): Candidates per budget image. Defaults to
            4.
        candidate_multiple (int, optional): Round the candidate count up
            as the official 8-GPU run does (8); None: no rounding.
        min_size (float): DCUS counts boxes with ``sqrt(w h)`` above this
            (pixels of the original image). Defaults to 16.
        max_ratio (float): ... and both aspect ratios below this. Defaults
            to 5.
        setting (str): The official inference settings to use, ``'coco'``
            (class-aware NMS at 0.6 in the DCUS pass, 0.5 in the CCMS pass)
            or ``'voc'`` (0.5, 0.4); both passes keep every score (no
            threshold), 3000 / 5000 boxes a level before NMS and 200 / 100
            after. Defaults to ``'coco'``.
        uncertainty_cfg (dict, optional): Test config of the DCUS pass,
            instead of the setting's.
        diversity_cfg (dict, optional): Test config of the CCMS pass,
            instead of the setting's.
        feature (str): The tower whose features describe an object:
            ``'cls_convs'`` (the official) or ``'reg_convs'``; heads without
            towers shared by the levels use their input (the neck).
        official_coords (bool): Sample features at the official code's
            (swapped, unpadded) centre coordinates. Defaults to False.
        diag_quirk (bool): The official CCMS's zero distance between the
            k-th detections of two images. Defaults to False.
        n_iter (int): k-medoids iterations. Defaults to 100.
        batch_size (int): Images per inference batch (1: results
            bit-identical whatever the number of processes). Defaults to 8.
        chunk_objects (int): Objects per block of the CCMS computation.
            Defaults to 4096.
    """

    def __init__(self,
                 score_thr: float = 0.05,
                 alpha: float = 0.3,
                 ub: float = 0.2,
                 candidate_ratio: float = 4.0,
                 candidate_multiple: Optional[int] = None,
                 min_size: float = 16.0,
                 max_ratio: float = 5.0,
                 setting: str = 'coco',
                 uncertainty_cfg: Optional[dict] = None,
                 diversity_cfg: Optional[dict] = None,
                 feature: str = 'cls_convs',
                 official_coords: bool = False,
                 diag_quirk: bool = False,
                 n_iter: int = 100,
                 batch_size: int = 8,
                 chunk_objects: int = 4096) -> None:
        if feature not in ('cls_convs', 'reg_convs'):
            raise ValueError(f"feature must be 'cls_convs' or 'reg_convs', "
                             f'got {feature!r}')
        if candidate_ratio < 1 or int(batch_size) < 1 or int(n_iter) < 0:
            raise ValueError('candidate_ratio must be >= 1, batch_size >= 1 '
                             f'and n_iter >= 0, got {candidate_ratio}, '
                             f'{batch_size}, {n_iter}')
        self.score_thr = float(score_thr)
        self.alpha, self.ub = float(alpha), float(ub)
        self.candidate_ratio = float(candidate_ratio)
        self.candidate_multiple = candidate_multiple
        self.min_size, self.max_ratio = float(min_size), float(max_ratio)
        uncertainty, diversity = _inference_cfgs(setting)
        self.uncertainty_cfg = dict(uncertainty_cfg or uncertainty)
        self.diversity_cfg = dict(diversity_cfg or diversity)
        self.feature = feature
        self.official_coords = bool(official_coords)
        self.diag_quirk = bool(diag_quirk)
        self.n_iter = int(n_iter)
        self.batch_size = int(batch_size)
        self.chunk_objects = int(chunk_objects)

    def check_config(self, cfg: Any) -> None:
        if not _has_quality_hook(cfg):
            raise ConfigError(
                'PPAL needs the class qualities learned during training: add '
                f"custom_hooks = [dict(type='{QUALITY_HOOK}')] to the config "
                '(configs/_base_/ppal.py does)')

    # -- the class weights ----------------------------------------------------
    def quality(self, context: SelectionContext) -> torch.Tensor:
        """The trained model's class qualities (C, ), its head's buffer
        (saved in the checkpoint with the weights)."""
        quality = class_quality_of(context.model)
        if quality is None:
            raise ConfigError(
                'PPAL: the trained model has no class quality (bbox_head.'
                'class_quality): was it trained with custom_hooks = '
                f"[dict(type='{QUALITY_HOOK}')]?")
        return quality.double().cpu()

    # -- the two passes -------------------------------------------------------
    def _check_adapter(self, context: SelectionContext) -> None:
        if not hasattr(context.adapter, 'forward_with_towers'):
            raise ConfigError(
                f'PPAL works with dense (single-stage) detectors; the model '
                f'has {type(context.adapter).__name__}')

    def uncertainties(self, context: SelectionContext,
                      weights: torch.Tensor) -> Dict[str, float]:
        """Sample id -> DCUS score of every unlabeled image."""
        adapter = context.adapter
        cfg = self.uncertainty_cfg

        def score(model: nn.Module, data: Dict) -> List[float]:
            bare = adapter.unwrap(model)  # no tower outputs needed here
            outs = adapter.head_forward(
                bare, adapter.extract_features(bare, data['inputs']))
            head = bare.bbox_head
            metas = [s.metainfo for s in data['data_samples']]
            dets = detections_with_levels(head, outs, metas, cfg, rescale=True)
            out = []
            for det, meta in zip(dets, metas):
                h, w = meta['ori_shape'][:2]
                out.append(
                    dcus_score(
                        det.labels,
                        det.scores,
                        det.bboxes, (w, h),
                        weights,
                        score_thr=self.score_thr,
                        min_size=self.min_size,
                        max_ratio=self.max_ratio))
            return out

        return pool_pass(
            context,
            score,
            batch_size=self.batch_size,
            desc='PPAL uncertainty (DCUS) of unlabeled images')

    def objects(self, context: SelectionContext,
                ids: List[str]) -> Dict[str, Dict[str, torch.Tensor]]:
        """Sample id -> the objects of each candidate: ``labels`` (k, ),
        ``scores`` (k, ), ``feats`` (k, C), ``det_index`` (k, )."""
        adapter = context.adapter
        cfg = self.diversity_cfg

        def describe(model: nn.Module, data: Dict) -> List[Dict]:
            outs, towers = adapter.forward_with_towers(model, data['inputs'])
            head = adapter.unwrap(model).bbox_head
            levels = towers.get(self.feature, towers.get('neck'))
            metas = [s.metainfo for s in data['data_samples']]
            dets = detections_with_levels(head, outs, metas, cfg)
            strides = head.prior_generator.strides
            out = []
            for i, (det, meta) in enumerate(zip(dets, metas)):
                keep = det.scores > self.score_thr
                index = torch.nonzero(keep).flatten()
                det = det[keep]
                feats = centre_features(levels, strides, det, i, meta,
                                        self.official_coords)
                out.append(
                    dict(
                        labels=det.labels,
                        scores=det.scores.float(),
                        feats=feats.float(),
                        det_index=index))
            return out

        return pool_pass(
            context,
            describe,
            ids=ids,
            batch_size=self.batch_size,
            desc='PPAL object features (CCMS) of the candidates')

    # -- the selection --------------------------------------------------------
    def rank(self, context: SelectionContext) -> SelectionResult:
        self._check_adapter(context)
        start = time.time()
        quality = self.quality(context)
        weights = class_weights(quality, self.alpha, self.ub)
        scores = self.uncertainties(context, weights)
        dcus_s = time.time() - start
        unlabeled = len(scores)
        budget = min(context.budget or unlabeled, unlabeled)
        num = candidate_pool_size(budget, self.candidate_ratio,
                                  self.candidate_multiple, unlabeled)
        candidates = order_by_score(scores, context.seed, descending=True)
        candidates = candidates[:num]
        info: Dict[str, Any] = dict(
            quality=[round(float(q), 6) for q in quality],
            class_weights=[round(float(w), 6) for w in weights],
            num_unlabeled=unlabeled,
            num_candidates=len(candidates),
            dcus_s=dcus_s)
        if len(candidates) <= budget:
            picks = list(candidates)
        else:
            t0 = time.time()
            objs = self.objects(context, candidates)
            records = [objs[sid] for sid in candidates]
            info['features_s'] = time.time() - t0
            t0 = time.time()
            dist = ccms_distances([r['labels'] for r in records],
                                  [r['scores'] for r in records],
                                  [r['feats'] for r in records],
                                  score_thr=self.score_thr,
                                  diag_quirk=self.diag_quirk,
                                  det_index=[r['det_index'] for r in records],
                                  device=context.device,
                                  chunk_objects=self.chunk_objects)
            dist = dist.cpu().numpy()
            info['ccms_s'] = time.time() - t0
            t0 = time.time()
            first = int(
                np.random.default_rng([context.seed,
                                       7]).integers(len(candidates)))
            seeds = farthest_first(dist, budget, first)
            medoids, _ = k_medoids(dist, seeds, self.n_iter)
            # images at distance 0 from everything (no object above the
            # threshold) can leave two clusters on one medoid: the seeds,
            # then the candidates by DCUS, fill the budget
            unique = list(dict.fromkeys(int(i) for i in medoids))
            info['repeated_medoids'] = len(medoids) - len(unique)
            for i in list(seeds) + list(range(len(candidates))):
                if len(unique) >= budget:
                    break
                if i not in unique:
                    unique.append(i)
            info['k_medoids_s'] = time.time() - t0
            info['objects_per_candidate'] = float(
                np.mean([len(r['labels']) for r in records]))
            picks = [candidates[i] for i in unique]
        ranking = sorted(picks, key=lambda sid: (-scores[sid], sid))
        print_log(
            f'PPAL: {unlabeled} unlabeled images, {len(candidates)} '
            f'candidates by DCUS, {len(ranking)} picked; class weights '
            f'{[round(float(w), 3) for w in weights]}; '
            f'{time.time() - start:.1f}s', context.logger)
        return SelectionResult(
            ranking=ranking,
            scores={sid: float(scores[sid])
                    for sid in ranking},
            info=info)
