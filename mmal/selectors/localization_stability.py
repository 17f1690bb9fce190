"""Localization stability (Kao et al., ACCV 2018): how far a detector's boxes
move when the image is corrupted by pixel noise; the least stable first.

The module holds the selector and its two parts, each usable alone:

* the math on boxes: :func:`box_stability` (per reference box, its best
  IoU on each noisy image, averaged over the noise levels),
  :func:`localization_stability` (the reference-score-weighted mean over
  an image's boxes) and :func:`prediction_stability` (the same from
  predictions, thresholded, class-agnostic);
* the corruption: :func:`add_pixel_noise` (seeded Gaussian noise in pixel
  space added to preprocessed images, inside each image's own region).
"""
import time
import zlib
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.logging import print_log
from mmengine.structures import InstanceData
from torch import nn

from mmal.registry import AL_ADAPTERS, SELECTORS
from mmal.utils import ConfigError
from .base import BaseSelector, SelectionResult
from .pool_pass import pool_pass
from .score_order import check_unscored_policy, order_by_score
from .selection_context import SelectionContext

#: The default noise standard deviations, on the 0-255 pixel scale.
NOISE_LEVELS = (8, 16, 24, 32, 40, 48)


# -- the math on boxes --------------------------------------------------------
def box_stability(
        ref_boxes: torch.Tensor,
        noisy_boxes_per_level: Sequence[torch.Tensor]) -> torch.Tensor:
    """Stability ``S_B`` of each reference box.

    For each noise level, the box of the noisy image that overlaps the
    reference box most is its counterpart (class-agnostic: only boxes are
    compared); the IoU with it is 0 when the noisy image has no box.
    ``S_B`` is that IoU averaged over the levels.

    Args:
        ref_boxes (Tensor): (R, 4) reference boxes, xyxy.
        noisy_boxes_per_level (Sequence[Tensor]): One (M_k, 4) xyxy tensor
            per noise level (M_k may be 0), in the frame of ``ref_boxes``.

    Returns:
        Tensor: (R, ) float64 on the CPU, in [0, 1].
    """
    from mmdet.structures.bbox import bbox_overlaps  # detection installs
    if not noisy_boxes_per_level:
        raise ValueError('box_stability needs at least one noise level')
    ref = ref_boxes.detach().to('cpu', torch.float64).reshape(-1, 4)
    total = torch.zeros(len(ref), dtype=torch.float64)
    for boxes in noisy_boxes_per_level:
        boxes = boxes.detach().to('cpu', torch.float64).reshape(-1, 4)
        if len(boxes) and len(ref):
            total += bbox_overlaps(ref, boxes).max(dim=1).values
    return total / len(noisy_boxes_per_level)


def localization_stability(
        ref_boxes: torch.Tensor, ref_scores: torch.Tensor,
        noisy_boxes_per_level: Sequence[torch.Tensor]) -> Optional[float]:
    """Localization stability of an image (the paper's ``S_I``).

    ``S_I = sum_B score_B * S_B / sum_B score_B`` over the reference boxes
    ``B`` (:func:`box_stability`): the stability of the confident boxes
    counts most.

    Args:
        ref_boxes (Tensor): (R, 4) reference boxes, xyxy.
        ref_scores (Tensor): (R, ) their scores (> 0).
        noisy_boxes_per_level (Sequence[Tensor]): See
            :func:`box_stability`.

    Returns:
        float | None: ``S_I`` in [0, 1] (1: every box found again
        exactly at every level); None without reference box.
    """
    if len(ref_boxes) == 0:
        return None
    weights = ref_scores.detach().to('cpu', torch.float64).reshape(-1)
    if len(weights) != len(ref_boxes) or bool((weights <= 0).any()):
        raise ValueError('localization_stability needs one positive score '
                         f'per reference box, got {weights.tolist()} for '
                         f'{len(ref_boxes)} boxes')
    stability = box_stability(ref_boxes, noisy_boxes_per_level)
    return float((weights * stability).sum() / weights.sum())


