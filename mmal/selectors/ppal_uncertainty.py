"""PPAL's difficulty-calibrated uncertainty (DCUS), the numbers only.

Stage 1 of PPAL (Yang, Huang & Crowley, "Plug and Play Active Learning
for Object Detection", CVPR 2024) scores every unlabeled image by the
class-weighted sum of its detections' binary entropies and keeps the
highest scoring ``ratio x budget`` images as candidates for the diversity
stage. This module holds the three pure functions of that stage, written
from the behaviour of the official code (``ChenhongyiYang/PPAL``,
``difficulty_calibrated_uncertainty_sampler.py`` and
``al_sampler_base.py``; the algorithm's description, not its code):

* :func:`class_weights`: a class's weight from its quality ``q`` (an EMA of
  ``p^xi IoU^(1-xi)`` over its training positives): ``1`` for a perfect
  class, up to ``1 + ub`` for a class of quality 0;
* :func:`dcus_score`: one image's score, the sum over its valid
  detections of ``weight[label] * H(score)``;
* :func:`candidate_pool_size`: how many top-scoring images go on to the
  diversity stage.

Everything is computed in float64 (the official mixes float32 arrays and
Python floats, which can differ in the last float32 digits).
"""
import math
import numbers
from typing import Optional, Tuple

import torch

#: inside both logarithms of the official binary entropy
ENTROPY_EPS = 1e-10
#: added to the denominators of the official aspect ratio test
RATIO_EPS = 1e-10