def prediction_stability(clean: InstanceData, noisy: Sequence[InstanceData],
                         score_thr: float) -> Tuple[Optional[float], int]:
    """:func:`localization_stability` of one image's predictions.

    Args:
        clean (InstanceData): The prediction on the clean image
            (``bboxes`` (N, 4), ``scores`` (N, )); the boxes with
            ``score >= score_thr`` are the reference boxes.
        noisy (Sequence[InstanceData]): The predictions on the noisy
            images, one per level; every box counts, whatever its score
            and label.
        score_thr (float): Reference score threshold (> 0).

    Returns:
        tuple[float | None, int]: ``S_I`` (None without reference box) and
        the number of reference boxes.
    """
    keep = clean.scores >= score_thr
    num = int(keep.sum())
    if num == 0:
        return None, 0
    return localization_stability(clean.bboxes[keep], clean.scores[keep],
                                  [p.bboxes for p in noisy]), num


# -- the corruption -----------------------------------------------------------
def pixel_noise(sample_id: str, shape: Sequence[int], seed: int,
                level: int) -> torch.Tensor:
    """Standard normal noise of one image at one level, on the CPU.

    Drawn by a ``torch.Generator`` seeded with the CRC32 of the selection
    seed, the image's id and the level index, so that it depends on
    nothing else (batch, batch size, process count, device).

    Args:
        sample_id (str): The image's id.
        shape (Sequence[int]): ``(C, h, w)``.
        seed (int): The selection seed.
        level (int): Index of the noise level.

    Returns:
        Tensor: ``shape``, float32, CPU.
    """
    key = f'{int(seed)}/{sample_id}/noise{int(level)}'.encode()
    gen = torch.Generator().manual_seed(zlib.crc32(key))
    return torch.randn(tuple(shape), generator=gen, dtype=torch.float32)


def pixel_normalisation(
        preprocessor: nn.Module) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(mean, std)`` with which a data preprocessor normalises images.

    Args:
        preprocessor (nn.Module): An mmengine ``ImgDataPreprocessor`` (or
            one with its ``mean`` / ``std`` buffers).

    Returns:
        tuple[Tensor, Tensor]: (C, 1, 1) each, or scalars 0 and 1 when the
        preprocessor does not normalise.
    """
    mean, std = getattr(preprocessor, 'mean',
                        None), getattr(preprocessor, 'std', None)
    if (not getattr(preprocessor, '_enable_normalize', mean is not None)
            or mean is None or std is None):
        return torch.tensor(0.0), torch.tensor(1.0)
    return mean, std


def add_pixel_noise(inputs: torch.Tensor, data_samples: Sequence,
                    sample_ids: Sequence[str], sigma: float, seed: int,
                    level: int, mean: torch.Tensor,
                    std: torch.Tensor) -> torch.Tensor:
    """Preprocessed images with Gaussian pixel noise added.

    Per image, inside its own region ``img_shape`` (h, w) (the padding
    stays as it is): back to pixels ``raw = x * std + mean``, then
    ``raw' = clip(raw + sigma * n, 0, 255)`` and ``x' = (raw' - mean) /
    std``, with ``n`` = :func:`pixel_noise` of the image and level.

    Args:
        inputs (Tensor): (B, C, H, W) preprocessed images (not changed).
        data_samples (Sequence): B samples whose ``metainfo['img_shape']``
            is the image's (h, w) before padding.
        sample_ids (Sequence[str]): B image ids (seed the noise).
        sigma (float): Standard deviation on the 0-255 pixel scale.
        seed (int): The selection seed.
        level (int): Index of the level (seeds the noise).
        mean (Tensor): (C, 1, 1) or scalar, the preprocessor's mean.
        std (Tensor): (C, 1, 1) or scalar, the preprocessor's std.

    Returns:
        Tensor: (B, C, H, W), a new tensor.
    """
    if not len(inputs) == len(data_samples) == len(sample_ids):
        raise ValueError(f'{len(inputs)} images, {len(data_samples)} data '
                         f'samples and {len(sample_ids)} ids')
    out = inputs.clone()
    mean = torch.as_tensor(mean).to(inputs.device, inputs.dtype)
    std = torch.as_tensor(std).to(inputs.device, inputs.dtype)
    for i, (sample, sid) in enumerate(zip(data_samples, sample_ids)):
        h, w = sample.metainfo['img_shape'][:2]
        region = inputs[i, :, :h, :w]
        noise = pixel_noise(sid, region.shape, seed,
                            level).to(inputs.device, inputs.dtype)
        raw = (region * std + mean + sigma * noise).clamp(0, 255)
        out[i, :, :h, :w] = (raw - mean) / std
    return out


# -- the selector -------------------------------------------------------------
def _require_boxes(adapter_name: str, predicts_boxes: bool) -> None:
    """Raise ``ConfigError`` unless the adapter predicts boxes."""
    if not predicts_boxes:
        raise ConfigError(
            'mmal.LocalizationStabilitySelector (al_cfg.selector) needs a '
            'detection adapter (al_cfg.adapter, e.g. mmal.FCOSAdapter), got '
            f'{adapter_name}, whose predictions have no boxes: the selector '
            'compares predicted boxes')


@SELECTORS.register_module()
class LocalizationStabilitySelector(BaseSelector):
    """Rank unlabeled images by the localization stability of the
    detector's boxes under pixel noise, least stable first (Kao et al.,
    "Localization-aware active learning for object detection", ACCV 2018).

    Per image:

    1. reference boxes: the detector's final predictions on the clean
       image (after its ``test_cfg`` score threshold and NMS) with score
       ``>= score_thr``;
    2. the image corrupted with Gaussian noise at each standard deviation
       of ``noise_levels`` (pixel scale 0-255; added to the pixel values
       behind the preprocessed input, clipped to [0, 255], inside the
       image's region only; seeded per selection seed, image id and level,
       :func:`add_pixel_noise`) and predicted again;
    3. per reference box, its best IoU with any box of each noisy image
       (class-agnostic, every predicted box; 0 when the noisy image has
       none), averaged over the levels: ``S_B`` (:func:`box_stability`);
    4. the image's score ``S_I = sum_B score_B S_B / sum_B score_B``
       (:func:`localization_stability`; the paper weights by the box's
       highest class probability, which is mmdet's box score), ranked
       ascending.

    An image costs ``len(noise_levels) + 1`` inferences (the noisy ones
    only for images with a reference box).

    ``score_thr`` defaults to 0.1, the threshold at which ISAL
    (:class:`InfluenceSelector`, its official run script) already treats
    a prediction as an object (its pseudo labels): the same boxes count as
    objects for both methods, on every setting. It is above the detectors'
    own test threshold (``test_cfg`` 0.05 for FCOS and Faster R-CNN; FCOS
    applies it before multiplying by the centerness), so the reference
    boxes are a subset of what the detector reports. A model trained for
    a few epochs may score nothing that high: lower it then (the tests use
    0.02).

    An image without reference box has no stability (the detector sees no
    object it is confident about): by default (``unscored='random'``) such
    images are ranked after every scored image, in seeded random order;
    ``'exclude'`` never picks them.

    Args:
        score_thr (float): Reference score threshold, in (0, 1].
            Defaults to 0.1.
        noise_levels (Sequence[float]): Noise standard deviations on the
            0-255 pixel scale. Defaults to (8, 16, 24, 32, 40, 48).
        unscored (str): ``'random'`` or ``'exclude'`` (see above).
            Defaults to ``'random'``.
        batch_size (int): Images per inference batch (images of one padded
            shape only). 1 makes the scores bit-identical whatever the
            number of processes. Defaults to 8.
    """

    #: It compares predicted boxes: the adapter must predict them
    #: (the driver refuses other models before any training).
    needs_boxes = True

    def __init__(self,
                 score_thr: float = 0.1,
                 noise_levels: Sequence[float] = NOISE_LEVELS,
                 unscored: str = 'random',
                 batch_size: int = 8) -> None:
        if not 0 < float(score_thr) <= 1:
            raise ValueError(f'score_thr must be in (0, 1], got {score_thr}')
        levels = tuple(float(s) for s in noise_levels)
        if not levels or any(s <= 0 for s in levels):
            raise ValueError('noise_levels must be a non-empty sequence of '
                             f'positive standard deviations, got '
                             f'{noise_levels}')
        if int(batch_size) < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        self.score_thr = float(score_thr)
        self.noise_levels = levels
        self.unscored = check_unscored_policy(unscored)
        self.batch_size = int(batch_size)

    def check_config(self, cfg) -> None:
        """Refuse a classification config before any training."""
        adapter = (cfg.get('al_cfg') or {}).get('adapter') or {}
        cls = AL_ADAPTERS.get(adapter['type']) if isinstance(
            adapter, dict) and adapter.get('type') else None
        if cls is not None:
            _require_boxes(adapter['type'],
                           getattr(cls, 'predicts_boxes', False))

    @staticmethod
    def check_detection(context: SelectionContext) -> None:
        """Raise ``ConfigError`` unless the context's adapter detects."""
        adapter = context.adapter
        if adapter is not None:
            _require_boxes(
                type(adapter).__name__,
                getattr(adapter, 'predicts_boxes', False))

    def stabilities(
            self, context: SelectionContext
    ) -> Dict[str, Tuple[Optional[float], int]]:
        """Sample id -> (``S_I``, None without reference box; number of
        reference boxes) of every unlabeled image."""
        self.check_detection(context)
        adapter = context.adapter

        def batch_stability(model: nn.Module, data: Dict) -> List:
            clean = adapter.predict_batch(model, data)
            if clean and not hasattr(clean[0], 'bboxes'):
                raise ConfigError(
                    'mmal.LocalizationStabilitySelector (al_cfg.selector): '
                    f'{type(adapter).__name__}.predict gives '
                    f'{type(clean[0]).__name__}, not boxes')
            keep = [
                i for i, p in enumerate(clean)
                if bool((p.scores >= self.score_thr).any())
            ]
            noisy: List[List[InstanceData]] = [[] for _ in clean]
            if keep:  # only images with a reference box: a smaller batch
                inputs = data['inputs'][keep]
                samples = [data['data_samples'][i] for i in keep]
                ids = [data['sample_id'][i] for i in keep]
                mean, std = pixel_normalisation(
                    adapter.unwrap(model).data_preprocessor)
                for level, sigma in enumerate(self.noise_levels):
                    preds = adapter.predict_batch(
                        model,
                        dict(
                            data,
                            inputs=add_pixel_noise(inputs, samples, ids, sigma,
                                                   context.seed, level, mean,
                                                   std),
                            data_samples=samples,
                            sample_id=ids))
                    for i, pred in zip(keep, preds):
                        noisy[i].append(pred)
            return [
                prediction_stability(c, n, self.score_thr)
                for c, n in zip(clean, noisy)
            ]

        return pool_pass(
            context,
            batch_stability,
            batch_size=self.batch_size,
            desc='localization stability of unlabeled images')

    def rank(self, context: SelectionContext) -> SelectionResult:
        """Least stable first, then the unscored images (``unscored``).

        ``info``: ``num_scored``, ``num_unscored``,
        ``mean_reference_boxes`` (over every unlabeled image),
        ``inferences_per_image`` and ``pass_s`` (the whole pass).
        """
        start = time.time()
        results = self.stabilities(context)
        scores = {k: v for k, (v, _) in results.items()}
        ranking = order_by_score(
            scores, context.seed, descending=False, unscored=self.unscored)
        scored = {k: v for k, v in scores.items() if v is not None}
        num_refs = [n for _, n in results.values()]
        info = dict(
            num_scored=len(scored),
            num_unscored=len(scores) - len(scored),
            mean_reference_boxes=(sum(num_refs) /
                                  len(num_refs) if num_refs else 0.0),
            inferences_per_image=len(self.noise_levels) + 1,
            pass_s=time.time() - start)
        print_log(
            f'localization stability: scored {len(scored)} images (mean '
            f'{info["mean_reference_boxes"]:.2f} reference boxes with score '
            f'>= {self.score_thr} per image), {info["num_unscored"]} without '
            f'reference box (policy {self.unscored!r}); '
            f'{info["inferences_per_image"]} inferences per scored image in '
            f'{info["pass_s"]:.1f}s '
            f'({info["pass_s"] / max(len(scores), 1):.3f}s per image)',
            context.logger)
        return SelectionResult(ranking=ranking, scores=scored, info=info)