def _check_int(name: str, value, low: int) -> None:
    """Raise ValueError unless ``value`` is an integer >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
            or value < low:
        raise ValueError(f'{name} must be an integer >= {low}, got {value!r}')


def class_weights(quality: torch.Tensor,
                  alpha: float = 0.3,
                  ub: float = 0.2) -> torch.Tensor:
    """PPAL's per-class difficulty weights.

    ``w_c = 1 + alpha * ub * ln(b * (1 - q_c) + 1)`` with ``b = exp(1 /
    alpha) - 1``: ``w = 1`` at ``q = 1``, ``w = 1 + ub`` at ``q = 0``,
    concave and increasing in the difficulty ``1 - q``. The defaults are
    the official VOC and COCO settings (``class_weight_alpha = 0.3``,
    ``class_weight_ub = 0.2``).

    Args:
        quality (Tensor): The class qualities ``q``, shape (C, ), any real
            dtype (the official values lie in [0, 1]; others are not
            rejected).
        alpha (float): Curvature, > 0. Defaults to 0.3.
        ub (float): Extra weight of a class of quality 0. Defaults to 0.2.

    Returns:
        Tensor: The weights, shape (C, ), float64, on ``quality``'s device.

    Raises:
        ValueError: If ``quality`` is not 1-D or ``alpha`` is not > 0.
    """
    if not isinstance(quality, torch.Tensor) or quality.dim() != 1:
        raise ValueError('class_weights: quality must be a 1-D tensor, got '
                         f'{getattr(quality, "shape", type(quality))}')
    if not alpha > 0:
        raise ValueError(f'class_weights: alpha must be > 0, got {alpha!r}')
    q = quality.detach().to(torch.float64)
    b = math.exp(1.0 / alpha) - 1.0
    return 1.0 + alpha * ub * torch.log(b * (1.0 - q) + 1.0)


def official_binary_entropy(scores: torch.Tensor) -> torch.Tensor:
    """The official detection uncertainty, element-wise.

    ``H(s) = -s ln(s + 1e-10) - (1 - s) ln(1 - s + 1e-10)`` (natural log;
    ``ln 2`` at 0.5; ``-ln(1 + 1e-10)``, about -1e-10, at 0 and 1), in the
    dtype of ``scores``.

    Args:
        scores (Tensor): Scores in [0, 1], any shape.

    Returns:
        Tensor: Same shape and dtype.
    """
    s = scores
    return -s * torch.log(s + ENTROPY_EPS) - (1 - s) * torch.log(1 - s +
                                                                 ENTROPY_EPS)


def valid_boxes(bboxes: torch.Tensor,
                img_wh: Tuple[int, int],
                min_size: float = 16.,
                max_ratio: float = 5.) -> torch.Tensor:
    """The official size and shape test of detections, in float64.

    For a box ``(x1, y1, x2, y2)`` in an image of width ``W`` and height
    ``H``, as the official does on the COCO-style ``(x1, y1, w, h)`` of the
    result file: reject it if ``x1 > W`` or ``y1 > H``; otherwise clip only
    its right and bottom edges, ``w' = min(W, x1 + w) - x1`` and ``h' =
    min(H, y1 + h) - y1`` (``x1``, ``y1`` are not clipped at 0), and keep
    it iff ``sqrt(w' h') > min_size``, ``w' / (h' + 1e-10) < max_ratio``
    and ``h' / (w' + 1e-10) < max_ratio``. A degenerate box (``w' h' <
    0``) has a NaN size and fails.

    Args:
        bboxes (Tensor): Boxes ``(x1, y1, x2, y2)`` in the original image
            frame, shape (k, 4).
        img_wh (tuple[int, int]): The original image's (width, height).
        min_size (float): Smallest ``sqrt(area)`` (exclusive). Defaults to
            16.
        max_ratio (float): Largest aspect ratio (exclusive). Defaults to 5.

    Returns:
        Tensor: Shape (k, ), bool, on ``bboxes``' device.
    """
    b = bboxes.detach().to(torch.float64)
    img_w, img_h = float(img_wh[0]), float(img_wh[1])
    x1, y1 = b[:, 0], b[:, 1]
    w, h = b[:, 2] - x1, b[:, 3] - y1  # the result file's xywh
    w = torch.clamp(x1 + w, max=img_w) - x1
    h = torch.clamp(y1 + h, max=img_h) - y1
    inside = (x1 <= img_w) & (y1 <= img_h)
    return inside & (torch.sqrt(w * h)
                     > min_size) & (w / (h + RATIO_EPS) < max_ratio) & (
                         h / (w + RATIO_EPS) < max_ratio)


def dcus_score(labels: torch.Tensor,
               scores: torch.Tensor,
               bboxes: torch.Tensor,
               img_wh: Tuple[int, int],
               weights: torch.Tensor,
               score_thr: float = 0.05,
               min_size: float = 16.,
               max_ratio: float = 5.) -> float:
    """One image's difficulty-calibrated uncertainty.

    ``U = sum_j weights[labels[j]] * H(scores[j])`` over the detections
    ``j`` with ``scores[j] >= score_thr`` (inclusive, as the official's
    ``< thr: skip``) whose box passes :func:`valid_boxes`; ``H`` is
    :func:`official_binary_entropy`. A sum, not a mean: more uncertain
    boxes make a higher score. 0.0 when no detection counts (the official
    keeps such an image in the ranking with score 0). Computed in float64.

    Args:
        labels (Tensor): Contiguous class indices, shape (k, ), integer,
            each in ``[0, C)``.
        scores (Tensor): Detection scores, shape (k, ).
        bboxes (Tensor): Boxes ``(x1, y1, x2, y2)`` in the original image
            frame, shape (k, 4).
        img_wh (tuple[int, int]): The original image's (width, height).
        weights (Tensor): Class weights, shape (C, ), e.g.
            :func:`class_weights`.
        score_thr (float): Smallest score that counts. Defaults to 0.05.
        min_size (float): See :func:`valid_boxes`. Defaults to 16.
        max_ratio (float): See :func:`valid_boxes`. Defaults to 5.

    Returns:
        float: The score (>= 0 but for the ~-1e-10 of :func:`
        official_binary_entropy` at scores 0 and 1).

    Raises:
        ValueError: On shapes that disagree, non-integer labels or labels
            outside ``[0, C)``.
    """
    k = labels.shape[0] if labels.dim() == 1 else -1
    if k < 0 or tuple(scores.shape) != (k, ) or \
            tuple(bboxes.shape) != (k, 4) or weights.dim() != 1:
        raise ValueError(
            'dcus_score: expected labels (k,), scores (k,), bboxes (k, 4) '
            f'and weights (C,), got {tuple(labels.shape)}, '
            f'{tuple(scores.shape)}, {tuple(bboxes.shape)} and '
            f'{tuple(weights.shape)}')
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f'dcus_score: labels must be integers, got '
                         f'{labels.dtype}')
    if k == 0:
        return 0.0
    labels = labels.detach().long()
    if int(labels.min()) < 0 or int(labels.max()) >= weights.shape[0]:
        raise ValueError(
            f'dcus_score: labels must lie in [0, {weights.shape[0]}), got '
            f'[{int(labels.min())}, {int(labels.max())}]')
    s = scores.detach().to(torch.float64)
    keep = (s >= score_thr) & valid_boxes(bboxes, img_wh, min_size,
                                          max_ratio).to(s.device)
    if not bool(keep.any()):
        return 0.0
    w = weights.detach().to(device=s.device, dtype=torch.float64)
    terms = w[labels.to(s.device)[keep]] * official_binary_entropy(s[keep])
    return float(terms.sum())


def candidate_pool_size(budget: int,
                        ratio: float = 4.,
                        multiple: Optional[int] = None,
                        pool: Optional[int] = None) -> int:
    """How many top DCUS images become candidates of the diversity stage.

    ``n = ceil(ratio * budget)`` (the product rounded to 9 decimals first,
    so that float error cannot add one); with ``multiple`` (the official
    rounds to its 8 GPUs) ``n + multiple - n % multiple``, the next
    multiple of ``multiple`` strictly *above* ``n`` (COCO: 4 x 2365 = 9460
    -> 9464; VOC: 4 x 414 = 1656, already a multiple of 8, -> 1664); at
    most ``pool`` (the number of unlabeled images) when given.

    Args:
        budget (int): Images to select, >= 0.
        ratio (float): The budget expanding ratio, > 0. Defaults to 4.
        multiple (int, optional): Round as the official's 8-GPU rule
            (>= 1). Defaults to None: no rounding.
        pool (int, optional): Upper bound (>= 0). Defaults to None.

    Returns:
        int: The candidate pool size.

    Raises:
        ValueError: On a negative or non-integer ``budget`` / ``pool``, a
            ``multiple`` below 1 or a ``ratio`` not > 0.
    """
    _check_int('candidate_pool_size: budget', budget, 0)
    if not (isinstance(ratio, numbers.Real) and ratio > 0
            and math.isfinite(ratio)):
        raise ValueError('candidate_pool_size: ratio must be a finite number '
                         f'> 0, got {ratio!r}')
    # rounded first: 0.1 * 30 is 3.0000000000000004, whose ceil is 4
    n = math.ceil(round(ratio * budget, 9))
    if multiple is not None:
        _check_int('candidate_pool_size: multiple', multiple, 1)
        n = n + multiple - n % multiple
    if pool is not None:
        _check_int('candidate_pool_size: pool', pool, 0)
        n = min(n, pool)
    return int(n)
